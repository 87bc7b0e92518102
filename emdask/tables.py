"""Tables for fitting: CSV and Parquet (through ``dask.dataframe``), Zarr and NPY arrays, as Dask arrays.

Reading is lazy and chunked; errors name the file and say what was expected.  A Zarr chunk that
cannot be decoded is reported with the store and the rows it holds, not as a bare codec error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
from pandas.api.types import is_numeric_dtype

from emdask.errors import InputError, InputTypeError
from emdask.store import StoreError


class _NamedChunks:
    """A Zarr array seen through ``__getitem__`` whose read errors name the store and the region."""

    def __init__(self, array: Any, source: str):
        self.array, self.source = array, source
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except Exception as exc:
            where = ", ".join(
                f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                for k in (key if isinstance(key, tuple) else (key,))
            )
            raise StoreError(
                f"{self.source!r}: the chunk at [{where}] could not be read ({type(exc).__name__}: {exc}); "
                "the store is corrupt or truncated"
            ) from None


def read_zarr(path: str, component: str | None = None, storage_options: dict[str, Any] | None = None) -> da.Array:
    """A Zarr array as a Dask array with one task per Zarr chunk; unreadable chunks raise a :class:`StoreError`.

    ``storage_options`` (endpoint, credentials) are for an fsspec URL.
    """
    import zarr

    try:
        node = zarr.open_array(path, mode="r", path=component or "", storage_options=storage_options or None)
    except Exception as exc:
        raise StoreError(f"{path!r} is not a Zarr array emdask can open ({type(exc).__name__}: {exc})") from None
    return da.from_array(
        _NamedChunks(node, path), chunks=node.chunks, name=f"read-zarr-{path}-{component}", asarray=False
    )


TABLE_TYPES = ".csv, .parquet (or a folder of Parquet files), .zarr or .npy"


def read_table(
    source: str, columns: list[str] | None = None, storage_options: dict[str, Any] | None = None
) -> tuple[da.Array, list[str]]:
    """The table as a row-chunked Dask array and its column names (``storage_options`` for an fsspec URL).

    Errors name ``source`` and say what was expected: a missing file, an unknown type, a column
    that is absent or not numeric, an array that is not 2-D and numeric, a table with no rows.
    """
    path = source.rstrip("/")
    if "://" not in path and not Path(path).exists():
        raise FileNotFoundError(f"no such file or directory: {source!r}")
    if path.endswith(".npy"):
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as exc:  # object arrays cannot be memory-mapped (nor loaded without pickle)
            raise InputTypeError(
                f"{source!r} cannot be read as a numeric array ({exc}); expected a 2-D numeric .npy"
            ) from None
        X = da.from_array(array, chunks=("auto",) + (-1,) * (array.ndim - 1))
    elif path.endswith(".zarr"):
        X = read_zarr(path, storage_options=storage_options)
    elif path.endswith((".csv", ".parquet", ".pq")) or Path(path).is_dir():
        try:  # a file that is not text in UTF-8, or not CSV / Parquet, fails in the reader with a ValueError
            reader = dd.read_csv if path.endswith(".csv") else dd.read_parquet
            frame = reader(source, storage_options=storage_options or None)
            names = list(columns) if columns else [c for c in frame.columns if is_numeric_dtype(frame[c].dtype)]
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise InputError(f"columns {missing} are not in {source!r}; it has {list(frame.columns)}")
            lengths = tuple(int(n) for n in frame.map_partitions(len).compute())
        except InputError:
            raise
        except ValueError as exc:
            kind = "CSV (UTF-8 text)" if path.endswith(".csv") else "Parquet"
            raise InputError(f"{source!r} cannot be read as {kind}: {type(exc).__name__}: {exc}") from None
        if sum(lengths) == 0:
            raise InputError(f"{source!r} has no rows; expected at least one")
        bad = {c: str(frame[c].dtype) for c in names if not is_numeric_dtype(frame[c].dtype)}
        if bad or not names:
            raise InputTypeError(
                f"{source!r}: expected numeric columns; "
                + (f"column(s) {bad} are not numbers" if bad else f"it has none among {list(frame.columns)}")
            )
        X = frame[names].to_dask_array(lengths=lengths).astype(np.float64)
    else:
        raise InputError(f"{source!r} is not a table emdask reads; expected {TABLE_TYPES}")
    if path.endswith((".npy", ".zarr")):
        if columns:
            raise InputError(f"columns can only be chosen in CSV or Parquet tables; {source!r} is an array")
        if X.ndim != 2:
            raise InputError(f"{source!r} holds a {X.ndim}-D array of shape {X.shape}; expected 2-D (rows, features)")
        names = [f"x{i}" for i in range(X.shape[1])]
    return X, names


def standardized(X: da.Array, scaling: dict[str, list[float]] | None) -> tuple[da.Array, dict[str, list[float]]]:
    """``X`` scaled to mean 0 and variance 1 per column (one pass to measure, unless ``scaling`` is given)."""
    if scaling is None:
        mean, std = da.compute(X.mean(axis=0), X.std(axis=0))
        scaling = {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}
    return (X - np.asarray(scaling["mean"])) / np.asarray(scaling["std"]), scaling
