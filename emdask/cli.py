"""The ``emdask`` command: compress image sets to K colours, decompress them, and describe them."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from emdask import __version__
from emdask.arguments import HelpFormatter, cluster_args, storage_args, storage_options
from emdask.errors import InputError, one_line_errors
from emdask.report import as_text, image_set_rows, reached_psnr
from emdask.runtime import dask_cluster, quiet_entry_point
from emdask.store import at

DESCRIPTION = """\
Compress photos to K colours with exact K-means over all their pixels, on a Dask cluster, into a
Zarr image set (per-pixel codes + codebook), and get them back.

examples:
  emdask compress photos/ -o photos.zarr -k 16          one 16-colour codebook for the whole folder
  emdask compress scan.tif -o scan.zarr --psnr 35        smallest K (2..256) reaching 35 dB PSNR over all pixels
  emdask compress photos/ -o p.zarr --psnr 30 --psnr-over worst   ... reaching 30 dB on every image
  emdask compress a.png b.jpg -o ab.zarr --per-image     one codebook per image
  emdask compress new/ -o photos.zarr --append --refit-below 30   add new images; refit if they fall below 30 dB
  emdask compress big/ -o big.zarr --scheduler tcp://10.0.0.5:8786    use a running Dask cluster
  emdask decompress photos.zarr -o png/                  write the decoded PNG files
  emdask info photos.zarr --plot                         accounting, contact sheet and convergence plot

exit status: 0 done, 1 error (one line on stderr), 2 bad usage, 3 --psnr target not reached (the set is written
with the largest K of --candidates).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emdask", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbose = "more detail: -v emdask's every step, -vv also Dask's own logs and worker tracebacks"
    parser.add_argument("-v", "--verbose", action="count", default=0, help=verbose)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{compress,decompress,info}")

    c = sub.add_parser(
        "compress", help="compress images to a Zarr image set", formatter_class=HelpFormatter
    )
    c.add_argument("sources", nargs="+", help="image files (PNG, JPEG, TIFF), directories, or Zarr stores")
    c.add_argument("-o", "--output", required=True, help="the Zarr image set to write (a path, .zip, or URL)")
    quality = c.add_mutually_exclusive_group()
    quality.add_argument("-k", "--colours", type=int, help="number of colours K (default 16; with --append, the set's)")
    quality.add_argument("--psnr", type=float,
                         help="instead of -k: the smallest K of --candidates whose PSNR over all the pixels of the set "
                              "(or on its worst image: --psnr-over worst) reaches this many dB; if none does, the "
                              "largest is used, with a warning and exit status 3")
    c.add_argument("--psnr-over", choices=["set", "worst"], default="set",
                   help="what --psnr is measured on: all the pixels of the set together, or its worst image")
    c.add_argument("--candidates", default="2,4,8,16,32,64,128,256", help="K values that --psnr chooses from")
    c.add_argument("--per-image", action="store_true", help="one codebook per image instead of one shared")
    c.add_argument("--pattern", default="**/*", help="glob for files inside directories (recursive)")
    c.add_argument("--colour", choices=["strict", "convert"], default="strict",
                   help="strict: only RGB; convert: grayscale to RGB, drop alpha")
    c.add_argument("--skip-unreadable", action="store_true", help="leave out (and list) files that cannot be decoded")
    c.add_argument("--append", action="store_true",
                   help="add the images not yet in the set OUTPUT (same path, size and mtime: skipped), coded with "
                        "its current codebook; a new set if there is none yet")
    c.add_argument("--refit-below", type=float, metavar="DB",
                   help="with --append: if a new image's PSNR is below DB, fit a new codebook version to the set's "
                        "colour histogram and code the new images with it")
    c.add_argument("--n-init", type=int, default=4,
                   help="K-means restarts, the best kept (in memory on the colour histogram: no extra read)")
    c.add_argument("--max-iter", type=int, default=300, help="maximum K-means iterations")
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output")
    storage_args(c)
    cluster_args(c)

    d = sub.add_parser("decompress", help="write the images of a set as PNG files")
    d.add_argument("store", help="a Zarr image set written by emdask compress")
    d.add_argument("-o", "--output", required=True, help="directory for the PNG files")
    d.add_argument("--overwrite", action="store_true", help="replace PNG files that are already there")
    storage_args(d)

    i = sub.add_parser("info", help="show the accounting of an image set (and draw it)")
    i.add_argument("store", help="a Zarr image set written by emdask compress")
    i.add_argument("--plot", nargs="?", const="", metavar="DIR",
                   help="write contact_sheet.png and convergence.png (default: <store>.plots beside a local store, "
                        "in the current folder for a URL)")
    storage_args(i)
    for command in (c, d, i):  # also after the command: emdask compress ... -v
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=verbose)
    return parser


class ProgressBars(logging.Handler):
    """Progress bars on stderr (rich) for the passes over the data and the images encoded.

    Fed by emdask's log records that carry ``emdask_pass`` (one per pass of a fit over the data)
    or ``emdask_encoding`` (one per image written).
    """

    def __init__(self, n_images: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        super().__init__(level=logging.INFO)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
        )
        self.passes = self.progress.add_task("reads of the images", total=2)
        self.images = self.progress.add_task("images encoded", total=n_images)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "emdask_pass", None) is not None:
            self.progress.advance(self.passes)
        elif getattr(record, "emdask_encoding", None) is not None:
            self.progress.advance(self.images)

    def __enter__(self) -> ProgressBars:
        self.progress.start()
        logging.getLogger("emdask").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("emdask").removeHandler(self)
        self.progress.stop()


