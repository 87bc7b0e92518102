"""Prefect flow: compress a set of images to K colours into a Zarr image set, on a Dask cluster.

Tasks, as Prefect's UI shows them: discover sources -> fit codebook -> encode and write -> report,
or with ``append=True``: discover sources -> append -> report.  Only small values pass between
tasks (paths, codebooks, the colour histogram, summaries); pixels stay in Dask.  The whole
compression is two reads of the images: the fitting task counts their colours and fits K-means
in memory on that histogram; the encoding task reads them once more.  A finished output is not
recomputed unless ``overwrite=True``; a scheduled run with ``append=True`` adds only the files
not yet in the set.

Run it with Prefect's embedded server and a local Dask cluster, no set-up::

    python -m flows.compress_images data/photos -o out/photos.zarr -k 16
"""
from __future__ import annotations

import argparse
import base64
import io
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact

from emdask import images
from emdask.arguments import HelpFormatter, cluster_args, storage_args, storage_options
from emdask.errors import one_line_errors
from emdask.plots import default_folder
from emdask.readers import read_images
from emdask.report import as_markdown, as_text, image_set_rows
from emdask.runtime import dask_cluster, quiet_entry_point
from emdask.store import StoreError, Target, at, check_writable
from flows import retry_unless_bad_input


def on_cluster() -> AbstractContextManager[Any]:
    """Inside a task that prefect_dask's DaskTaskRunner runs on a Dask worker: a client to the same cluster
    (the task secedes from its worker thread while its EM passes run).  Otherwise the flow's client is already
    the default and nothing is needed."""
    try:
        from distributed import get_worker

        get_worker()
    except ValueError:
        return nullcontext()
    from prefect_dask import get_dask_client

    return get_dask_client()


@task(name="discover sources")
def discover(sources: list[str], pattern: str, colour: str, skip_unreadable: bool) -> dict[str, Any]:
    """The image files and stores to compress (headers only), and the files skipped."""
    found, skipped = read_images(sources, pattern=pattern, colour=colour,  # type: ignore[arg-type]
                                 on_error="skip" if skip_unreadable else "raise")
    paths = [s.source for s in found]
    get_run_logger().info("%d images, %d skipped", len(paths), len(skipped))
    return {"paths": paths, "skipped": skipped, "pixels": sum(s.pixels.shape[0] * s.pixels.shape[1] for s in found)}


@task(name="fit codebook", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_unless_bad_input)
def fit_codebook(
    paths: list[str], colour: str, k: int, psnr: float | None, per_image: bool, max_iter: int, seed: int,
    psnr_over: str = "set",
) -> images.CodebookFit:
    """One read of the images counts their colours; exact K-means then runs in memory on the histogram."""
    sources, _ = read_images(paths, colour=colour)  # type: ignore[arg-type]
    with on_cluster():
        fit = images.fit_codebooks(
            sources, n_colours=k, psnr=psnr, psnr_over=psnr_over, per_image=per_image, random_state=seed,
            max_iter=max_iter,
        )
    iterations = ", ".join(str(f.n_iter) for f in fit.fits)
    get_run_logger().info("K=%d: %s K-means iteration(s) on the %d distinct colours of the images", fit.k,
                          iterations, len(fit.histogram.colours))
    return fit


@task(name="encode and write")
def encode(
    paths: list[str], colour: str, fit: images.CodebookFit, output: Target, overwrite: bool, skipped: list[str]
) -> dict[str, Any]:
    """The second read: every image to codes, written atomically as one Zarr image set."""
    sources, _ = read_images(paths, colour=colour)  # type: ignore[arg-type]
    with on_cluster():
        return images.write_set(sources, output, fit, overwrite=overwrite, skipped=skipped)


