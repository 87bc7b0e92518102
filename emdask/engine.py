"""The map-reduce EM engine.

A fit is a loop of passes.  In each pass every chunk of rows runs the model's E-step and
returns partial sufficient statistics (:class:`emdask._stats.Stats`); the partials are summed
by a tree of tasks on whatever Dask scheduler is active, its last level here (on a cluster that
holds the chunks, one task takes each worker thread's share of them); the model's M-step turns
the sum into new parameters.  The engine knows nothing of any model's maths: a model is any :class:`Model`
(``e_step`` on a chunk, ``m_step`` from the sum, ``objective`` and ``shift`` for the history, and
the ``tol`` of one of the loop's two stopping rules).

Memory is bounded by the chunk size: nothing of size n_samples is ever gathered.

Several fits of the same data (restarts, a grid of K, any estimators) share their passes:
:func:`run_shared` runs each as a procedure in its own thread, and :class:`SharedPasses` answers
the passes they wait for at the same time with one pass that reads each chunk once; the first
failure cancels every pass still to come.
"""
from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.sizeof import sizeof
from dask.task_spec import DataNode, List, Task, TaskRef
from dask.utils import funcname

from emdask._random import row_uniforms
from emdask._stats import Moments, Stats, TopK
from emdask._validation import check_finite_chunk
from emdask.errors import InputError
from emdask.runtime import active_client, groups_by_worker, memory_budget, one_blas_thread, persist_spread

logger = logging.getLogger("emdask")

S = TypeVar("S", bound=Stats)
P = TypeVar("P")
Cache = bool | Literal["auto"]
StopOn = Literal["shift", "objective"]

SPLIT_EVERY = 8
#: A pass's arguments (the parameters) up to this size go inside every chunk task (bench/RESULTS.md: a task of
#: their own made each pass on a cluster wait for them to reach every worker, and loaded its workers unevenly).
EMBED_BYTES = 1 << 16


def _run_chunk(fn: Callable[..., Stats], x: np.ndarray, w: np.ndarray | None, offset: int, args: tuple) -> Stats:
    with one_blas_thread():
        return fn(x, w, offset, *args)


def _run_group(
    fn: Callable[..., Stats], xs: Sequence[np.ndarray], ws: Sequence[np.ndarray] | None, offsets: Sequence[int],
    args: tuple, chunks: Sequence[int], n: int,
) -> dict[tuple[int, int], Stats]:
    """:func:`_run_chunk` on each of a group of the ``n`` chunks (numbers ``chunks``; ``ws`` their weights, or
    ``None``), summed as far as the pass's tree allows (:func:`_subtrees`)."""
    weights: Sequence[np.ndarray | None] = [None] * len(xs) if ws is None else ws
    leaves = {i: _run_chunk(fn, x, w, off, args) for i, x, w, off in zip(chunks, xs, weights, offsets)}
    return _subtrees(leaves, n)


