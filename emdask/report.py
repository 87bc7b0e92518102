"""Run summaries as data: rows of (label, value) that the CLI prints as text and the flows as markdown."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

Rows = list[tuple[str, str]]


def image_set_rows(summary: dict[str, Any]) -> Rows:
    """An image set's summary: images, pixels, K, iterations, PSNR, the notes' bits, bytes and ratios."""
    acc = summary["accounting"]
    psnrs = [im["psnr_db"] for im in summary["images"]]
    skipped = summary.get("skipped") or []
    rows: Rows = [("images", f"{acc['n_images']:,}" + (f" ({len(skipped)} skipped)" if skipped else ""))]
    appended = summary.get("appended")
    if appended is not None:
        new = [im["psnr_db"] for im in summary["images"] if im["name"] in appended]
        rows.append(("appended now", f"{len(appended):,}" + (f", PSNR min {min(new):.2f} dB" if new else "")))
    if summary.get("codebook") == "shared":
        rows.append(("codebook versions", f"{len(summary.get('codebooks') or [1])}"))
    else:
        rows.append(("codebooks", "one per image"))
    source = _source_bytes(summary)
    rows += [
        ("pixels", f"{acc['n_pixels']:,}"),
        ("K (colours)", f"{summary['k']}" + _target_note(summary)),
        ("K-means iterations", ", ".join(map(str, summary.get("fit", {}).get("n_iter", [])))),
        ("PSNR all pixels / worst image", f"{acc['psnr_db_overall']:.2f} / {min(psnrs):.2f} dB"),
        ("raw bits (24 N)", f"{acc['raw_bits']:,}"),
        ("notes' bits (24 K + N ceil(log2 K))", f"{acc['notes_bits']:,} ({100 * acc['notes_ratio']:.2f}% of raw)"),
        ("bytes on disk (codes + codebook)", f"{acc['bytes_on_disk']:,} ({100 * acc['disk_ratio']:.2f}% of raw)"),
    ]
    if acc.get("bytes_views"):
        rows.append(("  + RGB views for viewers (1/8 size)", f"{acc['bytes_views']:,} bytes"))
    if source:
        rows.append(("vs the source files", f"{source:,} bytes -> {100 * acc['bytes_on_disk'] / source:.2f}%"))
    return rows


def _target_note(summary: dict[str, Any]) -> str:
    """What a PSNR target chose, in the quantity searched: the PSNR over all pixels, or of the worst image."""
    target = summary.get("psnr_target")
    if not target:
        return ""
    reached, where = reached_psnr(summary)
    if reached >= target:
        return f" (smallest reaching {target} dB {where})"
    return f" (largest tried; {target} dB {where} not reached)"


def reached_psnr(summary: dict[str, Any]) -> tuple[float, str]:
    """The PSNR an image set's target was measured in (over all its pixels, or its worst image's), and its words."""
    if summary.get("psnr_over", "set") == "worst":
        return summary["accounting"]["psnr_db_min"], "on the worst image"
    return summary["accounting"]["psnr_db_overall"], "over all pixels"


def _source_bytes(summary: dict[str, Any]) -> int:
    return sum(os.path.getsize(s) for s in {im.get("source") for im in summary["images"]} if s and os.path.isfile(s))


def mixture_rows(result: dict[str, Any]) -> Rows:
    """A fitted table model: the chosen K, the data, and each candidate's BIC (or inertia)."""
    rows: Rows = [("model", str(result["model"])), ("chosen K", str(result["k"])), ("rows", f"{result['n_rows']:,}"),
                  ("columns", ", ".join(result["columns"]))]
    for r in result["table"]:
        value = f"BIC {r['bic']:.6g}" if "bic" in r else f"inertia {r['inertia']:.6g}"
        iterations = f"{r['n_iter']} iteration{'' if r['n_iter'] == 1 else 's'}"
        rows.append((f"K={r['k']}", f"{value}, {iterations}" + ("" if r["converged"] else ", not converged")))
    if result.get("labels"):
        rows.append(("labels", str(result["labels"])))
    rows.append(("written", str(result["output"])))
    return rows


def as_text(rows: Sequence[tuple[str, str]]) -> str:
    """Aligned two-column text."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def as_markdown(rows: Sequence[tuple[str, str]], title: str) -> str:
    """A markdown table under a heading."""
    body = "\n".join(f"| {label} | {value} |" for label, value in rows)
    return f"# {title}\n\n| | |\n|---|---|\n{body}\n"
