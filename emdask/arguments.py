"""Command-line arguments that the ``emdask`` command and the flows' commands share."""
from __future__ import annotations

import argparse
import json
from typing import Any

from emdask.errors import InputError


def storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the object store at a URL (repeatable), e.g. endpoint_url=http://host:9000, "
                        "key=..., secret=..., client_kwargs.region_name=eu-west-1; values are JSON where they "
                        "parse as JSON (true, 3), else text; default: the environment (AWS_ENDPOINT_URL, ...)")


def storage_options(pairs: list[str]) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as fsspec storage options: dotted keys nest, values are JSON where they parse."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--storage-option must be KEY=VALUE; got {pair!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *outer, last = key.split(".")
        node = options
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = value
    return options or None


def cluster_args(p: argparse.ArgumentParser) -> None:
    """Where the work runs: a running Dask scheduler, or a local cluster of this many workers and memory each."""
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: start a local cluster)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    p.add_argument("--memory-limit", default="auto", help="memory limit per local worker, e.g. 1.5GiB")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default where it has one worth saying (not None, False or an empty list), and
    keeps the description's own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"