def _level_width(n: int, level: int) -> int:
    """How many nodes level ``level`` of the pass's tree over ``n`` chunks has (level 0: the chunks)."""
    return -(-n // SPLIT_EVERY**level)


def _top_level(n: int) -> int:
    """The level of the pass's tree over ``n`` chunks whose nodes (at most :data:`SPLIT_EVERY`) are summed last."""
    level = 0
    while _level_width(n, level) > SPLIT_EVERY:
        level += 1
    return level


def _subtrees(leaves: dict[int, S], n: int) -> dict[tuple[int, int], S]:
    """The largest nodes ``(level, index)`` of the pass's tree over ``n`` chunks (:data:`SPLIT_EVERY`-ary, by chunk
    number, as :func:`_summed` builds it) that only ``leaves`` (chunk number: statistics) make up, up to its
    top level: what a group of chunks can sum without changing the order of any addition."""
    nodes = {(0, i): stats for i, stats in leaves.items()}
    for level in range(_top_level(n)):
        below = _level_width(n, level)
        for j in sorted({i // SPLIT_EVERY for lv, i in nodes if lv == level}):
            children = [(level, c) for c in range(j * SPLIT_EVERY, min((j + 1) * SPLIT_EVERY, below))]
            if all(c in nodes for c in children):
                nodes[(level + 1, j)] = _sum([nodes.pop(c) for c in children])
    return nodes


def _tree_total(parts: Sequence[dict[tuple[int, int], S]], n: int) -> S:
    """The pass's total from groups' :func:`_subtrees`, which together cover each of the ``n`` chunks once: every
    addition in the order of the tree over single chunks, so the result has the same bits however the chunks
    were grouped (which depends on where the cluster keeps them)."""
    nodes = {key: stats for part in parts for key, stats in part.items()}

    def node(level: int, j: int) -> S:
        if (level, j) in nodes or level == 0:
            return nodes[(level, j)]
        below = _level_width(n, level - 1)
        return _sum([node(level - 1, c) for c in range(j * SPLIT_EVERY, min((j + 1) * SPLIT_EVERY, below))])

    top = _top_level(n)
    return _sum([node(top, j) for j in range(_level_width(n, top))])


def _sum(parts: Sequence[S]) -> S:
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _summed(
    name: str, layer: dict, keys: list, sources: list[Any], split_every: int = SPLIT_EVERY, top: int = 1
) -> list[Delayed]:
    """``layer`` with a tree of ``split_every``-ary sums over ``keys`` added (depth log n, not a chain), as one
    graph layer over the ``sources`` (Delayed objects) holding what it refers to, up to a level of at most
    ``top`` sums; that level."""
    depth = 0
    while len(keys) > top:
        depth += 1
        level = []
        for j in range(0, len(keys), split_every):
            key = (name, depth, j // split_every)
            layer[key] = Task(key, _sum, List(*[TaskRef(k) for k in keys[j : j + split_every]]))
            level.append(key)
        keys = level
    graph = HighLevelGraph.from_collections(name, layer, dependencies=sources)
    return [Delayed(key, graph, layer=name) for key in keys]


def tree_sum(parts: list[Delayed], split_every: int = SPLIT_EVERY) -> Delayed:
    """Sum delayed statistics in a tree of ``split_every``-ary tasks, one graph layer for the whole tree: a
    ``dask.delayed`` call per sum would merge its inputs' graphs each time (bench/pass_overhead.py)."""
    if len(parts) == 1:
        return parts[0]
    return _summed(f"sum-{uuid.uuid4().hex}", {}, [p.key for p in parts], list(parts), split_every)[0]


class ChunkedData:
    """Rows of a 2-D Dask array (one chunk along features) and optional per-row weights, ready for passes.

    ``cache`` chooses whether the data is held in cluster memory between passes (``True``) or
    re-read from its source on every pass (``False``).  ``"auto"`` caches when the data fits in
    :data:`CACHE_FRACTION` of the memory of the active cluster (or of this machine), so it never
    tries to load a dataset larger than the cluster's memory.
    """

    log_level = logging.INFO

    def __init__(self, X: da.Array, weights: da.Array | None = None, *, cache: Cache = "auto", name: str = "X"):
        self.name = name
        self.shape: tuple[int, int] = (int(X.shape[0]), int(X.shape[1]))
        self.dtype = X.dtype
        nbytes = X.nbytes + (weights.nbytes if weights is not None else 0)
        self.cached = bool(nbytes <= memory_budget()) if cache == "auto" else bool(cache)
        if self.cached:
            X, weights = persist_spread(X, weights)
        logger.info(
            "%s: %d x %d %s in %d chunks, %.1f MiB, %s",
            name, *self.shape, X.dtype, X.numblocks[0], nbytes / 2**20,
            "cached in memory" if self.cached else "re-read from its source on each pass",
        )
        # the chunks as Delayed objects sharing one graph, optimised once: each pass refers to their keys
        self._x = list(X.to_delayed().ravel())
        self._w = list(weights.to_delayed().ravel()) if weights is not None else []
        self.offsets = [int(o) for o in np.cumsum((0,) + X.chunks[0][:-1])]
        self.X = X
        self.weights = weights
        #: on a cluster, the cached chunks a pass's task takes together (groups_by_worker); else one task a chunk
        self._groups = groups_by_worker(X) if self.cached else None
        #: the last pass's futures on a cluster, held until the next pass's graph has gone out (:meth:`_compute`)
        self._last_pass: list[Any] = []

    @property
    def n_chunks(self) -> int:
        return len(self._x)

    def map_reduce(self, fn: Callable[..., S], *args: Any) -> S:
        """One pass: ``fn(x, w, offset, *args)`` on every chunk, summed by a tree on the active scheduler up to
        :data:`SPLIT_EVERY` partial sums, which this process adds: on a cluster, a last sum task would wait
        for the others' results to reach its worker, then send its own here (bench/RESULTS.md)."""
        parts = self._compute(self._pass_sums(fn, args, SPLIT_EVERY))
        return _sum(parts) if self._groups is None else _tree_total(parts, self.n_chunks)

    def _compute(self, tasks: list[Delayed]) -> list[Any]:
        """The results of ``tasks`` on the active scheduler.

        On a cluster, the previous pass's futures are released only after this pass's graph has
        gone out.  A client sends its messages to the scheduler at most every 10 ms, so a release
        sent just before the next graph would hold that graph back for the rest of the interval
        (bench/RESULTS.md).
        """
        client = active_client()
        if client is None:
            return list(dask.compute(*tasks))
        futures = client.compute(tasks)
        self._last_pass = futures
        return client.gather(futures)

    def pass_graph(self, fn: Callable[..., S], *args: Any) -> Delayed:
        """One pass's graph, its root the whole sum (:meth:`_pass_sums`)."""
        return self._pass_sums(fn, args, 1)[0]

    def _pass_sums(self, fn: Callable[..., S], args: tuple, top: int) -> list[Delayed]:
        """The tasks of one pass, their sum not yet computed: one graph layer over the chunks' keys, not a
        ``dask.delayed`` call per chunk, which merges graphs each time (bench/pass_overhead.py).
        A task a chunk, summed by tasks up to a level of at most ``top`` sums, which are returned; or
        on a cluster that holds the chunks, a task a group of them (:func:`emdask.runtime.groups_by_worker`),
        whose results are returned, or with ``top`` 1 one task of their total (:func:`_tree_total`).

        Arguments up to :data:`EMBED_BYTES` travel inside each chunk task; larger ones are one
        task of their own, whose result the chunk tasks share (on a cluster, the worker that ran
        it sends it on to every other one before their chunks can start).
        """
        name = f"{funcname(fn)}-{uuid.uuid4().hex}"
        layer: dict = {}
        shared: Any = args
        if sizeof(args) > EMBED_BYTES:
            layer[(name, "arguments")] = DataNode((name, "arguments"), args)
            shared = TaskRef((name, "arguments"))
        weights: list[TaskRef | None] = [TaskRef(w.key) for w in self._w] or [None] * self.n_chunks
        if self._groups is None:
            for i, (x, w, off) in enumerate(zip(self._x, weights, self.offsets)):
                layer[(name, 0, i)] = Task((name, 0, i), _run_chunk, fn, TaskRef(x.key), w, off, shared)
        else:  # each group sums what it can in the tree's order; the rest is summed in this process (map_reduce)
            for g, group in enumerate(self._groups):
                xs = List(*[TaskRef(self._x[i].key) for i in group])
                ws = List(*[weights[i] for i in group]) if self._w else None
                offsets = [self.offsets[i] for i in group]
                layer[(name, 0, g)] = Task((name, 0, g), _run_group, fn, xs, ws, offsets, shared, group, self.n_chunks)
            groups: list[tuple] = [(name, 0, g) for g in range(len(self._groups))]
            if top == 1:
                layer[(name, "total")] = Task((name, "total"), _tree_total, List(*map(TaskRef, groups)), self.n_chunks)
                groups = [(name, "total")]
            return _summed(name, layer, groups, self._x[:1] + self._w[:1], top=len(groups))  # no sum tasks
        # every chunk's key is in the one graph of the first chunk (and of the first weights)
        return _summed(name, layer, [(name, 0, i) for i in range(self.n_chunks)], self._x[:1] + self._w[:1], top=top)


class InMemoryData:
    """The same pass interface over a NumPy array held by this process (sub-problems, colour histograms).

    ``threads`` > 1 splits the rows into that many pieces whose chunk functions run at once in a
    thread pool (the compiled kernels release the GIL) and adds their statistics.
    """

    #: Passes over a small in-memory sub-problem are logged at DEBUG, not as progress.
    log_level = logging.DEBUG

    def __init__(
        self, X: np.ndarray, weights: np.ndarray | None = None, name: str = "in-memory data", threads: int = 1
    ):
        self.X, self.weights, self.shape, self.name = X, weights, X.shape, name
        self.bounds = np.linspace(0, len(X), max(1, min(threads, len(X))) + 1).astype(int)

    def map_reduce(self, fn: Callable[..., S], *args: Any) -> S:
        if len(self.bounds) == 2:
            return fn(self.X, self.weights, 0, *args)
        w = self.weights
        pieces = [(self.X[a:b], None if w is None else w[a:b], int(a)) for a, b in zip(self.bounds, self.bounds[1:])]
        with ThreadPoolExecutor(len(pieces), thread_name_prefix="emdask-pass") as pool:
            parts = list(pool.map(lambda p: _run_chunk(fn, p[0], p[1], p[2], args), pieces))
        return _sum(parts)  # type: ignore[return-value]


class Passes(Protocol):
    """Something to make passes over: the data (chunked or in memory), or passes shared by several fits."""

    shape: tuple[int, int]
    name: str
    log_level: int

    def map_reduce(self, fn: Callable[..., S], *args: Any) -> S: ...


class Model(Protocol[P]):
    """What the engine needs of a model (``P`` its parameters): the maths lives in the model, never here."""

    def e_step(self, x: np.ndarray, w: np.ndarray | None, offset: int, params: P) -> Any:
        """Statistics (that add) of one chunk ``x``, its weights ``w`` and its first global row ``offset``."""

    def m_step(self, stats: Any, params: P) -> P:
        """New parameters from the summed statistics."""

    def objective(self, stats: Any, params: P) -> float:
        """What the E-step with ``params`` achieved (inertia, log-likelihood or bound), for the history."""

    def shift(self, old: P, new: P) -> float:
        """How far the M-step moved the parameters, for the history."""

    @property
    def tol(self) -> float:
        """The tolerance of the model's stopping rule (see :func:`converged`)."""

    @property
    def stop_on(self) -> StopOn:
        """Which of the loop's stopping rules the model uses."""


@dataclass(frozen=True)
class Iteration:
    """One EM pass: the objective of the E-step, the parameter shift of the M-step, its wall time."""

    iteration: int
    objective: float
    shift: float
    seconds: float


@dataclass
class FitResult:
    params: Any
    history: list[Iteration]
    converged: bool

    @property
    def n_iter(self) -> int:
        return len(self.history)

    def history_dicts(self) -> list[dict[str, float]]:
        return [asdict(h) for h in self.history]


def converged(model: Model[Any], history: Sequence[Iteration]) -> bool:
    """The stopping rule of every fit, scikit-learn's for each kind of model.

    ``stop_on="shift"`` (K-means): the M-step moved the parameters by at most ``tol``;
    ``stop_on="objective"`` (EM on a likelihood): the objective changed by less than ``tol`` (for the
    first iteration, against the model's ``previous_objective``: a warm start's, as scikit-learn does).
    """
    if model.stop_on == "shift":
        return history[-1].shift <= model.tol
    before = history[-2].objective if len(history) > 1 else getattr(model, "previous_objective", None)
    return before is not None and abs(history[-1].objective - before) < model.tol


def run_em(
    model: Model[Any],
    data: Passes,
    params: Any,
    max_iter: int,
    history: list[Iteration] | None = None,
    on_iteration: Callable[[Any, list[Iteration]], None] | None = None,
) -> FitResult:
    """Iterate E-step pass and M-step until :func:`converged` or ``max_iter`` passes.

    ``history`` continues an interrupted fit (its parameters are ``params``); ``on_iteration``
    is called with the new parameters and the history after every iteration (checkpoints).
    """
    history = list(history or [])
    if history and converged(model, history):
        return FitResult(params, history, True)
    for it in range(len(history) + 1, max_iter + 1):
        t0 = time.perf_counter()
        stats = data.map_reduce(model.e_step, params)
        new = model.m_step(stats, params)
        objective = float(model.objective(stats, params))
        step = Iteration(it, objective, float(model.shift(params, new)), time.perf_counter() - t0)
        history.append(step)
        params = new
        logger.log(
            data.log_level, "%s: pass %d of at most %d: %s %.10g, parameters moved %.3g, %.2f s",
            data.name, it, max_iter, getattr(model, "objective_name", "objective"), step.objective, step.shift,
            step.seconds,
            extra={"emdask_pass": it},  # for progress displays (the CLI's bars)
        )
        if on_iteration is not None:
            on_iteration(params, history)
        if converged(model, history):
            return FitResult(params, history, True)
    return FitResult(params, history, False)


@dataclass(frozen=True)
class Each(Stats):
    """The statistics of several requests answered by one pass; adds request by request."""

    parts: tuple[Stats, ...]

    def __add__(self, other: Any) -> Each:
        return Each(tuple(a + b for a, b in zip(self.parts, other.parts)))


def _each_request(x: np.ndarray, w: np.ndarray | None, offset: int, requests: tuple[tuple[Any, tuple], ...]) -> Each:
    return Each(tuple(fn(x, w, offset, *args) for fn, args in requests))


class Cancelled(RuntimeError):
    """A procedure's pass was not made because another procedure sharing the passes failed."""


class SharedPasses:
    """Passes over ``data`` requested by several procedures (one thread each): once every procedure
    still running waits for a pass, all their requests are answered by one pass, each chunk read once.

    Each request's statistics are summed in the same tree as on its own, so every procedure gets
    exactly the result it would get alone.  The pass runs outside the lock, in the thread of the
    last procedure to ask.  When a procedure fails (in a pass or in its own code), no further pass
    is made: every other procedure's request raises :class:`Cancelled` at once.
    """

    def __init__(self, data: Passes, procedures: int):
        self.data, self.shape, self.name, self.log_level = data, data.shape, data.name, data.log_level
        self._cond = threading.Condition()
        self._running = procedures
        self._pending: dict[int, tuple[Any, tuple]] = {}
        self._answers: dict[int, Any] = {}
        self._tickets = 0
        self._failure: BaseException | None = None
        self.passes = 0

    def map_reduce(self, fn: Callable[..., S], *args: Any) -> S:
        with self._cond:
            self._check()
            ticket, self._tickets = self._tickets, self._tickets + 1
            self._pending[ticket] = (fn, args)
            batch = self._batch()
        if batch:
            self._answer(batch)
        with self._cond:
            while ticket not in self._answers:
                self._check()
                self._cond.wait()
            return self._answers.pop(ticket)

    def leave(self) -> None:
        """A procedure finished: it asks for no more passes (the others may now be all waiting)."""
        with self._cond:
            self._running -= 1
            batch = self._batch()
        if batch:
            self._answer(batch)

    def fail(self, exc: BaseException) -> None:
        """A procedure failed: cancel every pass not yet made."""
        with self._cond:
            if self._failure is None:
                self._failure = exc
            self._cond.notify_all()

    def _check(self) -> None:
        if self._failure is not None:
            raise Cancelled(f"{self.name}: a fit sharing these passes failed ({self._failure!r})")

    def _batch(self) -> dict[int, tuple[Any, tuple]]:
        """The pending requests, taken, once every running procedure has one (called with the lock held)."""
        if self._failure is not None or not self._pending or len(self._pending) < self._running:
            return {}
        batch, self._pending = self._pending, {}
        return batch

    def _answer(self, batch: dict[int, tuple[Any, tuple]]) -> None:
        try:
            stats = self.data.map_reduce(_each_request, tuple(batch.values()))
        except BaseException as exc:  # the pass itself failed: every waiting procedure stops
            self.fail(exc)
            raise
        with self._cond:
            self._answers.update(zip(batch, stats.parts))
            self.passes += 1
            logger.debug("%s: shared pass %d answered %d requests", self.name, self.passes, len(batch))
            self._cond.notify_all()


T = TypeVar("T")


def run_shared(data: Passes, procedures: Sequence[Callable[[Passes], T]]) -> list[T]:
    """Run ``procedure(passes)`` for each procedure, at the same time, sharing the passes over ``data``.

    A procedure is any code that makes passes through ``passes.map_reduce`` (an EM run, an
    initialisation, a scoring pass); its passes join those the others request at the same time.
    The first failure stops every procedure at its next pass and is raised.
    """
    if len(procedures) == 1:
        return [procedures[0](data)]
    shared = SharedPasses(data, len(procedures))

    def member(procedure: Callable[[Passes], T]) -> T:
        try:
            return procedure(shared)
        except BaseException as exc:
            shared.fail(exc)
            raise
        finally:
            shared.leave()

    with ThreadPoolExecutor(len(procedures), thread_name_prefix="emdask-shared") as pool:
        # each thread runs in a copy of this context: the Dask client current here is current there
        futures = [pool.submit(contextvars.copy_context().run, member, p) for p in procedures]
        wait(futures, return_when=FIRST_EXCEPTION)
        failures = [f.exception() for f in futures if f.done() and f.exception() is not None]
        first = next((e for e in failures if not isinstance(e, Cancelled)), failures[0] if failures else None)
        if first is not None:
            shared.fail(first)
            wait(futures)  # the others stop at their next pass
            raise first
        return [f.result() for f in futures]


@dataclass
class State:
    """Where a fit stands: the restart running, its parameters and history, and the best finished restart."""

    restart: int
    params: Any  # None: the restart has not been initialised yet
    history: list[Iteration]
    best: tuple[float, Any, list[Iteration], bool] | None = None  # (score, params, history, converged)



def fit_restarts(
    model: Any,
    data: Passes,
    n_init: int,
    initial: Callable[[int, Passes], Any],
    max_iter: int,
    score: Callable[[FitResult, Passes], float],
    checkpoint: Any = None,
) -> tuple[FitResult, float]:
    """``n_init`` restarts of :func:`run_em`, keeping the lowest ``score``; resumable from a ``checkpoint``.

    Without a checkpoint the restarts run together (:func:`run_shared`: their initialisations'
    passes and then their EM passes are shared); with one they run one after another, each resumable.
    ``initial(restart, passes)`` gives a restart's starting parameters and ``score(result, passes)``
    its score, each making its passes (if any) through ``passes``.  With a checkpoint (an object with
    ``load() -> State | None``, ``save(State)`` and ``remove()``, see :mod:`emdask.checkpoint`)
    the state is saved after every iteration and a re-run continues where the last one stopped.
    """
    if checkpoint is None and n_init > 1:  # nothing to resume: the restarts share every pass
        scored = run_shared(data, [partial(_scored_restart, model, initial, score, r, max_iter) for r in range(n_init)])
        return min(scored, key=lambda result_score: result_score[1])
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        logger.info("resuming from checkpoint: restart %d after %d iterations", state.restart, len(state.history))
    best = state.best if state is not None else None
    for restart in range(state.restart if state is not None else 0, n_init):
        resumed = state is not None and state.restart == restart and state.params is not None
        params = state.params if resumed else initial(restart, data)  # type: ignore[union-attr]
        history = state.history if resumed else []  # type: ignore[union-attr]

        def save(p: Any, h: list[Iteration], restart: int = restart, best: Any = best) -> None:
            checkpoint.save(State(restart, p, h, best))

        if checkpoint is not None and not resumed:
            save(params, [])
        result = run_em(model, data, params, max_iter, history, save if checkpoint is not None else None)
        value = score(result, data)
        if best is None or value < best[0]:
            best = (value, result.params, result.history, result.converged)
        state = None
        if checkpoint is not None and restart + 1 < n_init:
            checkpoint.save(State(restart + 1, None, [], best))
    assert best is not None
    return FitResult(best[1], best[2], best[3]), best[0]


def _scored_restart(
    model: Any,
    initial: Callable[[int, Passes], Any],
    score: Callable[[FitResult, Passes], float],
    restart: int,
    max_iter: int,
    data: Passes,
) -> tuple[FitResult, float]:
    """Initialise restart ``restart``, run EM from there and score it, every pass through ``data``."""
    result = run_em(model, data, initial(restart, data), max_iter)
    return result, score(result, data)


@dataclass(frozen=True)
class Summary(Stats):
    """What the first pass learns about the data: moments, total weight and a weighted random sample.

    The sample is drawn without replacement with probability proportional to the weights
    (Efraimidis & Spirakis' A-Res keys ``log(u) / w``), from per-row random numbers, so it is
    the same for every chunking and scheduler.
    """

    moments: Moments
    weight: float
    positive: float
    sample: TopK

    def sample_rows(self) -> np.ndarray:
        return self.sample.rows

    def sample_weights(self) -> np.ndarray:
        return self.sample.extra[:, 0]


ChunkCheck = Callable[[np.ndarray, int, str], None]


def summarize_chunk(
    x: np.ndarray, w: np.ndarray | None, offset: int, seed: int, size: int, name: str, check: ChunkCheck | None = None
) -> Summary:
    """The first pass over one chunk; it rejects NaN, infinity, bad weights and what ``check`` rejects."""
    check_finite_chunk(x, offset, name)
    if check is not None:
        check(x, offset, name)
    if w is None and not size:  # unit weights, nothing to initialise from: no per-row weight arrays
        return Summary(Moments.of(x), float(len(x)), float(len(x)), TopK.of(0, np.empty(0), offset, x[:0], (x[:0, 0],)))
    w = np.ones(len(x)) if w is None else w
    check_finite_chunk(w, offset, "sample_weight")
    if np.any(w < 0):
        raise InputError(
            f"sample_weight must be non-negative; got {w[w < 0][0].item()!r} at row {offset + np.argmax(w < 0)}"
        )
    pos = w > 0
    if size:
        u = row_uniforms(seed, 0, offset, len(x))
        with np.errstate(divide="ignore", invalid="ignore"):
            keys = np.where(pos, np.log(u) / np.where(pos, w, 1.0), -np.inf)
        sample = TopK.of(size, keys, offset, x, (w,))
    else:  # nothing to initialise from (the starting parameters are given)
        sample = TopK.of(0, np.empty(0), offset, x[:0], (w[:0],))
    return Summary(Moments.of(x), float(w.sum()), float(pos.sum()), sample)


def summarize(data: Passes, seed: int, sample_size: int, check: ChunkCheck | None = None) -> Summary:
    """The first pass: validates values (also by a model's ``check``), computes moments, draws the init sample."""
    summary = data.map_reduce(summarize_chunk, seed, sample_size, data.name, check)
    if summary.weight <= 0:
        raise InputError("sample_weight must have at least one positive weight; got all zeros")
    return summary
