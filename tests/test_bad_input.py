"""The bad-input matrix: each bad input, through the Python API, the command line and the Prefect flows.

Every row must give one clear error that names the input and what was expected, a non-zero exit
status on the command line, and leave the output folder exactly as it was (nothing written,
nothing damaged, no partial files).  Tables go through ``emdask.tables.read_table`` + an
estimator, ``python -m flows.fit_mixture`` and the ``fit-mixture`` flow; images through
``emdask.readers`` + ``emdask.images.compress``, ``emdask compress`` and the ``compress-images`` flow.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

import emdask
from emdask import images
from emdask.readers import read_images
from emdask.tables import read_table

PHOTOS = Path(__file__).parents[1] / "data" / "photos"
RNG = np.random.default_rng(0)
GOOD = RNG.normal(size=(1000, 3))


@dataclass(frozen=True)
class Bad:
    id: str
    kind: str  # "table" or "image"
    make: Callable[[Path], str]  # writes the bad input under the folder given, returns the source to pass
    error: type[BaseException]
    match: str  # a regex the message must contain on every surface
    model: str = "gmm"
    k: int = 2
    columns: tuple[str, ...] = ()
    existing: bool = False  # the output already holds a store (made before the call; must stay intact)
    output: str = "out/result.zarr"


def _npy(array: np.ndarray, name: str = "t.npy") -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        np.save(tmp / name, array, allow_pickle=array.dtype == object)
        return str(tmp / name)

    return make


def _text(text: str, name: str) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        (tmp / name).write_text(text)
        return str(tmp / name)

    return make


def _with(value: float, row: int) -> np.ndarray:
    X = GOOD.copy()
    X[row, 1] = value
    return X


def _binary_with_a_two(row: int) -> np.ndarray:
    X = (GOOD > 0).astype(np.float64)
    X[row, 0] = 2.0
    return X


def _corrupt_zarr(tmp: Path) -> str:
    store = tmp / "t.zarr"
    z = zarr.create_array(str(store), shape=GOOD.shape, chunks=(100, 3), dtype="f8")
    z[:] = GOOD
    chunk = store / "c" / "7" / "0"
    chunk.write_bytes(chunk.read_bytes()[:9])  # truncated, as by a full disk or a killed copy
    return str(store)


def _photo(name: str = "chelsea.png") -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        (tmp / "in").mkdir(exist_ok=True)
        Image.open(PHOTOS / name).resize((64, 48)).save(tmp / "in" / name)
        return str(tmp / "in" / name)

    return make


def _truncated_png(tmp: Path) -> str:
    source = _photo()(tmp)
    Path(source).write_bytes(Path(source).read_bytes()[:400])
    return source


def _grey_png(tmp: Path) -> str:
    Image.fromarray(RNG.integers(0, 255, (20, 30), dtype=np.uint8)).save(tmp / "grey.png")
    return str(tmp / "grey.png")


def _corrupt_image_zarr(tmp: Path) -> str:
    store = tmp / "img.zarr"
    z = zarr.create_array(str(store), shape=(64, 64, 3), chunks=(32, 32, 3), dtype="u1")
    z[:] = RNG.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    chunk = store / "c" / "1" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:9])
    return str(store)


def _parent_is_a_file(make: Callable[[Path], str]) -> Callable[[Path], str]:
    def wrapped(tmp: Path) -> str:
        (tmp / "out" / "afile").write_text("not a folder")
        return make(tmp)

    return wrapped


CSV_HEADER_ONLY = "a,b,c\n"
TABLE = "table"
IMAGE = "image"

ROWS = [
    Bad(
        "nan-in-a-late-chunk",
        TABLE,
        _npy(_with(np.nan, 950)),
        ValueError,
        r"NaN or infinity \(first at row 950, column 1",
    ),
    Bad("infinity", TABLE, _npy(_with(np.inf, 3)), ValueError, r"NaN or infinity \(first at row 3, column 1"),
    Bad("one-dimensional", TABLE, _npy(GOOD[:, 0]), ValueError, r"1-D .*shape \(1000,\).*expected 2-D"),
    Bad("three-dimensional", TABLE, _npy(GOOD.reshape(10, 100, 3)), ValueError, r"3-D .*expected 2-D"),
    Bad("zero-rows-npy", TABLE, _npy(GOOD[:0]), ValueError, r"0 sample\(s\) .* while a minimum of 1 is required"),
    Bad("zero-rows-csv", TABLE, _text(CSV_HEADER_ONLY, "t.csv"), ValueError, r"has no rows; expected at least one"),
    Bad("one-row-two-components", TABLE, _npy(GOOD[:1]), ValueError, r"at least 2 samples to fit a GaussianMixture"),
    Bad(
        "strings",
        TABLE,
        _text("a,b\n1,x\n2,y\n", "t.csv"),
        TypeError,
        r"expected numeric columns; column\(s\) \{'b'",
        columns=("a", "b"),
    ),
    Bad(
        "object-dtype",
        TABLE,
        _npy(np.array([[1.0, None]] * 5, dtype=object)),
        TypeError,
        r"cannot be read as a numeric array .*expected a 2-D numeric",
    ),
    Bad(
        "non-binary-to-bernoulli",
        TABLE,
        _npy(_binary_with_a_two(640)),
        ValueError,
        r"must be binary \(0/1 or bool\) for a BernoulliMixture; got 2.0 at row 640, column 0",
        model="bernoulli",
    ),
    Bad("negative-k", TABLE, _npy(GOOD), ValueError, r"must be an int (>= 1|in \[1, n_samples=1000\]); got -1", k=-1),
    Bad(
        "huge-k",
        TABLE,
        _npy(GOOD),
        ValueError,
        r"n_components must be an int in \[1, n_samples=1000\]; got 1000000000",
        k=10**9,
    ),
    Bad(
        "corrupt-zarr-chunk",
        TABLE,
        _corrupt_zarr,
        emdask.StoreError,
        r"the chunk at \[700:800, 0:3\] could not be read .*corrupt or truncated",
    ),
    Bad(
        "unknown-file-type", TABLE, _text("hello", "t.xyz"), ValueError, r"is not a table emdask reads; expected \.csv"
    ),
    Bad("missing-file", TABLE, lambda tmp: str(tmp / "nothing.csv"), FileNotFoundError, r"no such file or directory"),
    Bad(
        "unwritable-output",
        TABLE,
        _parent_is_a_file(_npy(GOOD)),
        NotADirectoryError,
        r"cannot write .*afile/result.zarr'.* is a file, not a directory",
        output="out/afile/result.zarr",
    ),
    Bad(
        "output-holds-a-store",
        TABLE,
        _npy(GOOD),
        FileExistsError,
        r"result.zarr'? already (exists|holds another)",
        existing=True,
    ),
    Bad("truncated-image", IMAGE, _truncated_png, ValueError, r"cannot read image .*chelsea.png"),
    Bad("greyscale-image", IMAGE, _grey_png, ValueError, r"grey.png is grayscale, not RGB; pass colour='convert'"),
    Bad(
        "unknown-image-type",
        IMAGE,
        _text("hello", "notes.txt"),
        ValueError,
        r"unknown image type '.txt' for .*notes.txt; expected one of .png",
    ),
    Bad(
        "corrupt-image-zarr-chunk",
        IMAGE,
        _corrupt_image_zarr,
        emdask.StoreError,
        r"img.zarr': the chunk at \[32:64, 32:64, 0:3\] could not be read",
    ),
    # the API names its parameter, the command its flag
    Bad("negative-colours", IMAGE, _photo(), ValueError,
        r"(n_colours must be an int in \[1, |-k must be between 1 and )", k=-1),
    Bad(
        "image-output-unwritable",
        IMAGE,
        _parent_is_a_file(_photo()),
        NotADirectoryError,
        r"is a file, not a directory",
        output="out/afile/result.zarr",
    ),
    Bad(
        "image-output-holds-a-store",
        IMAGE,
        _photo(),
        FileExistsError,
        r"result.zarr'? already (exists|holds another)",
        existing=True,
    ),
]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes (hidden partial files included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _existing_store(row: Bad, output: Path) -> None:
    if row.kind == TABLE:
        emdask.KMeans(2, random_state=0).fit(GOOD[:50]).save(output)
    else:
        images.compress({"old": RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8)}, output, n_colours=2, random_state=0)


def _api(row: Bad, source: str, output: str) -> None:
    if row.kind == TABLE:
        X, _ = read_table(source, list(row.columns) or None)
        model = {"gmm": emdask.GaussianMixture, "bernoulli": emdask.BernoulliMixture}[row.model](row.k, random_state=0)
        emdask.store.check_writable(output, overwrite=False)
        model.fit(X).save(output)
    else:
        found, _ = read_images([source])
        images.compress(found, output, n_colours=row.k, random_state=0, max_iter=5)


def _cli(row: Bad, source: str, output: str, scheduler: str, capsys: pytest.CaptureFixture[str]) -> None:
    if row.kind == TABLE:
        from flows.fit_mixture import main

        argv = [source, "-o", output, "--model", row.model, "--k", str(row.k), "--scheduler", scheduler]
        argv += ["--columns", *row.columns] if row.columns else []
    else:
        from emdask.cli import main

        argv = ["compress", source, "-o", output, "-k", str(row.k), "--max-iter", "5", "--scheduler", scheduler]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, f"exit status {code}"
    raise row.error(err[-1])  # re-raised for the common check of the message


def _flow(row: Bad, source: str, output: str, scheduler: str) -> None:
    if row.kind == TABLE:
        from flows.fit_mixture import fit_mixture

        fit_mixture(source=source, output=output, model=row.model, k=[row.k], columns=list(row.columns) or None,  # type: ignore[arg-type]
                    scheduler=scheduler)
    else:
        from flows.compress_images import compress_images

        compress_images(sources=[source], output=output, k=row.k, max_iter=5, scheduler=scheduler)


@pytest.mark.slow
@pytest.mark.parametrize("surface", ["api", "cli", "flow"])
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Bad, surface: str, tmp_path: Path, cluster, prefect_harness, capsys) -> None:
    (tmp_path / "out").mkdir()
    source = row.make(tmp_path)
    output = tmp_path / row.output
    if row.existing:
        _existing_store(row, output)
    before = _snapshot(tmp_path / "out")
    scheduler = cluster.scheduler.address
    with pytest.raises(Exception) as caught:
        if surface == "api":
            _api(row, source, str(output))
        elif surface == "cli":
            _cli(row, source, str(output), scheduler, capsys)
        else:
            _flow(row, source, str(output), scheduler)
    message = str(caught.value)
    if surface == "cli":
        assert message.startswith(("python -m flows.fit_mixture: error: ", "emdask: error: ")), message
    else:
        assert isinstance(caught.value, row.error), f"{type(caught.value).__name__}: {message}"
    assert re.search(row.match, message), message
    if surface != "api" and row.id not in ("negative-k", "negative-colours", "huge-k"):
        named = Path(source).name if "output" not in row.id and "unwritable" not in row.id else Path(row.output).name
        assert named in message, f"the message does not name {named}: {message}"
    assert _snapshot(tmp_path / "out") == before, "the output folder changed"
    if row.existing:
        assert emdask.store.read_group(output)  # still complete and readable
