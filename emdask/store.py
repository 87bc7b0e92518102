"""Models in Zarr: written so that a store is complete or absent, read without executing anything.

A model is a Zarr group (format 3): its fitted arrays are Zarr arrays, and one JSON attribute
``emdask`` holds the kind, the schema and emdask versions, the constructor parameters, the fit
summary and history, and ``complete: true`` written last.  No pickle anywhere.

Targets: a local directory path, a path ending in ``.zip`` (a ZipStore), any fsspec URL
(``memory://...``, ``s3://...``; its endpoint and credentials from the environment or given as
``storage_options``, see :func:`at`), or a ``zarr`` Store object.

- Local directories and zip files are written beside the target and renamed into place, so a
  write that fails or is killed never damages what was there.
- Object stores have no rename.  A URL target is written whole at a sibling prefix
  (``<target>.partial-<id>``) first: the long part of a write (fitting, encoding) never touches
  the target.  It is then published object by object: the target's root metadata is first
  replaced by the new one marked incomplete (readers get a clear "incomplete" error, never a
  torn store, and emdask's readers wait for it), then the new objects are copied (server-side),
  stale ones deleted, and the root metadata marked complete is written last, one atomic put.
  A failure while publishing keeps the complete staged copy and names it; a later write to the
  same target removes what killed writes left.
- A Store object is written in place, the completion mark last; a loader refuses a store without it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zarr
import zarr.storage
from zarr.abc.store import Store

#: 2: image sets keep their colour histogram and versioned codebooks (version 1 sets are still read).
SCHEMA_VERSION = 2
T = TypeVar("T")


@dataclass(frozen=True)
class Remote:
    """An fsspec URL and the options its filesystem takes (``endpoint_url``, ``key``, ``secret``, ...)."""

    url: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.url


Target = str | os.PathLike[str] | Store | Remote


class StoreError(ValueError):
    """A store that cannot be read as what was asked; the message names the store and what is wrong."""


def at(target: Target, storage_options: Mapping[str, Any] | None = None) -> Target:
    """``target`` with its ``storage_options`` attached: a :class:`Remote` for a URL, unchanged otherwise.

    Options for a target that is not a URL are an error (a local path or a Store takes none).
    """
    if not storage_options:
        return target
    if isinstance(target, Remote):
        return Remote(target.url, {**target.options, **storage_options})
    if not _is_url(target):
        raise ValueError(f"storage_options are for fsspec URLs (s3://..., gs://...); {describe_target(target)} "
                         "is not one")
    return Remote(str(target), dict(storage_options))


def url_and_options(target: Target) -> tuple[str, dict[str, Any]]:
    """A URL target as (URL, storage options)."""
    return (target.url, dict(target.options)) if isinstance(target, Remote) else (str(target), {})


def describe_target(target: Target) -> str:
    return repr(str(target)) if not isinstance(target, Store) else f"<{type(target).__name__}>"


def _is_url(target: Target) -> bool:
    return isinstance(target, Remote) or (isinstance(target, str) and "://" in target)


def _filesystem(target: Target) -> tuple[Any, str, str, dict[str, Any]]:
    """A URL target's fsspec filesystem, its path there, its protocol and its options; unreachable endpoints,
    refused credentials and missing buckets become one :class:`StoreError` naming the URL."""
    import fsspec

    url, options = url_and_options(target)
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except Exception as exc:
        raise StoreError(f"cannot open {url!r}: {type(exc).__name__}: {exc}") from None
    return fs, path.rstrip("/"), url.split("://", 1)[0], options


def _probe(target: Target, fs: Any, path: str) -> bool:
    """Whether ``path`` exists, after checking that its bucket (object stores) can be reached and exists."""
    bucket = path.split("/", 1)[0]
    fs.invalidate_cache()  # listings cached by this filesystem object miss what other clients wrote
    try:
        if "/" in path and getattr(fs, "root_marker", "") == "":
            fs.ls(bucket, detail=False)  # unlike exists(), tells a missing bucket from one that cannot be reached
        return bool(fs.exists(path))
    except FileNotFoundError:
        raise StoreError(f"cannot write {describe_target(target)}: the bucket {bucket!r} does not exist") from None
    except Exception as exc:
        raise StoreError(f"cannot reach {describe_target(target)}: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _is_zip(target: Target) -> bool:
    return not isinstance(target, Store) and not _is_url(target) and str(target).endswith(".zip")


def check_writable(target: Target, *, overwrite: bool) -> None:
    """Fail before any long work if ``target`` cannot be written: it exists (without ``overwrite``),
    or a local path's nearest existing folder is a file or not writable."""
    name = describe_target(target)
    if isinstance(target, Store):
        return
    if _is_url(target):
        fs, path, _, _ = _filesystem(target)
        if _probe(target, fs, path) and not overwrite:
            raise FileExistsError(f"{name} already exists; pass overwrite=True to replace it")
        return
    assert not isinstance(target, Remote)
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
        fs, path, protocol, options = _filesystem(target)
        if _probe(target, fs, path) and not overwrite:
            raise FileExistsError(f"{name} already exists; pass overwrite=True to replace it")
        _remove_leftovers(fs, path)
        staged = f"{path}.partial-{uuid.uuid4().hex[:8]}"
        try:
            yield _body(zarr.open_group(f"{protocol}://{staged}", mode="w", zarr_format=3, storage_options=options),
                        meta)
        except BaseException:
            fs.rm(staged, recursive=True) if fs.exists(staged) else None
            raise
        _publish(target, fs, staged, path)
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
    assert not isinstance(target, Remote)
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