def _compress(args: argparse.Namespace) -> int:
    from emdask import images
    from emdask.readers import read_images

    try:
        candidates = tuple(int(c) for c in args.candidates.split(","))
    except ValueError:
        raise InputError(f"--candidates must be comma-separated integers; got {args.candidates!r}") from None
    log = logging.getLogger("emdask")
    options = storage_options(args.storage_option)
    sources, skipped = read_images(
        args.sources, pattern=args.pattern, colour=args.colour, on_error="skip" if args.skip_unreadable else "raise",
        storage_options=options,
    )
    log.info("read %d image headers (%d skipped)", len(sources), len(skipped))
    fit = {"random_state": args.seed, "max_iter": args.max_iter, "n_init": args.n_init}
    output = at(args.output, options) if "://" in args.output else args.output
    append = args.append and images.is_image_set(output)
    _check_compress(args, sum(s.pixels.shape[0] * s.pixels.shape[1] for s in sources), append, output)
    with dask_cluster(args.scheduler, args.workers, args.memory_limit), ProgressBars(len(sources)):
        if append:
            summary = images.append(sources, output, refit_below=args.refit_below, n_colours=args.colours,
                                    skipped=skipped, **fit)
        else:
            summary = images.compress(
                sources,
                output,
                n_colours=16 if args.colours is None else args.colours,
                psnr=args.psnr,
                psnr_over=args.psnr_over,
                candidates=candidates,
                per_image=args.per_image,
                overwrite=args.overwrite,
                skipped=skipped,
                **fit,
            )
    print(as_text(image_set_rows(summary)))
    print(f"written: {args.output}")
    reached, where = reached_psnr(summary)
    if args.psnr is not None and reached < args.psnr:
        print(f"emdask: warning: no K among --candidates reaches {args.psnr:g} dB {where}; K={summary['k']} "
              f"reaches {reached:.2f} dB", file=sys.stderr)
        return 3
    return 0


def _check_compress(args: argparse.Namespace, n_pixels: int, append: bool, output: Any) -> None:
    """Every argument of ``compress`` checked in the flags' own words, before any cluster starts."""
    from emdask.store import check_writable

    most = min(65536, n_pixels)
    if args.colours is not None and not 1 <= args.colours <= most:
        raise InputError(f"-k must be between 1 and {most} (the images hold {n_pixels} pixels); got {args.colours}")
    if args.psnr is not None and not args.psnr > 0:
        raise InputError(f"--psnr must be a positive number of dB; got {args.psnr:g}")
    for flag, value in (("--n-init", args.n_init), ("--max-iter", args.max_iter)):
        if value < 1:
            raise InputError(f"{flag} must be at least 1; got {value}")
    if args.refit_below is not None and not args.append:
        raise InputError("--refit-below goes with --append")
    if args.psnr_over != "set" and args.psnr is None:
        raise InputError("--psnr-over goes with --psnr")
    if append and (args.psnr is not None or args.per_image or args.overwrite):
        raise InputError("--append adds to an existing set with its own K and codebooks: "
                         "--psnr, --per-image and --overwrite do not go with it")
    if not append:
        try:
            check_writable(output, overwrite=args.overwrite)
        except FileExistsError:
            raise InputError(f"-o {args.output} already exists; pass --overwrite to replace it") from None


def _decompress(args: argparse.Namespace) -> int:
    from emdask import images

    for path in images.write_pngs(args.store, args.output, storage_options(args.storage_option),
                                  overwrite=args.overwrite):
        print(path)
    return 0


def _info(args: argparse.Namespace) -> int:
    from emdask import images

    store = at(args.store, storage_options(args.storage_option)) if "://" in args.store else args.store
    summary = images.info(store)
    print(as_text(image_set_rows(summary)))
    for im in summary["images"]:
        print(f"  {im['name']}: {im['shape'][1]}x{im['shape'][0]}, PSNR {im['psnr_db']:.2f} dB, "
              f"{im['accounting']['bytes_codes']:,} bytes, from {im.get('source') or '(memory)'}")
    if args.plot is not None:
        from emdask.plots import contact_sheet, convergence_plot, default_folder

        out = Path(args.plot) if args.plot else default_folder(args.store)
        out.mkdir(parents=True, exist_ok=True)
        print(contact_sheet(store, out / "contact_sheet.png"))
        print(convergence_plot(store, out / "convergence.png"))
    return 0


def _not_per_image(record: logging.LogRecord) -> bool:
    """Drop the record of each image written (hundreds for a large set)."""
    return getattr(record, "emdask_encoding", None) is None


def main(argv: list[str] | None = None) -> int:
    """Run the command; an error is one line on stderr and exit status 1 (2 for bad usage, 3 for an unreached
    --psnr target)."""
    args = _parser().parse_args(argv)
    quiet_entry_point(args.verbose)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    if not args.verbose:  # one line per image written is the progress bar's, not the terminal's (-v shows them)
        for handler in logging.getLogger().handlers:
            if getattr(handler, "stream", None) is sys.stderr and _not_per_image not in handler.filters:
                handler.addFilter(_not_per_image)
    command = {"compress": _compress, "decompress": _decompress, "info": _info}[args.command]
    return one_line_errors("emdask", lambda: command(args))


if __name__ == "__main__":
    sys.exit(main())
