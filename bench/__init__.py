"""emdask's benchmark suite: peers timed in one process run on the same machine (``python -m bench``)."""

import os

# OpenMP threads (scikit-learn, faiss) spin-wait after their work by default and then steal the
# cores from whatever runs next in this process; passive waiting keeps the cases independent.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
