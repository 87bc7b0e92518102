"""Prefect flow: fit K-means, a Gaussian mixture or a Bernoulli mixture to a large table, on a Dask cluster.

Tasks: load table -> fit (or choose K by BIC) -> save model -> write labels -> report.  The table
is CSV or Parquet files read by ``dask.dataframe`` (choose ``columns``; ``standardize`` scales
each column to mean 0 and variance 1, and the model is saved with that standardisation and the column names,
so the loaded model predicts from raw rows of the same columns), or a Zarr or NPY array.  The model is saved to
Zarr (``emdask.load`` reads it); per-row labels and, for the mixtures, probabilities can be
written to Zarr or Parquet.

    python -m flows.fit_mixture data/old_faithful.csv -o out/faithful.zarr --model gmm --k 1 2 3 4
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

import emdask
from emdask import kinds
from emdask.arguments import HelpFormatter, cluster_args, storage_args, storage_options
from emdask.errors import InputError, one_line_errors
from emdask.report import as_markdown, as_text, mixture_rows
from emdask.runtime import dask_cluster, quiet_entry_point
from emdask.store import StoreError, Target, at, check_writable
from emdask.tables import read_table, standardized
from flows import retry_unless_bad_input


@contextmanager
def naming(source: str) -> Iterator[None]:
    """Bad-input errors raised inside say which table they are about."""
    try:
        yield
    except (InputError, StoreError) as exc:  # emdask's own: one message argument, so the type is kept
        if source in str(exc):
            raise
        raise type(exc)(f"{source!r}: {exc}") from exc


@task(name="fit", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_unless_bad_input)
def fit(
    source: str, columns: list[str] | None, standardize: bool, model: str, ks: list[int], covariance_type: str,
    seed: int, max_iter: int, output: str, overwrite: bool, options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit each candidate K (checkpointed per iteration), keep the lowest BIC (or inertia for one K), save it."""
    with naming(source):
        X, names = read_table(source, columns, options)
        X, scaling = standardized(X, None) if standardize else (X, {})
        named = not source.rstrip("/").endswith((".npy", ".zarr"))  # arrays have no column names of their own
        return _fit_and_save(X, names, scaling, model, ks, covariance_type, seed, max_iter, output, overwrite,
                             options, named)


def _fit_and_save(
    X: da.Array, names: list[str], scaling: dict[str, list[float]], model: str, ks: list[int], covariance_type: str,
    seed: int, max_iter: int, output: str, overwrite: bool, options: dict[str, Any] | None = None,
    named: bool = False,
) -> dict[str, Any]:
    # every K in one set of passes (each chunk read once per pass for all), each with its own checkpoint
    kind = kinds.named(model)
    fitted: list[Any] = emdask.fit_together([
        kind.make(k, random_state=seed, max_iter=max_iter, covariance_type=covariance_type,
                  checkpoint=_located(f"{output.rstrip('/')}.checkpoint.k{k}", options))
        for k in ks
    ], X)
    values = emdask.bic_of(fitted, X) if kind.likelihood else [est.inertia_ for est in fitted]
    table = []
    for k, est, value in zip(ks, fitted, values):
        row: dict[str, Any] = {"k": k, "n_iter": est.n_iter_, "converged": bool(est.converged_)}
        row.update({"bic": value, "lower_bound": est.lower_bound_} if kind.likelihood else {"inertia": value})
        table.append(row)
        get_run_logger().info("K=%d: %s after %d iterations%s", k,
                              f"BIC {value:.6g}" if kind.likelihood else f"inertia {value:.6g}", est.n_iter_,
                              "" if est.converged_ else " (not converged)")
    best = fitted[int(np.argmin(values))]
    if named:  # a CSV or Parquet table's columns: a frame of other columns is then refused
        best.feature_names_in_ = np.asarray(names, dtype=object)
    if scaling:  # the loaded model standardises raw rows itself
        best.with_input_scaling(scaling["mean"], scaling["std"])
    best.save(output, overwrite=overwrite, storage_options=options)
    return {"table": table, "k": kind.k_of(best),
            "columns": names, "scaling": scaling, "n_rows": int(X.shape[0])}


@task(name="write labels")
def write_labels(
    source: str, columns: list[str] | None, scaling: dict[str, list[float]] | None, output: str, labels_output: str,
    overwrite: bool, options: dict[str, Any] | None = None,
) -> str:
    """Per-row labels (and probabilities for mixtures) to Zarr or Parquet, chunk by chunk.

    ``scaling``: the standardisation the model was fitted with, ``{}`` for none, ``None`` to measure it again.
    """
    X, _ = read_table(source, columns, options)
    est = emdask.load(output, options)
    if getattr(est, "input_scaling_", None) is None and (scaling is None or scaling):
        X, _ = standardized(X, scaling)  # a model saved before models kept their standardisation
    with warnings.catch_warnings():  # the columns were chosen by name when X was read: it has none of its own
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        labels = est.predict(X)
        proba = est.predict_proba(X) if hasattr(est, "predict_proba") else None
    if labels_output.rstrip("/").endswith(".parquet"):
        parts = {"label": labels}
        if proba is not None:
            parts.update({f"p{j}": proba[:, j] for j in range(proba.shape[1])})
        frame = dd.concat([dd.from_dask_array(v, columns=[k]) for k, v in parts.items()], axis=1)
        frame.to_parquet(labels_output, write_index=False, storage_options=options)
    else:
        labels.to_zarr(labels_output, component="labels", overwrite=overwrite, storage_options=options)
        if proba is not None:
            proba.to_zarr(labels_output, component="probabilities", overwrite=overwrite, storage_options=options)
    return labels_output


