"""Prefect flow: fit K-means, a Gaussian mixture or a Bernoulli mixture to a large table, on a Dask cluster.

Tasks: load table -> fit (or choose K by BIC) -> save model -> write labels -> report.  The table
is CSV or Parquet files read by ``dask.dataframe`` (choose ``columns``; ``standardize`` scales
each column to mean 0 and variance 1, and the scaling is stored with the model), or a Zarr or
NPY array.  The model is saved to Zarr (``emdask.load`` reads it); per-row labels and, for the
mixtures, probabilities can be written to Zarr or Parquet.

    python -m flows.fit_mixture data/old_faithful.csv -o out/faithful.zarr --model gmm --k 1 2 3 4
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import dask.dataframe as dd
import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

import emdask
from emdask.cli import dask_cluster
from emdask.store import StoreError

Model = Literal["kmeans", "gmm", "bernoulli"]


def load_table(source: str, columns: list[str] | None, standardize: bool) -> tuple[da.Array, list[str], dict[str, list[float]]]:
    """The table as a row-chunked float Dask array, its column names, and the scaling applied."""
    path = source.rstrip("/")
    if path.endswith(".npy"):
        X = da.from_array(np.load(path, mmap_mode="r"), chunks=("auto", -1))
        names = [f"x{i}" for i in range(X.shape[1])]
    elif path.endswith(".zarr"):
        X = da.from_zarr(path)
        names = [f"x{i}" for i in range(X.shape[1])]
    else:
        frame = dd.read_parquet(source) if path.endswith((".parquet", ".pq")) or Path(path).is_dir() else dd.read_csv(source)
        names = list(columns) if columns else [c for c in frame.columns if np.issubdtype(frame[c].dtype, np.number)]
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ValueError(f"columns {missing} are not in {source}; it has {list(frame.columns)}")
        X = frame[names].to_dask_array(lengths=True).astype(np.float64)
    if columns and path.endswith((".npy", ".zarr")):
        raise ValueError(f"columns can only be chosen in CSV or Parquet tables; {source} is an array")
    scaling: dict[str, list[float]] = {}
    if standardize:
        mean, std = da.compute(X.mean(axis=0), X.std(axis=0))
        std = np.where(std > 0, std, 1.0)
        X = (X - mean) / std
        scaling = {"mean": mean.tolist(), "std": std.tolist()}
    return X, names, scaling


def _estimator(model: Model, k: int, seed: int, max_iter: int, checkpoint: str | None, covariance_type: str) -> Any:
    if model == "kmeans":
        return emdask.KMeans(k, random_state=seed, max_iter=max_iter, checkpoint=checkpoint)
    if model == "gmm":
        return emdask.GaussianMixture(k, covariance_type=covariance_type, random_state=seed, max_iter=max_iter, checkpoint=checkpoint)  # type: ignore[arg-type]
    return emdask.BernoulliMixture(k, random_state=seed, max_iter=max_iter, checkpoint=checkpoint)


@task(name="fit", retries=2, retry_delay_seconds=1)
def fit(
    source: str, columns: list[str] | None, standardize: bool, model: Model, ks: list[int], covariance_type: str,
    seed: int, max_iter: int, output: str, overwrite: bool,
) -> dict[str, Any]:
    """Fit each candidate K (checkpointed per iteration), keep the lowest BIC (or inertia for one K), save it."""
    X, names, scaling = load_table(source, columns, standardize)
    table = []
    best: tuple[float, Any] | None = None
    for k in ks:
        est = _estimator(model, k, seed, max_iter, f"{output.rstrip('/')}.checkpoint.k{k}", covariance_type).fit(X)
        row: dict[str, Any] = {"k": k, "n_iter": est.n_iter_, "converged": bool(est.converged_)}
        if model == "kmeans":
            row["inertia"] = est.inertia_
            value = est.inertia_
        else:
            row["bic"], row["lower_bound"] = est.bic(X), est.lower_bound_
            value = row["bic"]
        table.append(row)
        get_run_logger().info("K=%d: %s", k, row)
        if best is None or value < best[0]:
            best = (value, est)
    assert best is not None
    best[1].save(output, overwrite=overwrite)
    return {"table": table, "k": best[1].n_components if model != "kmeans" else best[1].n_clusters,
            "columns": names, "scaling": scaling, "n_rows": int(X.shape[0])}


@task(name="write labels")
def write_labels(source: str, columns: list[str] | None, standardize: bool, output: str, labels_output: str) -> str:
    """Per-row labels (and probabilities for mixtures) to Zarr or Parquet, chunk by chunk."""
    X, _, _ = load_table(source, columns, standardize)
    est = emdask.load(output)
    labels = est.predict(X)
    if labels_output.rstrip("/").endswith(".parquet"):
        parts = {"label": labels}
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(X)
            parts.update({f"p{j}": proba[:, j] for j in range(proba.shape[1])})
        frame = dd.concat([dd.from_dask_array(v, columns=[k]) for k, v in parts.items()], axis=1)
        frame.to_parquet(labels_output, write_index=False)
    else:
        labels.to_zarr(labels_output, component="labels", overwrite=True)
        if hasattr(est, "predict_proba"):
            est.predict_proba(X).to_zarr(labels_output, component="probabilities", overwrite=True)
    return labels_output


@flow(name="fit-mixture")
def fit_mixture(
    source: str,
    output: str,
    model: Model = "gmm",
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
) -> dict[str, Any]:
    """Fit ``model`` to the table ``source`` and save it to ``output``; K by BIC when ``k`` lists several."""
    logger = get_run_logger()
    if model == "kmeans" and len(k) > 1:
        raise ValueError("k lists several values, but K-means has no likelihood to compare them by BIC; give one k")
    if not overwrite:
        try:
            emdask.load(output)
            logger.info("%s already holds a fitted model; pass overwrite=True to refit", output)
            return {"output": output, "skipped": True}
        except StoreError:
            pass
    with dask_cluster(scheduler, workers, memory_limit):
        result = fit(source, columns, standardize, model, list(k), covariance_type, seed, max_iter, output, overwrite)
        if labels_output:
            result["labels"] = write_labels(source, columns, standardize, output, labels_output)
    lines = [f"| {r['k']} | {r['n_iter']} | {r.get('bic', r.get('inertia')):.6g} |" for r in result["table"]]
    create_markdown_artifact(
        f"# {model} on `{source}`\n\nchosen K = {result['k']}, {result['n_rows']:,} rows, columns {result['columns']}\n\n"
        "| K | iterations | BIC (or inertia) |\n|---|---|---|\n" + "\n".join(lines),
        key="mixture-report",
    )
    return {"output": output, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.fit_mixture", description=__doc__.split("\n\n")[0])
    parser.add_argument("source")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--model", choices=["kmeans", "gmm", "bernoulli"], default="gmm")
    parser.add_argument("--k", type=int, nargs="+", default=[2])
    parser.add_argument("--columns", nargs="+")
    parser.add_argument("--standardize", action="store_true")
    parser.add_argument("--covariance-type", default="full", choices=["full", "tied", "diag", "spherical"])
    parser.add_argument("--labels-output")
    parser.add_argument("--scheduler")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("emdask").setLevel(logging.INFO)  # per-pass progress; PREFECT_LOGGING_EXTRA_LOGGERS=emdask shows it
    result = fit_mixture(
        source=args.source, output=args.output, model=args.model, k=args.k, columns=args.columns,
        standardize=args.standardize, covariance_type=args.covariance_type, labels_output=args.labels_output,
        scheduler=args.scheduler, workers=args.workers, overwrite=args.overwrite,
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
