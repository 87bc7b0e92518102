"""Models in Zarr: written so that a store is complete or absent, read without executing anything.

A model is a Zarr group (format 3): its fitted arrays are Zarr arrays, and one JSON attribute
``emdask`` holds the kind, the schema and emdask versions, the constructor parameters, the fit
summary and history, and ``complete: true`` written last.  No pickle anywhere.

Targets: a local directory path, a path ending in ``.zip`` (a ZipStore), any fsspec URL
(``memory://...``, ``s3://...``), or a ``zarr`` Store object.  Local directories and zip files
are written beside the target and renamed into place, so a write that fails or is killed never
damages what was there; other targets are written in a sibling location and moved, or (a Store
object) written in place with the completion mark last, and a loader refuses a store without it.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zarr
import zarr.storage
from zarr.abc.store import Store

#: 2: image sets keep their colour histogram and versioned codebooks (version 1 sets are still read).
SCHEMA_VERSION = 2
Target = str | os.PathLike[str] | Store
T = TypeVar("T")


class StoreError(ValueError):
    """A store that cannot be read as what was asked; the message names the store and what is wrong."""


def describe_target(target: Target) -> str:
    return repr(str(target)) if not isinstance(target, Store) else f"<{type(target).__name__}>"


def _is_url(target: Target) -> bool:
    return isinstance(target, str) and "://" in target


def _is_zip(target: Target) -> bool:
    return not isinstance(target, Store) and not _is_url(target) and str(target).endswith(".zip")


def check_writable(target: Target, *, overwrite: bool) -> None:
    """Fail before any long work if ``target`` cannot be written: it exists (without ``overwrite``),
    or a local path's nearest existing folder is a file or not writable."""
    name = describe_target(target)
    if isinstance(target, Store):
        return
    if _is_url(target):
        import fsspec

        fs, path = fsspec.core.url_to_fs(str(target))
        if fs.exists(path) and not overwrite:
            raise FileExistsError(f"{name} already exists; pass overwrite=True to replace it")
        return
    final = Path(target)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{name} already exists; pass overwrite=True to replace it")
    parent = final.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {name}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {name}: no permission to write in {str(parent)!r}")


@contextmanager
def write_group(target: Target, *, overwrite: bool, meta: dict[str, Any]) -> Iterator[zarr.Group]:
    """A new Zarr group that appears at ``target`` complete or not at all.

    ``meta`` becomes the group's ``emdask`` attribute, with ``complete: true`` added after the
    body of the ``with`` block has written everything else.
    """
    name = describe_target(target)
    if _is_url(target):
        import fsspec

        fs, path = fsspec.core.url_to_fs(str(target))
        if fs.exists(path) and not overwrite:
            raise FileExistsError(f"{name} already exists; pass overwrite=True to replace it")
        protocol = str(target).split("://", 1)[0]
        sibling = f"{path.rstrip('/')}.partial-{uuid.uuid4().hex[:8]}"
        try:
            yield _body(zarr.open_group(f"{protocol}://{sibling}", mode="w", zarr_format=3), meta)
            if fs.exists(path):
                fs.rm(path, recursive=True)
            fs.mv(sibling, path, recursive=True)
        finally:
            if fs.exists(sibling):
                fs.rm(sibling, recursive=True)
        return
    if isinstance(target, Store):
        group_exists = True
        try:
            zarr.open_group(target, mode="r")
        except Exception:
            group_exists = False
        if group_exists and not overwrite:
            raise FileExistsError(f"{name} already holds a Zarr group; pass overwrite=True to replace it")
        yield _body(zarr.open_group(target, mode="w", zarr_format=3), meta)
        return
    check_writable(target, overwrite=overwrite)
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        if _is_zip(target):
            # built as a directory (attributes are rewritten, which a zip cannot do), then packed in one go
            yield _body(zarr.open_group(str(tmp), mode="w", zarr_format=3), meta)
            _pack_zip(tmp, final)
        else:
            yield _body(zarr.open_group(str(tmp), mode="w", zarr_format=3), meta)
            _swap_directory(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _pack_zip(directory: Path, final: Path) -> None:
    """Pack a store built as a directory into the zip file ``final``, which appears whole or not at all."""
    packed = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}.zip")
    try:
        with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(p for p in directory.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(directory).as_posix())
        os.replace(packed, final)
    finally:
        packed.unlink(missing_ok=True)