@task(name="append", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_unless_bad_input)
def append_images(
    paths: list[str], colour: str, output: Target, refit_below: float | None, max_iter: int, seed: int,
    skipped: list[str],
) -> dict[str, Any]:
    """The files not yet in the set, read once (twice if they call for a new codebook) and added atomically."""
    sources, _ = read_images(paths, colour=colour)  # type: ignore[arg-type]
    with on_cluster():
        summary = images.append(sources, output, refit_below=refit_below, random_state=seed, max_iter=max_iter,
                                skipped=skipped)
    get_run_logger().info("appended %d images to %s (%d codebook versions)", len(summary["appended"]), output,
                          len(summary.get("codebooks") or []))
    return summary


@task(name="report")
def report(summary: dict[str, Any], output: Target) -> str:
    """A markdown table and the pictures (contact sheet, convergence), as artifacts and in the pictures' folder."""
    from emdask.plots import contact_sheet, convergence_plot

    where = default_folder(str(output))
    where.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(output, where / "contact_sheet.png")
    curve = convergence_plot(output, where / "convergence.png")
    markdown = as_markdown(image_set_rows(summary), f"Image set `{output}`")
    (where / "report.md").write_text(markdown)
    create_markdown_artifact(markdown, key="image-set-report", description=f"compression of {output}")
    create_image_artifact(_data_url(sheet), key="contact-sheet", description="originals and compressed")
    create_image_artifact(_data_url(curve), key="convergence", description="K-means inertia per pass")
    return str(where)


#: The pictures as artifacts: at most this wide, as JPEG, so the artifact's event stays under Prefect's size limit.
ARTIFACT_WIDTH = 1200


def _data_url(png: Path) -> str:
    """The picture as a ``data:`` URL, which the Prefect UI shows wherever it runs (a ``file://`` one shows nothing)."""
    from PIL import Image

    with Image.open(png) as drawn:
        rgb = drawn.convert("RGB")
    if rgb.width > ARTIFACT_WIDTH:
        rgb = rgb.resize((ARTIFACT_WIDTH, round(rgb.height * ARTIFACT_WIDTH / rgb.width)))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def finished_set(
    output: Target, paths: list[str], k: int, psnr: float | None, per_image: bool
) -> dict[str, Any] | None:
    """The summary of ``output`` if it is a complete image set of these files and settings (a re-run returns it);
    None if nothing is there.  Anything else at ``output`` is an error: it is never replaced without overwrite."""
    try:
        done = images.info(output)
    except StoreError:
        check_writable(output, overwrite=False)
        return None
    wanted = {"sources": sorted(paths), "codebook": "per-image" if per_image else "shared",
              "k" if psnr is None else "psnr_target": k if psnr is None else psnr}
    held = {"sources": sorted(str(im.get("source")) for im in done["images"]), "codebook": done["codebook"],
            "k" if psnr is None else "psnr_target": done["k"] if psnr is None else done["psnr_target"]}
    if held != wanted:
        differ = ", ".join(f"{key}={held[key]!r} (asked {wanted[key]!r})" for key in wanted if held[key] != wanted[key])
        raise FileExistsError(
            f"{output!r} already holds another image set ({differ}); pass overwrite=True to replace it"
        )
    return done