def finished_model(
    output: str, model: str, ks: list[int], covariance_type: str, options: dict[str, Any] | None = None
) -> bool:
    """Whether ``output`` holds a complete model of this kind, with one of these K (a re-run keeps it); False
    if nothing is there.  Anything else at ``output`` is an error: it is never replaced without overwrite."""
    try:
        held = emdask.load(output, options)
    except StoreError:
        check_writable(_located(output, options), overwrite=False)
        return False
    kind = kinds.named(model)
    k = kinds.kind_of(held).k_of(held)
    same = (
        type(held) is kind.estimator
        and k in ks
        and getattr(held, "covariance_type", covariance_type) == covariance_type
    )
    if not same:
        raise FileExistsError(
            f"{output!r} already holds another model ({type(held).__name__} with K={k}); "
            "pass overwrite=True to replace it"
        )
    return True


def _located(target: str, options: dict[str, Any] | None) -> Target:
    """A URL with its storage options; a local path as it is."""
    return at(target, options) if "://" in target else target


@flow(name="fit-mixture")
def fit_mixture(
    source: str,
    output: str,
    model: str = "gmm",
    k: list[int] = [2],  # noqa: B006 (Prefect parameters are copied per run)
    columns: list[str] | None = None,
    standardize: bool = False,
    covariance_type: str = "full",
    labels_output: str | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    memory_limit: str = "auto",
    max_iter: int = 300,
    seed: int = 0,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``model`` to the table ``source`` and save it to ``output``; K by BIC when ``k`` lists several.

    ``storage_options``: endpoint and credentials for a ``source`` or ``output`` at a URL.
    """
    quiet_entry_point()  # emdask's progress (PREFECT_LOGGING_EXTRA_LOGGERS=emdask sends it to Prefect), not Dask's
    if not kinds.named(model).likelihood and len(k) > 1:
        raise InputError("k lists several values, but K-means has no likelihood to compare them by BIC; give one k")
    for value in k:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"k must be an int >= 1; got {value!r}")
    options = storage_options
    if labels_output:
        check_writable(_located(labels_output, options), overwrite=overwrite)
    check_writable(_located(output, options), overwrite=True)
    if not overwrite and finished_model(output, model, list(k), covariance_type, options):
        get_run_logger().info("%s already holds this fitted model; pass overwrite=True to refit", output)
        done: dict[str, Any] = {"output": output, "skipped": True}
        if labels_output:  # asked for now, not by the run that fitted the model
            with dask_cluster(scheduler, workers, memory_limit):
                done["labels"] = write_labels(source, columns, None if standardize else {}, output, labels_output,
                                              overwrite, options)
        return done
    with dask_cluster(scheduler, workers, memory_limit):
        result = fit(source, columns, standardize, model, list(k), covariance_type, seed, max_iter, output, overwrite,
                     options)
        if labels_output:
            result["labels"] = write_labels(source, columns, result["scaling"], output, labels_output, overwrite,
                                            options)
    result = {"output": output, "model": model, **result}
    create_markdown_artifact(as_markdown(mixture_rows(result), f"{model} on `{source}`"), key="mixture-report")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.fit_mixture", description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("source", help="the table: CSV, Parquet (a file or a folder), Zarr or NPY; a path or URL")
    parser.add_argument("-o", "--output", required=True, help="the Zarr store the chosen model is saved to")
    parser.add_argument("--model", choices=list(kinds.BY_NAME), default="gmm", help="the kind of model")
    parser.add_argument("--k", type=int, nargs="+", default=[2],
                        help="number of clusters or components; several: the lowest BIC is kept")
    parser.add_argument("--columns", nargs="+", help="columns of a CSV or Parquet table (default: the numeric ones)")
    parser.add_argument("--standardize", action="store_true", help="scale each column to mean 0 and variance 1")
    parser.add_argument("--covariance-type", default="full", choices=["full", "tied", "diag", "spherical"],
                        help="the Gaussian mixture's covariance")
    parser.add_argument("--labels-output", help="also write each row's label (and probabilities) to this Zarr or "
                                                ".parquet path")
    parser.add_argument("--max-iter", type=int, default=300, help="maximum EM iterations per fit")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (else a finished one "
                                                                 "is kept and returned)")
    cluster_args(parser)
    storage_args(parser)
    args = parser.parse_args(argv)
    quiet_entry_point()  # before Prefect starts its temporary server: no telemetry attempts

    def run() -> int:
        result = fit_mixture(
            source=args.source, output=args.output, model=args.model, k=args.k, columns=args.columns,
            standardize=args.standardize, covariance_type=args.covariance_type, labels_output=args.labels_output,
            scheduler=args.scheduler, workers=args.workers, memory_limit=args.memory_limit, max_iter=args.max_iter,
            seed=args.seed, overwrite=args.overwrite, storage_options=storage_options(args.storage_option),
        )
        print(as_text(mixture_rows(result)) if not result.get("skipped") else f"{args.output} already holds this model")
        return 0

    return one_line_errors(parser.prog, run)


if __name__ == "__main__":
    sys.exit(main())
