"""Input checks, done once at the boundary.

Messages name the argument, what was expected and what was received.  NaN and infinity in a
Dask array are found during the first pass over the data (see :mod:`emdask.engine`) rather
than by an extra pass of their own.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import dask.array as da
import numpy as np

from emdask.errors import InputError, InputTypeError

_TARGET_CHUNK_BYTES = 64 * 2**20
_NUMERIC_KINDS = "buif"


def describe(value: Any) -> str:
    """A short description of an array-like for error messages."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    if shape is not None:
        return f"a {len(shape)}-D {kind} of shape {tuple(shape)} and dtype {dtype}"
    return f"{kind} {value!r:.60}"


def as_rows(X: Any, name: str = "X") -> tuple[da.Array, bool]:
    """Validate ``X`` as (n_samples, n_features) data and return it as a row-chunked Dask array.

    Returns the array (one chunk along the features) and whether the input was in memory.
    NumPy input is split into row chunks of about 64 MiB.
    """
    in_memory = not isinstance(X, da.Array)
    if in_memory:
        if hasattr(X, "sparse") or type(X).__module__.startswith("scipy.sparse"):
            raise InputTypeError(f"{name} is a sparse matrix; emdask fits dense data: pass {name}.toarray(), or a "
                                 "Dask array for data larger than memory")
        try:
            X = _frame_values(X) if hasattr(X, "columns") and hasattr(X, "to_numpy") else np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise InputTypeError(f"{name} must be a 2-D numeric array-like; got {type(X).__name__} ({exc})") from None
        if X.dtype == object:  # numbers held as Python objects convert; anything else is named
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InputTypeError(f"{name} must hold numbers; {exc}") from None
    if X.dtype.kind == "c":
        raise InputTypeError(f"{name} holds complex numbers (Complex data not supported): emdask fits real data; got "
                             f"{describe(X)}")
    if X.dtype.kind == "f" and X.dtype.itemsize < 4:  # float16: the kernels compute in float32 or float64
        X = X.astype(np.float32)
    if X.dtype.kind in _NUMERIC_KINDS and not X.dtype.isnative:  # big-endian data from FITS, HDF5 or Zarr
        X = X.astype(X.dtype.newbyteorder("="))
    if X.ndim != 2:
        hint = (" (Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single sample)"
                if X.ndim == 1 else "")
        raise InputError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got {describe(X)}{hint}"
        )
    if X.dtype.kind not in _NUMERIC_KINDS:
        raise InputTypeError(f"{name} must have a numeric dtype (bool, int, uint or float); got {describe(X)}")
    if not in_memory and any(math.isnan(c) for c in X.chunks[0]):
        raise InputError(
            f"{name} has unknown chunk sizes along its rows; call {name}.compute_chunk_sizes() "
            "(or dataframe.to_dask_array(lengths=True)) first"
        )
    n, d = X.shape
    if n < 1 or d < 1:
        what = f"0 sample(s) (shape={(n, d)})" if n < 1 else f"0 feature(s) (shape={(n, d)})"
        raise InputError(f"{name} has {what} while a minimum of 1 is required; got {describe(X)}")
    if in_memory:
        rows = max(1, _TARGET_CHUNK_BYTES // max(1, d * X.dtype.itemsize))
        X = da.from_array(X, chunks=(min(n, rows), d))
    elif X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X, in_memory


def _frame_values(frame: Any) -> np.ndarray:
    """A pandas frame's values: its own dtype when every column is a NumPy number, else float64 with missing
    values (pandas' nullable integers and floats) as NaN, which the checks then name."""
    if all(getattr(dtype, "kind", "O") in _NUMERIC_KINDS and isinstance(dtype, np.dtype) for dtype in frame.dtypes):
        return np.asarray(frame)
    try:
        return np.asarray(frame.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError):
        return np.asarray(frame)  # text columns: the dtype check names them


def as_weights(sample_weight: Any, X: da.Array, name: str = "sample_weight") -> da.Array | None:
    """Validate per-row weights and align their chunks with ``X``'s rows.

    In-memory weights are checked here (finite, non-negative, not all zero); the chunks of a
    Dask array of weights are checked in the first pass.
    """
    if sample_weight is None:
        return None
    lazy = isinstance(sample_weight, da.Array)
    w = sample_weight if lazy else np.asarray(sample_weight)
    if w.ndim != 1 or w.shape[0] != X.shape[0]:
        raise InputError(f"{name} must be a 1-D array with one weight per row of X ({X.shape[0]}); got {describe(w)}")
    if w.dtype.kind not in _NUMERIC_KINDS:
        raise InputTypeError(f"{name} must be numeric; got {describe(w)}")
    if lazy:
        return da.asarray(w).astype(np.float64).rechunk((X.chunks[0],))
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(
            f"{name} must be finite and non-negative; got min={np.min(w).item()!r}, max={np.max(w).item()!r}"
        )
    if not np.any(w > 0):
        raise InputError(f"{name} must have at least one positive weight; got all zeros")
    return da.from_array(np.asarray(w, dtype=np.float64), chunks=(X.chunks[0],))


def check_int(value: Any, name: str, low: int, high: int | None = None, high_name: str = "") -> int:
    """An integer in ``[low, high]``."""
    bounds = f"in [{low}, {high_name or high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an int {bounds}; got {value!r} of type {type(value).__name__}")
    number = int(value)
    if number < low or (high is not None and number > high):
        raise InputError(f"{name} must be an int {bounds}; got {value!r}")
    return number


def check_float(value: Any, name: str, low: float = 0.0, low_open: bool = False) -> float:
    """A finite real number above ``low``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (low_open and value == low):
        rel = ">" if low_open else ">="
        raise InputError(f"{name} must be a finite number {rel} {low}; got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple[Any, ...]) -> Any:
    """One of a fixed set of values."""
    if not any(value is c or (type(value) is type(c) and value == c) or (isinstance(c, str) and isinstance(value, str)
               and value == c) for c in choices):  # str subclasses too (numpy's str_)
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def block_offset(block_info: dict[Any, Any] | None) -> int:
    """The global index of a ``map_blocks`` block's first row (0 without ``block_info``), so errors name global rows."""
    return 0 if not block_info else int(block_info[0]["array-location"][0][0])


def check_finite_chunk(x: np.ndarray, offset: int, name: str) -> None:
    """Raise if a chunk holds NaN or infinity, naming the first bad row and column."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        where = f"row {offset + bad[0]}" + (f", column {bad[1]}" if x.ndim == 2 else "")
        raise InputError(
            f"{name} contains NaN or infinity (first at {where}: {x[tuple(bad)].item()!r}); expected finite values"
        )
