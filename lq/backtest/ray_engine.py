"""Sweeps on a Ray cluster: one Ray task per (parameter set, fold).

Imported only by ``sweep(..., engine="ray")``, :func:`lq.backtest.sweep_folds` and
``lq backtest --grid ... --engine ray``; nothing else in lq imports Ray.

Each task reads its bars itself: from a :class:`~lq.backtest.source.StoreSlice` (the SQLite
file and its Parquet archive, by path and a pinned µs range) when the sweep was given one,
else from one copy of the bars put in Ray's object store once. A worker keeps the prepared
bars of the fold it ran last (and their indicator cache), so the tasks of one fold that land
on one worker read and prepare the data once. A worker checks that the bars it read have the
fingerprint the driver saw (the store changed meanwhile: the task fails, naming the fold).

Rows are computed by the same function as the local engine's (:func:`lq.backtest.sweep.run_row`),
on the same bars, so the table equals the serial run's bit for bit. A task that raises or
whose worker dies is retried ``max_retries`` times; then the sweep fails with one
:class:`~lq.errors.BacktestError` naming the parameter set and the fold, and the other
tasks are cancelled (no partial table is stored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from lq.backtest.data import Bars, data_fingerprint
from lq.backtest.engine import prepare
from lq.backtest.source import StoreSlice
from lq.backtest.strategies import indicator_cache
from lq.backtest.sweep import run_row
from lq.errors import BacktestError

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    raise BacktestError(
        "the ray engine needs Ray, which is not installed: pip install 'lq[ray]'"
    ) from None

__all__ = ["Fold", "connect", "run_folds"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Fold:
    """Where a fold's tasks read their bars (``source``, or ``bars`` put once) and the
    fingerprint (:func:`~lq.backtest.data.data_fingerprint`) they must find."""

    source: StoreSlice | None
    bars: Bars | None
    fingerprint: str


# one worker process's prepared fold: {"key", "prep", "cache"}
_WORKER: dict[str, Any] = {}


def _prepared(
    key: tuple[str, int], source: StoreSlice | None, bars: Any, fingerprint: str, costs: Any
) -> Any:
    if _WORKER.get("key") != key:
        if "cache" in _WORKER:  # indicators are keyed by id(bars): never keep them past the bars
            _WORKER["cache"].__exit__(None, None, None)
        _WORKER.clear()
        data = source.load() if source is not None else bars
        prep = prepare(data, costs)
        got = data_fingerprint(prep.frames)
        if got != fingerprint:
            raise BacktestError(
                f"the bars read from {source} are not the ones the sweep started on "
                f"(fingerprint {got}, expected {fingerprint}): the store changed; "
                "give the sweep a closed time range"
            )
        cache = indicator_cache()
        cache.__enter__()
        _WORKER.update(key=key, prep=prep, cache=cache)
    return _WORKER["prep"]


@ray.remote
def _task(
    key: tuple[str, int],
    source: StoreSlice | None,
    bars: Any,
    fingerprint: str,
    ctx: Mapping[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    prep = _prepared(key, source, bars, fingerprint, ctx["costs"])
    try:
        return run_row({**ctx, "prep": prep}, params)
    except BacktestError as exc:
        if exc.__cause__ is not None:  # the strategy's own exception: the driver names the set
            raise exc.__cause__ from None
        raise


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: the one joined already, else a new local one).

    Returns True when this call started the connection (the caller shuts it down).
    """
    if ray.is_initialized():
        return False
    if address and address != "auto":
        _probe(address)  # Ray itself retries an address nothing listens on for minutes
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    except Exception as exc:  # ConnectionError, a bad address...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"--address {address}" if address else "a local Ray cluster"
        raise BacktestError(
            f"{where}: cannot start or join Ray ({first}); start a cluster with "
            "`ray start --head` and pass its address"
        ) from None
    return True


def _probe(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or "//" in address:
        raise BacktestError(
            f"--address {address}: expected HOST:PORT of a Ray head (printed by `ray start --head`)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=10):
            pass
    except OSError as exc:
        raise BacktestError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start one with `ray start --head` and pass the address it prints"
        ) from None


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".rstrip(": ")


def run_folds(
    folds: Sequence[Fold],
    jobs: Sequence[tuple[int, int, dict[str, Any]]],
    ctx: Mapping[str, Any],
    *,
    address: str | None,
    max_retries: int,
    bar: Any,
) -> list[list[dict[str, Any] | None]]:
    """Rows of ``jobs`` (``(fold, set index, parameters)``) as Ray tasks; ``rows[fold][i]``.

    ``bar.update(1)`` as each task finishes (in completion order).
    """
    n_sets = 1 + max(i for _, i, _ in jobs)
    rows: list[list[dict[str, Any] | None]] = [[None] * n_sets for _ in folds]
    started = connect(address)
    pending: dict[Any, tuple[int, int, dict[str, Any]]] = {}
    try:
        token = uuid.uuid4().hex
        ctx_ref: Any = ray.put(dict(ctx))
        bar_refs = [None if f.source is not None else ray.put(f.bars) for f in folds]
        remote = _task.options(max_retries=max_retries, retry_exceptions=True)
        for job in jobs:
            k, _i, params = job
            f = folds[k]
            ref = remote.remote((token, k), f.source, bar_refs[k], f.fingerprint, ctx_ref, params)
            pending[ref] = job
        refs = list(pending)
        while refs:
            # whatever finished within a second (one wait per batch, not per task)
            done, refs = ray.wait(refs, num_returns=len(refs), timeout=1.0)
            for ref in done:
                k, i, params = pending.pop(ref)
                try:
                    rows[k][i] = ray.get(ref)
                except Exception as exc:
                    fold = f" (fold {k + 1} of {len(folds)})" if len(folds) > 1 else ""
                    raise BacktestError(
                        f"sweep of {ctx['name']}: parameter set {params}{fold} failed after "
                        f"{max_retries} retries: {_cause(exc)}"
                    ) from None
                bar.update(1)
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):  # finished meanwhile
                ray.cancel(ref, force=True)
        bar.close()
        if started:
            ray.shutdown()
    return rows