@contextmanager
def update_group(target: Target) -> Iterator[zarr.Group]:
    """An existing emdask store opened for adding to it in place.

    The writer adds new nodes that no reader looks at yet and commits by rewriting the root's
    ``emdask`` attribute last, one atomic write (a file renamed into place, an object put), so a
    reader sees the store before or after, never between.  A zip file cannot be changed in place:
    it is unpacked beside itself, updated, and packed again in its place when the block ends.
    """
    if isinstance(target, Store) or not _is_zip(target):
        yield zarr.open_group(target, mode="r+")
        return
    final = Path(target)
    tmp = final.with_name(f".{final.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with zipfile.ZipFile(final) as archive:
            archive.extractall(tmp)
        yield zarr.open_group(str(tmp), mode="r+")
        _pack_zip(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _body(group: zarr.Group, meta: dict[str, Any]) -> zarr.Group:
    group.attrs["emdask"] = {**meta, "write_id": uuid.uuid4().hex, "complete": False}
    return group


def mark_complete(group: zarr.Group) -> None:
    """Write the completion mark: the last thing a writer does."""
    meta: dict[str, Any] = dict(group.attrs.asdict()["emdask"])  # type: ignore[arg-type]
    group.attrs["emdask"] = {**meta, "complete": True}


def _swap_directory(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``; an existing ``final`` is moved aside first and removed after."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
        os.rename(new, final)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        os.rename(new, final)


def _open(target: Target) -> zarr.Group:
    if _is_zip(target):
        if not Path(str(target)).is_file():
            raise FileNotFoundError(f"no such file: {target}")
        return zarr.open_group(zarr.storage.ZipStore(str(target), mode="r"), mode="r")
    return zarr.open_group(target, mode="r")


def read_group(target: Target, kind: str | tuple[str, ...] | None = None) -> tuple[zarr.Group, dict[str, Any]]:
    """Open an emdask store for reading and check it: a Zarr group, written by emdask, complete, of a known schema."""
    name = describe_target(target)
    try:
        group = _open(target)
    except Exception as exc:
        raise StoreError(f"{name} is not a Zarr group that emdask can open ({type(exc).__name__}: {exc})") from None
    meta = group.attrs.get("emdask")
    if not isinstance(meta, dict):
        raise StoreError(f"{name} is a Zarr group but not an emdask store: it has no 'emdask' attributes")
    schema = meta.get("schema_version")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise StoreError(
            f"{name} has emdask schema version {schema!r}, newer than this emdask reads ({SCHEMA_VERSION}); "
            "upgrade emdask to read it"
        )
    if meta.get("complete") is not True:
        raise StoreError(f"{name} is incomplete: the write that made it did not finish; write it again")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and meta.get("kind") not in kinds:
        raise StoreError(f"{name} holds an emdask {meta.get('kind')!r}, not {' or '.join(map(repr, kinds))}")
    return group, meta


def read_snapshot(
    target: Target, kind: str | tuple[str, ...], read: Callable[[zarr.Group, dict[str, Any]], T], timeout: float = 5.0
) -> T:
    """``read(group, meta)`` on one whole write of ``target``, even while another process replaces it.

    Every write has its own ``write_id``.  A read during which the id changed (its arrays may come
    from two writes), or that failed while the store was between the two renames of a swap, is
    done again, for up to ``timeout`` seconds; so a reader never returns a torn model.
    """
    deadline = time.monotonic() + timeout
    while True:
        first = _write_id(target)
        try:
            group, meta = read_group(target, kind)
            result = read(group, meta)
            if meta.get("write_id") == first and _write_id(target) == first:
                return result
        except Exception:  # a file or chunk that vanished mid-read shows as various errors
            if time.monotonic() > deadline or not _replaced_since(target, first):
                raise
        if time.monotonic() > deadline:
            raise StoreError(f"{describe_target(target)} was replaced again and again while it was read; try later")
        time.sleep(0.005)


def _write_id(target: Target) -> str | None:
    try:
        meta: Any = _open(target).attrs["emdask"]
        return str(meta["write_id"])
    except Exception:
        return None


def _replaced_since(target: Target, first: str | None) -> bool:
    """Whether a failed read overlapped a replacement: another write id now, or a swap under way
    (the old store renamed aside, the new one not yet in place)."""
    if _write_id(target) != first:
        return True
    if first is not None or isinstance(target, Store) or _is_url(target):
        return False
    final = Path(target)
    return any(final.parent.glob(f".{final.name}.old-*"))


def read_array(group: zarr.Group, key: str, target: Target) -> np.ndarray:
    """A whole array, with a clear error when it is missing or a chunk cannot be decoded."""
    name = describe_target(target)
    array = group.get(key)
    if not isinstance(array, zarr.Array):
        raise StoreError(f"{name} is missing the array {key!r}")
    try:
        return np.asarray(array[...])
    except Exception as exc:
        raise StoreError(f"{name}: the array {key!r} could not be read (corrupt or truncated chunk: {exc})") from None


def to_json(value: Any) -> Any:
    """Plain JSON for constructor parameters and fit summaries (arrays go to Zarr, not here)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StoreError(f"cannot store {type(value).__name__} as JSON")