@flow(name="compress-images")
def compress_images(
    sources: list[str],
    output: str,
    k: int = 16,
    psnr: float | None = None,
    psnr_over: str = "set",
    per_image: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    memory_limit: str = "auto",
    max_iter: int = 300,
    seed: int = 0,
    pattern: str = "**/*",
    colour: str = "strict",
    skip_unreadable: bool = False,
    overwrite: bool = False,
    append: bool = False,
    refit_below: float | None = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compress ``sources`` (files, directories, Zarr stores) into the image set ``output``; returns its summary.

    ``psnr``: instead of ``k``, the smallest K reaching this PSNR (dB) over all the pixels of the set
    (``psnr_over="set"``) or on its worst image (``"worst"``).
    ``append``: add to the existing set ``output`` the sources not yet in it (a new set if there is
    none); ``refit_below``: with ``append``, fit a new codebook version when a new image's PSNR is
    below this many dB; ``storage_options``: endpoint and credentials of an ``output`` at a URL.
    """
    quiet_entry_point()  # emdask's progress (PREFECT_LOGGING_EXTRA_LOGGERS=emdask sends it to Prefect), not Dask's
    target = at(output, storage_options) if "://" in output else output
    check_writable(target, overwrite=True)
    found = discover(sources, pattern, colour, skip_unreadable)
    if append and images.is_image_set(target):
        with dask_cluster(scheduler, workers, memory_limit):
            summary = append_images(found["paths"], colour, target, refit_below, max_iter, seed, found["skipped"])
            report(summary, target)
        return summary
    if not overwrite:
        done = finished_set(target, found["paths"], k, psnr, per_image)
        if done is not None:
            get_run_logger().info("%s is already this image set, complete; pass overwrite=True to recompute it", output)
            return done
    with dask_cluster(scheduler, workers, memory_limit):
        fit = fit_codebook(found["paths"], colour, k, psnr, per_image, max_iter, seed, psnr_over)
        summary = encode(found["paths"], colour, fit, target, overwrite, found["skipped"])
        report(summary, target)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.compress_images", description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("sources", nargs="+", help="image files (PNG, JPEG, TIFF), directories, or Zarr stores")
    parser.add_argument("-o", "--output", required=True, help="the Zarr image set to write (a path, .zip, or URL)")
    parser.add_argument("-k", type=int, default=16, help="number of colours K")
    parser.add_argument("--psnr", type=float, help="instead of -k: the smallest K reaching this PSNR (dB) over all "
                                                   "the pixels of the set (or its worst image: --psnr-over worst)")
    parser.add_argument("--psnr-over", choices=["set", "worst"], default="set",
                        help="what --psnr is measured on: all the pixels of the set together, or its worst image")
    parser.add_argument("--per-image", action="store_true", help="one codebook per image instead of one shared")
    parser.add_argument("--max-iter", type=int, default=300, help="maximum K-means iterations")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--pattern", default="**/*", help="glob for files inside directories (recursive)")
    parser.add_argument("--colour", choices=["strict", "convert"], default="strict",
                        help="strict: only RGB; convert: grayscale to RGB, drop alpha")
    parser.add_argument("--skip-unreadable", action="store_true", help="leave out (and list) undecodable files")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (else a finished one "
                                                                 "is kept and returned)")
    parser.add_argument("--append", action="store_true", help="add the sources not yet in the set OUTPUT")
    parser.add_argument("--refit-below", type=float, metavar="DB",
                        help="with --append: fit a new codebook version when a new image falls below DB")
    cluster_args(parser)
    storage_args(parser)
    parser.add_argument(
        "--task-runner",
        choices=["threads", "dask"],
        default="threads",
        help="dask: run the tasks on the --scheduler cluster through prefect_dask (needs a Prefect server "
        "that the workers reach, PREFECT_API_URL)",
    )
    args = parser.parse_args(argv)
    quiet_entry_point()  # before Prefect starts its temporary server: no telemetry attempts
    flow_to_run = compress_images
    if args.task_runner == "dask":
        if not args.scheduler:
            parser.error("--task-runner dask needs --scheduler ADDRESS")
        from prefect_dask import DaskTaskRunner

        flow_to_run = compress_images.with_options(task_runner=DaskTaskRunner(address=args.scheduler))  # type: ignore[arg-type]

    def run() -> int:
        summary = flow_to_run(
            sources=args.sources, output=args.output, k=args.k, psnr=args.psnr, psnr_over=args.psnr_over,
            per_image=args.per_image,
            scheduler=args.scheduler, workers=args.workers, memory_limit=args.memory_limit, max_iter=args.max_iter,
            seed=args.seed, pattern=args.pattern, colour=args.colour, skip_unreadable=args.skip_unreadable,
            overwrite=args.overwrite,
            append=args.append, refit_below=args.refit_below, storage_options=storage_options(args.storage_option),
        )
        print(as_text(image_set_rows(summary)))
        print(f"written: {args.output} (report in {default_folder(args.output)}/)")
        return 0

    return one_line_errors(parser.prog, run)


if __name__ == "__main__":
    sys.exit(main())