def _remove_leftovers(fs: Any, path: str) -> None:
    """Staged copies beside ``path`` that killed writes left behind."""
    parent, _, name = path.rpartition("/")
    fs.invalidate_cache()
    try:
        siblings = fs.ls(parent, detail=False) if parent else []
    except FileNotFoundError:
        return
    for sibling in siblings:
        if sibling.rstrip("/").rpartition("/")[2].startswith(f"{name}.partial-"):
            fs.rm(sibling, recursive=True)


def _publish(target: Target, fs: Any, staged: str, path: str) -> None:
    """Replace ``path`` by the complete store at ``staged``, the root metadata (marked complete) last."""
    root = "zarr.json"
    fs.invalidate_cache()
    new = {key[len(staged) + 1:] for key in fs.find(staged)}
    old = {key[len(path) + 1:] for key in fs.find(path)} if fs.exists(path) else set()
    try:
        final_root = fs.cat_file(f"{staged}/{root}")
        hidden = json.loads(final_root)
        hidden["attributes"]["emdask"]["complete"] = False
        fs.pipe_file(f"{path}/{root}", json.dumps(hidden).encode())
        body = sorted(new - {root})
        if body:
            fs.copy([f"{staged}/{k}" for k in body], [f"{path}/{k}" for k in body])
        stale = sorted(old - new)
        if stale:
            fs.rm([f"{path}/{k}" for k in stale])
        fs.pipe_file(f"{path}/{root}", final_root)
    except Exception as exc:
        raise StoreError(f"writing {describe_target(target)} failed while publishing it ({type(exc).__name__}: "
                         f"{_first_line(exc)}); the complete new store is kept at {staged!r}") from None
    fs.rm(staged, recursive=True)


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
        yield _open(target, mode="r+")
        return
    assert not isinstance(target, Remote)
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


def _open(target: Target, mode: Any = "r") -> zarr.Group:
    if _is_zip(target):
        if not Path(str(target)).is_file():
            raise FileNotFoundError(f"no such file: {target}")
        return zarr.open_group(zarr.storage.ZipStore(str(target), mode="r"), mode="r")
    if _is_url(target):
        url, options = url_and_options(target)
        return zarr.open_group(url, mode=mode, storage_options=options or None)
    return zarr.open_group(target, mode=mode)


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
        raise StoreError(f"{name} is incomplete: the write that made it did not finish (or is being published); "
                         "write it again")
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
    if isinstance(target, Store):
        return False
    if _is_url(target):  # being published: the root says incomplete while its staged copy exists
        fs, path, _, _ = _filesystem(target)
        parent, _, name = path.rpartition("/")
        fs.invalidate_cache()
        return any(p.rstrip("/").rpartition("/")[2].startswith(f"{name}.partial-") for p in fs.ls(parent, detail=False))
    if first is not None or isinstance(target, Remote):
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
    if isinstance(value, np.ndarray) and value.dtype == object:  # column names
        return [to_json(v) for v in value]
    if isinstance(value, Remote):
        return value.url  # never its options: they may hold credentials
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StoreError(f"cannot store {type(value).__name__} as JSON")
