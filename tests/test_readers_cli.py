"""Image readers, the out-of-core compression of image sets, and the ``emdask`` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import emdask
from emdask import images
from emdask.cli import main
from emdask.readers import ImageReadError, read_images

PHOTOS = Path(__file__).parents[1] / "data" / "photos"


def _pixels(paths) -> np.ndarray:
    return np.concatenate([np.asarray(Image.open(p).convert("RGB")).reshape(-1, 3) for p in paths])


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """A nested directory of real photos: PNG, JPEG and a tiled TIFF."""
    d = tmp_path_factory.mktemp("photos")
    (d / "nested").mkdir()
    for name in ("chelsea.png", "rocket.jpg"):
        (d / name).write_bytes((PHOTOS / name).read_bytes())
    (d / "nested" / "astronaut.tif").write_bytes((PHOTOS / "astronaut.tif").read_bytes())
    return d


def test_directory_gives_the_kmeans_codebook_of_all_pixels(photo_dir, tmp_path):
    sources, skipped = read_images([photo_dir])
    assert [s.name for s in sources] == ["chelsea", "astronaut", "rocket"] and not skipped
    files = [photo_dir / "chelsea.png", photo_dir / "nested" / "astronaut.tif", photo_dir / "rocket.jpg"]
    X = _pixels(files).astype(np.float64)
    init = X[np.random.default_rng(0).choice(len(X), 6, replace=False)] + 0.3
    km = emdask.KMeans(6, init=init).fit(X)
    summary = images.compress(sources, tmp_path / "set.zarr", n_colours=6, init=init, max_iter=300)
    root = zarr.open_group(str(tmp_path / "set.zarr"), mode="r")
    codebook = root["codebooks/0"][...]
    np.testing.assert_array_equal(codebook, np.rint(km.cluster_centers_).astype(np.uint8))
    for s, f in zip(summary["images"], files):
        pixels = _pixels([f]).astype(float)
        codes = root[f"images/{s['name']}/labels/codes/0"][...].ravel()
        dist = ((pixels[:, None, :] - codebook[None].astype(float)) ** 2).sum(-1)
        np.testing.assert_array_equal(dist[np.arange(len(dist)), codes], dist.min(axis=1))
        assert s["source"] == str(f)


def test_tiled_tiff_equals_the_same_pixels_from_png_tiles(tmp_path):
    big = np.tile(np.asarray(Image.open(PHOTOS / "coffee.png")), (2, 2, 1))  # 800 x 1200
    tifffile.imwrite(tmp_path / "big.tif", big, tile=(256, 256), photometric="rgb")
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for i, rows in enumerate((slice(0, 400), slice(400, 800))):
        for j, cols in enumerate((slice(0, 600), slice(600, 1200))):
            Image.fromarray(big[rows, cols]).save(tiles / f"t{i}{j}.png")
    init = big.reshape(-1, 3)[:: 99_991][:5].astype(float) + 0.4
    tiff = images.compress(read_images([tmp_path / "big.tif"])[0], tmp_path / "a.zarr", n_colours=5, init=init)
    pngs = images.compress(read_images([tiles])[0], tmp_path / "b.zarr", n_colours=5, init=init)
    a, b = zarr.open_group(str(tmp_path / "a.zarr")), zarr.open_group(str(tmp_path / "b.zarr"))
    np.testing.assert_array_equal(a["codebooks/0"][...], b["codebooks/0"][...])
    mosaic = np.block([[b[f"images/t{i}{j}/labels/codes/0"][...] for j in range(2)] for i in range(2)])
    np.testing.assert_array_equal(a["images/big/labels/codes/0"][...], mosaic)
    assert tiff["accounting"]["n_pixels"] == pngs["accounting"]["n_pixels"] == 800 * 1200


def test_reading_is_lazy(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(path)
    (sources, _) = read_images([path])
    path.write_bytes(b"not a png any more")  # only the header was read
    with pytest.raises(ImageReadError, match=r"cannot read image .*x.png"):
        sources[0].pixels.compute()


@pytest.fixture
def mixed_dir(tmp_path) -> Path:
    d = tmp_path / "mixed"
    d.mkdir()
    rgb = np.asarray(Image.open(PHOTOS / "chelsea.png"))
    Image.fromarray(rgb).save(d / "a_rgb.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(d / "b_rgba.png")
    Image.fromarray(rgb[..., 0]).save(d / "c_gray.png")
    return d


def test_colour_policy(mixed_dir, tmp_path):
    with pytest.raises(ImageReadError, match=r"b_rgba.png is RGBA, not RGB; pass colour='convert'"):
        read_images([mixed_dir])
    sources, _ = read_images([mixed_dir], colour="convert")
    rgb = np.asarray(Image.open(PHOTOS / "chelsea.png"))
    np.testing.assert_array_equal(sources[1].pixels.compute(), rgb)  # alpha dropped
    np.testing.assert_array_equal(sources[2].pixels.compute(), np.repeat(rgb[..., :1], 3, axis=2))  # gray -> RGB


def test_bad_sources(tmp_path):
    with pytest.raises(ImageReadError, match=r"no such file or directory: .*missing"):
        read_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match=r"no PNG, JPEG or TIFF files in directory .*empty"):
        read_images([tmp_path / "empty"])
    tifffile.imwrite(tmp_path / "deep.tif", np.zeros((8, 8, 3), np.uint16), photometric="rgb")
    with pytest.raises(ImageReadError, match=r"deep.tif has RGB uint16 pixels; only 8-bit images are supported"):
        read_images([tmp_path / "deep.tif"])
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(ImageReadError, match=r"unknown image type '.bmp'"):
        read_images([tmp_path / "x.bmp"])


def test_truncated_jpeg_raises_or_is_skipped(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    data = (PHOTOS / "rocket.jpg").read_bytes()
    (d / "good.jpg").write_bytes(data)
    (d / "cut.jpg").write_bytes(data[: len(data) // 3])
    sources, _ = read_images([d])
    with pytest.raises(ImageReadError, match=r"cannot read image .*cut.jpg"):
        images.compress(sources, tmp_path / "out.zarr", n_colours=4, random_state=0)
    assert not (tmp_path / "out.zarr").exists()  # nothing written for a failed run
    sources, skipped = read_images([d], on_error="skip")
    assert [s.name for s in sources] == ["good"] and "cut.jpg" in skipped[0]
    summary = images.compress(sources, tmp_path / "out.zarr", n_colours=4, random_state=0, skipped=skipped)
    assert images.info(tmp_path / "out.zarr")["skipped"] == skipped == summary["skipped"]
    # the command reports the worker's failure as its one last line: no worker traceback, no CancelledError
    run = subprocess.run([sys.executable, "-m", "emdask.cli", "compress", str(d), "-o", str(tmp_path / "cli.zarr"),
                          "-k", "4", "--workers", "1"], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1].startswith("emdask: error: cannot read image")
    assert "Traceback" not in run.stderr and "Compute Failed" not in run.stderr and "Cancelled" not in run.stderr


def test_more_colours_than_distinct_pixels_warns(tmp_path):
    flat = np.zeros((20, 20, 3), np.uint8)
    flat[10:] = 255
    with pytest.warns(emdask.ConvergenceWarning, match=r"distinct clusters \(2\) found smaller than n_clusters \(4\)"):
        images.compress({"flat": flat}, tmp_path / "f.zarr", n_colours=4, random_state=0)
    np.testing.assert_array_equal(images.decompress(tmp_path / "f.zarr").compute(), flat)


def test_psnr_target_picks_the_smallest_k(tmp_path):
    photo = {"coffee": np.asarray(Image.open(PHOTOS / "coffee.png"))}  # more pixels than the search's sample
    target = 26.0
    summary = images.compress(photo, tmp_path / "q.zarr", psnr=target, candidates=(2, 4, 8, 16, 32), random_state=0)
    k = summary["k"]
    assert summary["accounting"]["psnr_db_overall"] >= target
    assert k > 2
    smaller = images.compress(photo, tmp_path / "s.zarr", n_colours=k // 2, random_state=0)
    assert smaller["accounting"]["psnr_db_overall"] < target


@pytest.mark.slow
def test_command_line_round_trip(photo_dir, tmp_path, capsys):
    out = tmp_path / "set.zarr"
    assert main(["compress", str(photo_dir), "-o", str(out), "-k", "8", "--workers", "1", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    for label in (
        "images",
        "PSNR all pixels / worst image",
        "notes' bits",
        "bytes on disk",
        "vs the source files",
        "written:",
    ):
        assert label in printed
    assert main(["decompress", str(out), "-o", str(tmp_path / "png")]) == 0
    root = zarr.open_group(str(out), mode="r")
    for name in ("chelsea", "astronaut", "rocket"):
        png = np.asarray(Image.open(tmp_path / "png" / f"{name}.png"))
        np.testing.assert_array_equal(png, root["codebooks/0"][...][root[f"images/{name}/labels/codes/0"][...]])
    assert main(["info", str(out), "--plot", str(tmp_path / "plots")]) == 0
    for name in ("contact_sheet.png", "convergence.png"):
        with Image.open(tmp_path / "plots" / name) as im:
            assert im.size[0] > 300 and im.size[1] > 200


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["compress", "{tmp}/missing", "-o", "{tmp}/o.zarr"], 1, "emdask: error: no such file or directory: "),
        (
            ["compress", "{photos}", "-o", "{tmp}/o.zarr", "-k", "0"],
            1,
            "emdask: error: -k must be between 1 and 65536 (the images hold",
        ),
        (["compress", "{photos}", "-o", "{tmp}/o.zarr", "--psnr", "-3"], 1, "emdask: error: --psnr must be a positive"),
        (["compress", "{photos}", "-o", "{tmp}/o.zarr", "--n-init", "0"], 1, "error: --n-init must be at least"),
        (["compress", "{photos}", "-o", "{tmp}/o.zarr", "--psnr-over", "worst"], 1, "--psnr-over goes with --psnr"),
        (["compress", "{photos}", "-o", "{tmp}/o.zarr", "-k", "4", "--psnr", "30"], 2, "not allowed with argument"),
        (
            ["compress", "{photos}", "-o", "{tmp}/o.zarr", "--candidates", "a,b", "--psnr", "30"],
            1,
            "--candidates must be",
        ),
        (["info", "{tmp}/nothing.zarr"], 1, "emdask: error: '{tmp}/nothing.zarr' is not a Zarr group"),
        (["decompress", "{photos}", "-o", "{tmp}/png"], 1, "is not a Zarr group that emdask can open"),
    ],
)
def test_command_line_errors(args, code, message, tmp_path, capsys):
    """In this process (``main``, as ``emdask`` runs it): the exit status and the one line on stderr."""
    fill = {"tmp": str(tmp_path), "photos": str(PHOTOS)}
    argv = [a.format(**fill) for a in args]
    try:
        returned = main(argv)
    except SystemExit as exit:  # argparse's usage errors
        returned = exit.code
    stderr = capsys.readouterr().err
    assert returned == code
    assert message.format(**fill) in stderr
    if code == 1:
        assert stderr.strip().splitlines()[-1].startswith("emdask: error:")
        assert "Dask cluster" not in stderr  # every argument is checked before a cluster starts
    assert not (tmp_path / "o.zarr").exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "o.zarr"
    images.compress({"c": np.asarray(Image.open(PHOTOS / "chelsea.png"))}, out, n_colours=3, random_state=0)
    before = images.decompress(out).compute()
    code = main(["compress", str(PHOTOS / "rocket.jpg"), "-o", str(out), "-k", "3", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and f"-o {out} already exists; pass --overwrite to replace it" in err
    assert "Dask cluster" not in err
    np.testing.assert_array_equal(images.decompress(out).compute(), before)


def test_version_decompress_overwrite_and_a_closed_pipe(tmp_path):
    import emdask

    run = [sys.executable, "-m", "emdask.cli"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"emdask {emdask.__version__}"
    out = tmp_path / "o.zarr"
    images.compress({"c": np.asarray(Image.open(PHOTOS / "chelsea.png"))}, out, n_colours=3, random_state=0)
    assert subprocess.run([*run, "decompress", str(out), "-o", str(tmp_path / "png")]).returncode == 0
    again = subprocess.run([*run, "decompress", str(out), "-o", str(tmp_path / "png")], capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.startswith(f"emdask: error: {tmp_path / 'png' / 'c.png'} already")
    assert subprocess.run([*run, "decompress", str(out), "-o", str(tmp_path / "png"), "--overwrite"]).returncode == 0
    # the reader of stdout went away before the command wrote (as `emdask info ... | head` when head exits)
    reader, writer = os.pipe()
    os.close(reader)
    closed = subprocess.run([*run, "info", str(out)], stdout=writer, stderr=subprocess.PIPE, text=True)
    os.close(writer)
    assert closed.returncode == 1 and closed.stderr == ""


@pytest.mark.parametrize("over, words", [("set", "over all pixels"), ("worst", "on the worst image")])
def test_psnr_target_out_of_reach_warns_and_exits_3(tmp_path, over, words):
    """As a person runs it: warnings and progress on stderr, no line per image written (the progress bar counts)."""
    out = tmp_path / "o.zarr"
    shown = subprocess.run(
        [sys.executable, "-m", "emdask.cli", "compress", str(PHOTOS / "chelsea.png"), "-o", str(out), "--psnr", "90",
         "--psnr-over", over, "--candidates", "2,4", "--workers", "1"], capture_output=True, text=True)
    assert shown.returncode == 3
    assert f"emdask: warning: no K among --candidates reaches 90 dB {words}; K=4 reaches" in shown.stderr
    assert f"(largest tried; 90.0 dB {words} not reached)" in shown.stdout
    assert "counting the colours of 1 images" in shown.stderr and "encoded chelsea" not in shown.stderr
    assert images.info(out)["k"] == 4  # the set is written, with the largest K


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # per image, the four-colour one has four
@pytest.mark.parametrize("per_image", [False, True])
def test_psnr_target_on_the_worst_image_is_met_by_every_image(tmp_path, per_image):
    """A photo beside a four-colour image, one shared codebook or one each: over the set the easy image halves the
    error, so a target on the worst image needs a larger K.  The truth for each K is the encoder's per-image PSNR."""
    coffee = np.asarray(Image.open(PHOTOS / "coffee.png"))[::2, ::2]
    blocks = np.zeros_like(coffee)
    blocks[: len(blocks) // 2, :, 0] = 200
    blocks[:, : blocks.shape[1] // 2, 2] = 90
    photos = {"coffee": coffee, "blocks": blocks}
    candidates = (4, 8, 16, 32, 64)
    fixed = {k: images.compress(photos, tmp_path / f"k{k}.zarr", n_colours=k, per_image=per_image, random_state=0)
             for k in candidates}
    worst = {k: summary["accounting"]["psnr_db_min"] for k, summary in fixed.items()}
    assert list(worst.values()) == sorted(worst.values())
    target = (worst[16] + worst[32]) / 2  # K=16 misses it on coffee, K=32 reaches it
    chosen = images.compress(photos, tmp_path / "w.zarr", psnr=target, psnr_over="worst", candidates=candidates,
                             per_image=per_image, random_state=0)
    assert chosen["k"] == 32 and chosen["psnr_over"] == "worst"
    assert min(im["psnr_db"] for im in chosen["images"]) == pytest.approx(worst[32])
    assert worst[32] >= target
    over_set = images.compress(photos, tmp_path / "s.zarr", psnr=target, candidates=candidates, per_image=per_image,
                               random_state=0)
    assert over_set["k"] <= 16 and over_set["accounting"]["psnr_db_overall"] >= target


def test_help_is_useful(capsys):
    """Each --help, in this process (``main`` as the commands run it)."""
    from flows import compress_images, fit_mixture

    def shown(run, argv: list[str]) -> str:
        with pytest.raises(SystemExit) as exit:
            run(argv)
        assert exit.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    assert "emdask compress photos/ -o photos.zarr -k 16" in shown(main, ["--help"])
    text = shown(main, ["compress", "--help"])
    assert "--psnr" in text and "--psnr-over" in text and "--scheduler" in text and "--memory-limit" in text
    for flow in (compress_images, fit_mixture):  # every option described, with its default
        text = shown(flow.main, ["--help"])
        assert "--max-iter MAX_ITER maximum" in text and "(default: 300)" in text and "--seed SEED random seed" in text
        assert "--memory-limit" in text and "--storage-option KEY=VALUE" in text and "(default: None)" not in text


def test_command_line_append(tmp_path, capsys):
    scans, out = tmp_path / "scans", tmp_path / "set.zarr"
    scans.mkdir()
    (scans / "chelsea.png").write_bytes((PHOTOS / "chelsea.png").read_bytes())
    assert main(["compress", str(scans), "-o", str(out), "-k", "6", "--append", "--workers", "1"]) == 0  # a new set
    (scans / "rocket.jpg").write_bytes((PHOTOS / "rocket.jpg").read_bytes())
    capsys.readouterr()
    assert main(["compress", str(scans), "-o", str(out), "--append", "--refit-below", "99", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    rows = {line[:30].strip(): line[30:].strip() for line in printed.splitlines()}
    assert rows["appended now"].startswith("1, PSNR min") and rows["codebook versions"] == "2"
    info = images.info(out)
    assert [im["name"] for im in info["images"]] == ["chelsea", "rocket"] and len(info["codebooks"]) == 2


@pytest.mark.parametrize(
    "extra,message",
    [
        (["-k", "8"], "has K=6 colours; cannot append with K=8"),
        (["--per-image"], "--append adds to an existing set with its own K and codebooks"),
        (["--refit-below", "-3"], "refit_below must be a positive number of dB"),
    ],
)
def test_command_line_append_errors(tmp_path, extra, message):
    out = tmp_path / "set.zarr"
    images.compress({"c": np.asarray(Image.open(PHOTOS / "chelsea.png"))}, out, n_colours=6, random_state=0)
    before = images.info(out)
    argv = ["compress", str(PHOTOS / "rocket.jpg"), "-o", str(out), "--append", "--workers", "1", *extra]
    result = subprocess.run([sys.executable, "-m", "emdask.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 1 and message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("emdask: error:")
    assert images.info(out) == before


def test_command_line_append_to_a_model_is_refused(tmp_path):
    model = tmp_path / "m.zarr"
    emdask.KMeans(2, random_state=0).fit(np.random.default_rng(0).normal(size=(20, 2))).save(model)
    argv = ["compress", str(PHOTOS / "rocket.jpg"), "-o", str(model), "--append"]
    result = subprocess.run([sys.executable, "-m", "emdask.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"emdask: error: '{model}' holds an emdask 'KMeans', not 'image-set'"
    )


def test_verbosity_before_or_after_the_command():
    import logging

    from emdask.cli import _parser
    from emdask.runtime import quiet_entry_point

    parser = _parser()
    argvs = (["info", "s"], ["-v", "info", "s"], ["info", "s", "-vv"])
    assert [parser.parse_args(a).verbose for a in argvs] == [0, 1, 2]
    quiet_entry_point(1)
    assert logging.getLogger("emdask").level == logging.DEBUG
    assert logging.getLogger("distributed").level == logging.ERROR
    quiet_entry_point(2)
    assert logging.getLogger("distributed").level == logging.INFO
    quiet_entry_point(0)
    assert logging.getLogger("emdask").level == logging.INFO and logging.getLogger("distributed").level == logging.ERROR
