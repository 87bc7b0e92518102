"""Randomness that does not depend on the scheduler or the chunking.

Draws made on chunks come from a counter-based generator (Philox) keyed by the fit's seed and
a stream number and positioned at the chunk's first global row, so row ``i`` always gets the
same number however the data is split.  Draws made on the client use an ordinary Generator.
"""
from __future__ import annotations

import numpy as np

from emdask.errors import InputError

RandomState = int | np.random.Generator | np.random.RandomState | None


def make_seed(random_state: RandomState) -> int:
    """An integer seed from ``None`` (fresh entropy), an int, a ``numpy.random.Generator`` or a legacy
    ``numpy.random.RandomState`` (what scikit-learn users pass); a generator advances, as scikit-learn's do."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int64).max, dtype=np.int64))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) and random_state >= 0:
        return int(random_state)
    raise InputError(
        f"random_state must be None, a non-negative int, a numpy.random.Generator or RandomState; got {random_state!r}"
    )


def row_uniforms(seed: int, stream: int, start: int, n: int) -> np.ndarray:
    """Uniform draws in [0, 1) for global rows ``start .. start+n-1`` of one stream."""
    bitgen = np.random.Philox(key=[seed, stream])
    bitgen.advance(start // 4)  # Philox4x64 makes four 64-bit words per counter step
    gen = np.random.Generator(bitgen)
    if start % 4:
        gen.random(start % 4)
    return gen.random(n)


def client_rng(seed: int, *stream: int) -> np.random.Generator:
    """A Generator for draws made on the client, one independent stream per ``stream`` tuple."""
    return np.random.default_rng([seed, *stream])
