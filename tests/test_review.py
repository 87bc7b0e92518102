"""Defects found by reading the code (issue 14), each checked the way it showed, and the redesign's contracts."""
from __future__ import annotations

import ast
import re
import sys
import time
import tomllib
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from PIL import Image

import emdask
from emdask import images
from emdask.engine import Cancelled, InMemoryData, run_shared
from emdask.errors import BAD_INPUT, InputError
from emdask.readers import ImageReadError, read_images

ROOT = Path(__file__).parents[1]
PHOTOS = ROOT / "data" / "photos"


def test_image_sets_keep_a_write_id_that_changes_with_each_write(tmp_path):
    out = tmp_path / "set.zarr"
    images.compress({"c": np.asarray(Image.open(PHOTOS / "coffee.png"))}, out, n_colours=4, random_state=0)
    first = images.info(out)["write_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    images.append({"r": np.asarray(Image.open(PHOTOS / "rocket.jpg"))}, out)
    assert re.fullmatch(r"[0-9a-f]{32}", images.info(out)["write_id"]) and images.info(out)["write_id"] != first


def test_a_csv_that_is_not_utf8_is_bad_input_naming_the_file(tmp_path):
    from emdask.tables import read_table
    from flows.fit_mixture import naming

    path = tmp_path / "latin1.csv"
    path.write_bytes("température,durée\n1,2\n3,4\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1.csv' cannot be read as CSV \(UTF-8 text\): UnicodeDecodeError"):
        with naming(str(path)):
            read_table(str(path))


@pytest.mark.parametrize("make", [
    lambda X: emdask.KMeans(3, random_state=0).fit(X).predict,
    lambda X: emdask.KMeans(3, random_state=0).fit(X).transform,
    lambda X: emdask.GaussianMixture(2, random_state=0).fit(X).predict_proba,
])
def test_nan_in_a_dask_array_is_reported_at_its_global_row(make):
    X = np.random.default_rng(0).normal(size=(1000, 2))
    method = make(X)
    X[777, 1] = np.nan
    with pytest.raises(InputError, match=r"first at row 777, column 1"):
        method(da.from_array(X, chunks=100)).compute()


def test_grayscale_with_alpha_is_converted_as_the_strict_error_advises(tmp_path):
    gray = np.asarray(Image.open(PHOTOS / "coffee.png").convert("L"))
    Image.fromarray(np.dstack([gray, np.full_like(gray, 128)]), mode="LA").save(tmp_path / "la.png")
    with pytest.raises(ImageReadError, match=r"la.png is grayscale with alpha, not RGB; pass colour='convert'"):
        read_images([tmp_path / "la.png"])
    (source,), _ = read_images([tmp_path / "la.png"], colour="convert")
    np.testing.assert_array_equal(source.pixels.compute(), np.repeat(gray[..., None], 3, axis=2))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_fit_mixture_rerun_writes_the_labels_it_is_asked_for(tmp_path):
    import dask.dataframe as dd

    from flows.fit_mixture import fit_mixture

    source, out, labels = str(ROOT / "data" / "old_faithful.csv"), str(tmp_path / "m.zarr"), str(tmp_path / "l.parquet")
    cols = ["eruptions", "waiting"]
    fit_mixture(source=source, output=out, model="gmm", k=[2], columns=cols, standardize=True, workers=1)
    again = fit_mixture(source=source, output=out, model="gmm", k=[2], columns=cols, standardize=True,
                        labels_output=labels, workers=1)
    assert again["skipped"] and again["labels"] == labels
    X = np.loadtxt(source, delimiter=",", skiprows=1, usecols=(1, 2))
    model = emdask.load(out)
    direct = emdask.GaussianMixture(2, random_state=0).fit((X - X.mean(axis=0)) / X.std(axis=0))
    expected = direct.predict((X - X.mean(axis=0)) / X.std(axis=0))
    np.testing.assert_allclose(model.means_, direct.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(dd.read_parquet(labels).compute()["label"].to_numpy(), expected)


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_library_declares_what_it_imports_and_imports_no_prefect():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ]", d)[0].lower().replace("-", "_") for d in meta["dependencies"]}
    module_of = {"skimage": "scikit_image", "sklearn": "scikit_learn", "PIL": "pillow", "yaml": "pyyaml"}
    third_party = (
        {module_of.get(n, n).lower() for n in _imports(ROOT / "emdask")} - set(sys.stdlib_module_names) - {"emdask"}
    )
    assert third_party <= declared, f"imported but not declared: {sorted(third_party - declared)}"
    assert "prefect" not in third_party and "prefect" not in declared  # the flows' extra, not the library's


def test_storage_imports_nothing_else_of_emdask():
    tree = ast.parse((ROOT / "emdask" / "store.py").read_text())
    ours = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("emdask")]
    assert ours == []


def test_bad_input_is_not_a_bug_and_a_bug_is_not_bad_input():
    assert issubclass(ImageReadError, InputError) and issubclass(InputError, ValueError)
    assert not issubclass(TypeError, BAD_INPUT) and not issubclass(ConnectionError, BAD_INPUT)


def _passes(n: int, fail_at: int | None = None):
    def procedure(passes) -> int:
        for i in range(n):
            passes.map_reduce(lambda x, w, offset: emdask.engine.Each(()))
            if fail_at is not None and i + 1 == fail_at:
                raise RuntimeError(f"member failed after pass {fail_at}")
        return n

    return procedure


def test_a_failing_member_stops_the_shared_passes_at_once():
    """One member fails after pass 10 while another wants 5 000: the group stops there and raises that failure."""
    data = InMemoryData(np.zeros((4, 1)), name="counted")
    made = []
    real = data.map_reduce
    data.map_reduce = lambda fn, *args: made.append(1) or real(fn, *args)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="member failed after pass 10"):
        run_shared(data, [_passes(5000), _passes(50, fail_at=10), _passes(5000)])
    assert len(made) <= 11 and time.perf_counter() - t0 < 5
    assert run_shared(data, [_passes(3), _passes(5)]) == [3, 5]  # and without failures, each gets its passes
    assert issubclass(Cancelled, RuntimeError)
