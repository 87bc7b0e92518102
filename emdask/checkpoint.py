"""Fit checkpoints in Zarr: the state after every iteration, so that a killed or retried fit resumes.

A checkpoint is an emdask store of kind ``checkpoint`` (written atomically, like models) holding
the restart being run, its parameters and history, and the best finished restart so far.  It
carries a fingerprint of the data (shape, dtype, chunks and Dask's deterministic name of the
input) and of the estimator's parameters: a checkpoint from another fit is never reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from emdask.engine import Iteration, State
from emdask.errors import InputError
from emdask.store import StoreError, Target, mark_complete, read_array, read_group, to_json, write_group

logger = logging.getLogger("emdask")

def fingerprint(estimator: Any, X: da.Array, weights: da.Array | None) -> str:
    """A hash of the estimator's class and parameters and of the input's identity."""
    params = {k: v for k, v in estimator.get_params().items() if k not in ("checkpoint", "cache")}
    for k, v in list(params.items()):
        if isinstance(v, np.ndarray):
            params[k] = hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
        elif not isinstance(v, (str, int, float, bool, type(None), list, tuple)):
            params[k] = repr(v)
    doc = {
        "estimator": type(estimator).__name__,
        "params": params,
        "data": [X.name, list(X.shape), str(X.dtype), [list(c) for c in X.chunks]],
        "weights": weights.name if weights is not None else None,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _arrays(params: Any) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    if params is None:
        return "none", {}, {}
    if isinstance(params, np.ndarray):
        return "ndarray", {"value": params}, {}
    arrays = {
        f.name: getattr(params, f.name)
        for f in dataclasses.fields(params)
        if isinstance(getattr(params, f.name), np.ndarray)
    }
    scalars = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name not in arrays}
    return type(params).__name__, arrays, scalars


class Checkpoint:
    """Save and load :class:`State` at ``path`` for the fit with this ``fingerprint`` (and parameter class)."""

    def __init__(self, path: Target, fingerprint: str, params_class: type | None = None):
        self.path = path
        self.fingerprint = fingerprint
        self.params_class = params_class  # the estimator's parameters between iterations (None: an array)

    def save(self, state: State) -> None:
        kind, arrays, scalars = _arrays(state.params)
        meta: dict[str, Any] = {
            "kind": "checkpoint",
            "schema_version": 1,
            "fingerprint": self.fingerprint,
            "restart": state.restart,
            "params_type": kind,
            "params_scalars": to_json(scalars),
            "history": [dataclasses.asdict(h) for h in state.history],
        }
        best_arrays: dict[str, np.ndarray] = {}
        if state.best is not None:
            score, params, history, converged = state.best
            best_kind, best_arrays, best_scalars = _arrays(params)
            meta["best"] = {
                "score": score,
                "history": [dataclasses.asdict(h) for h in history],
                "converged": converged,
                "params_type": best_kind,
                "params_scalars": to_json(best_scalars),
            }
        with write_group(self.path, overwrite=True, meta=meta) as group:
            for name, value in arrays.items():
                group.create_array(f"params/{name}", data=value)
            for name, value in best_arrays.items():
                group.create_array(f"best/{name}", data=value)
            mark_complete(group)

    def _params(self, group: Any, prefix: str, meta: dict[str, Any]) -> Any:
        """Parameters stored under ``prefix`` as described by ``meta``'s ``params_type`` and ``params_scalars``."""
        if meta["params_type"] == "none":
            return None
        names = sorted(group[prefix].array_keys())
        arrays = {n: read_array(group, f"{prefix}/{n}", self.path) for n in names}
        if meta["params_type"] == "ndarray":
            return arrays["value"]
        if self.params_class is None or meta["params_type"] != self.params_class.__name__:
            raise StoreError(f"checkpoint {self.path!s} holds {meta['params_type']} parameters, not this fit's")
        return self.params_class(**arrays, **meta["params_scalars"])

    def load(self) -> State | None:
        """The saved state, or ``None`` when there is none; a checkpoint of another fit is an error."""
        if not Path(str(self.path)).exists():
            return None
        try:
            group, meta = read_group(self.path, "checkpoint")
        except StoreError as exc:
            logger.warning("ignoring unusable checkpoint: %s", exc)
            return None
        if meta["fingerprint"] != self.fingerprint:
            raise InputError(
                f"checkpoint {self.path!s} was written by a different fit (other data or parameters); "
                "delete it or pass another checkpoint path"
            )
        history = [Iteration(**h) for h in meta["history"]]
        best = None
        if "best" in meta:
            b = meta["best"]
            best = (b["score"], self._params(group, "best", b), [Iteration(**h) for h in b["history"]], b["converged"])
        return State(meta["restart"], self._params(group, "params", meta), history, best)

    def remove(self) -> None:
        path = Path(str(self.path))
        if path.is_dir():
            shutil.rmtree(path)
