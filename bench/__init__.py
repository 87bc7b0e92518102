"""emdask's benchmark suite: peers timed in one process run on the same machine (``python -m bench``)."""
