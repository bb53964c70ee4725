"""``lq backtest``: run the backtest notebook with papermill, once, on a schedule, or as a sweep.

::

    lq backtest -p strategy pairs_zscore -p entry 1.5 -p interval 1m     # one run
    lq backtest --every 15m -p last 24h                                   # scheduled runs
    lq backtest --grid entry=1.5,2,2.5 --grid lookback=60,120 --workers 2 # a sweep
    lq backtest --grid entry=1.5,2,2.5 --engine ray --address HOST:6379  # on a Ray cluster

One run executes ``notebooks/backtest.ipynb`` with the parameters injected
(``papermill.execute_notebook``), keeps the executed notebook as ``<out>/<run_id>.ipynb``
and the notebook stores a row in ``backtest_runs`` (:mod:`lq.backtest.runs`). ``--every``
repeats that until SIGINT/SIGTERM (each row marked ``scheduled``); the first signal lets the
current run finish, a second one aborts it. ``--grid`` runs :func:`lq.backtest.sweep` over a
process pool with a progress bar on the same inputs and stores one row: the best parameter
set (by Deflated Sharpe) and its DSR; the whole table goes to ``<out>/<run_id>.csv``.
``--engine ray`` runs each parameter set as a Ray task that reads its bars from the store
itself (:mod:`lq.backtest.ray_engine`), printing ``done/total`` as tasks finish; the table
is the same, bit for bit.

``-p NAME VALUE`` sets a notebook parameter (see the notebook's ``parameters`` cell) or, for
any other name, a parameter of the chosen strategy. Values are read as JSON or Python
literals (``1.5``, ``true``, ``None``, ``{"lookback": 60}``), else as text; a list parameter
also takes comma-separated text (``-p symbols BTCUSDT,ETHUSDT``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lq.backtest.runs import DEFAULT_INTERVAL, get_run, new_run_id, record_sweep
from lq.errors import BacktestError, LqError, ValidationError

if TYPE_CHECKING:
    from lq.backtest.sweep import Engine, Progress

__all__ = [
    "NOTEBOOK",
    "Schedule",
    "add_parser",
    "backtest_notebook",
    "notebook_parameters",
    "parse_grid",
    "parse_value",
    "resolve_parameters",
    "run",
    "run_notebook",
    "run_sweep",
]

log = logging.getLogger(__name__)

#: The parameterised backtest notebook in the source tree.
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "backtest.ipynb"


# ------------------------------------------------------------------------- parameters
def backtest_notebook(path: str | os.PathLike[str] | None = None) -> Path:
    """The notebook to run: ``path``, or ``notebooks/backtest.ipynb`` from the source tree."""
    p = Path(path) if path else NOTEBOOK
    if not p.is_file():
        raise ValidationError("--notebook", str(p), "no such notebook")
    return p


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell (literals only)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            out: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        try:
                            out[target.id] = ast.literal_eval(node.value)
                        except ValueError as exc:
                            raise ValidationError(
                                f"{path}: parameters.{target.id}",
                                ast.unparse(node.value),
                                f"must be a literal ({exc})",
                            ) from None
            return out
    raise ValidationError(str(path), "cells", 'no cell tagged "parameters"')


def parse_value(text: str) -> Any:
    """A command-line value: JSON, else a Python literal, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Fit a parsed value to the type of the notebook's default."""
    if isinstance(default, list) and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(default, bool) and not isinstance(value, bool):
        if isinstance(value, str) and value.lower() in ("yes", "no", "on", "off"):
            return value.lower() in ("yes", "on")
        raise ValidationError(f"-p {name}", value, "expected true or false")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        return str(value)
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ValidationError(f"-p {name}", value, 'expected a JSON object such as {"a": 1}')
    return value


def _strategy_fields(strategy: str) -> list[str]:
    from lq.backtest import STRATEGIES, available_strategies

    spec = STRATEGIES.get(strategy)
    if spec is None:
        raise ValidationError("strategy", strategy, f"unknown; built-ins: {available_strategies()}")
    return [f.name for f in dataclasses.fields(spec.params)]


def resolve_parameters(
    defaults: Mapping[str, Any], pairs: Sequence[Sequence[str]] | None
) -> dict[str, Any]:
    """The notebook's parameters after ``-p NAME VALUE`` pairs.

    A name that is not a notebook parameter but a parameter of the strategy goes into
    ``params``. Choosing another strategy without giving ``params`` starts from that
    strategy's defaults (``{}``). Unknown names are refused, naming the choices.
    """
    values = dict(defaults)
    given = {str(n): parse_value(v) for n, v in (pairs or [])}
    strategy_params: dict[str, Any] = {}
    for name, value in given.items():
        if name in defaults:
            values[name] = _coerce(name, value, defaults[name])
    strategy = str(values.get("strategy", ""))
    if "params" in defaults and "params" not in given and strategy != defaults.get("strategy"):
        values["params"] = {}
    fields = _strategy_fields(strategy) if strategy else []
    for name, value in given.items():
        if name in defaults:
            continue
        if name in fields:
            strategy_params[name] = value
            continue
        raise ValidationError(
            f"-p {name}",
            value,
            f"not a notebook parameter {sorted(defaults)} nor a parameter of "
            f"{strategy or 'the strategy'} {fields}",
        )
    if strategy_params:
        values["params"] = {**dict(values.get("params") or {}), **strategy_params}
    return values


_GRID_FORM = "expected NAME=V1,V2,... (one --grid per parameter), e.g. --grid entry=1.5,2,2.5"


def parse_grid(specs: Sequence[str] | None, *, strategy: str | None = None) -> dict[str, list[Any]]:
    """``["entry=1.5,2", "lookback=60,120"]`` -> ``{"entry": [1.5, 2], "lookback": [60, 120]}``.

    A malformed spec is one :class:`ValidationError` naming the wrong token and the form;
    with ``strategy``, each name must be one of its parameters (checked before any data is read).
    """
    axes: dict[str, list[Any]] = {}
    fields = _strategy_fields(strategy) if strategy else None
    for spec in specs or []:
        name, sep, rest = spec.partition("=")
        name = name.strip()
        if not sep:
            raise ValidationError("--grid", spec, f"no NAME= before the values: {_GRID_FORM}")
        if not name or not name.isidentifier():
            what = "no parameter name" if not name else f"{name!r} is not a parameter name"
            raise ValidationError("--grid", spec, f"{what} before '=': {_GRID_FORM}")
        if name in axes:
            raise ValidationError("--grid", spec, f"{name} is given twice: {_GRID_FORM}")
        if fields is not None and name not in fields:
            raise ValidationError(
                "--grid", spec, f"{name!r} is not a parameter of {strategy} {fields}: {_GRID_FORM}"
            )
        tokens = [t.strip() for t in rest.split(",")]
        if not rest.strip():
            raise ValidationError("--grid", spec, f"no values after '{name}=': {_GRID_FORM}")
        for i, tok in enumerate(tokens, 1):
            if not tok:
                raise ValidationError(
                    "--grid",
                    spec,
                    f"value {i} of {name} is empty (',,' or a trailing ','): {_GRID_FORM}",
                )
            if "=" in tok or any(c.isspace() for c in tok):
                raise ValidationError(
                    "--grid", spec, f"value {i} of {name}, {tok!r}, is not one value: {_GRID_FORM}"
                )
        axes[name] = [parse_value(t) for t in tokens]
    return axes


# ------------------------------------------------------------------------------ one run
def run_notebook(
    values: Mapping[str, Any],
    *,
    notebook: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    scheduled: bool = False,
    run_id: str | None = None,
    cell_timeout: float | None = None,
) -> tuple[str, Path]:
    """Execute the notebook once with ``values`` injected; returns ``(run_id, output path)``.

    The executed notebook is kept as ``<out_dir>/<run_id>.ipynb`` even when it fails (the
    failing cell shows the error); a failure raises :class:`~lq.errors.BacktestError` naming
    the cell, the exception and that file.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    rid = run_id or str(values.get("run_id") or "") or new_run_id("backtest")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{rid}.ipynb"
    params = {
        **dict(values),
        "run_id": rid,
        "scheduled": bool(scheduled),
        "notebook_path": str(path),
    }
    t0 = time.perf_counter()
    log.info("running %s as %s", notebook, rid)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(path),
            parameters=params,
            progress_bar=False,
            log_output=False,
            execution_timeout=cell_timeout,
        )
    except PapermillExecutionError as exc:
        raise BacktestError(
            f"backtest run {rid} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
            f"(executed notebook kept at {path})"
        ) from None
    log.info("run %s finished in %.1f s", rid, time.perf_counter() - t0)
    return rid, path


def _dim(text: str, tty: bool) -> str:
    """Greyed on a terminal (ANSI faint); the words around it say why in any case."""
    return f"\x1b[2m{text}\x1b[0m" if tty else text


def utc_text(iso: object) -> str:
    """A stored ISO time as ``2026-12-04 00:39:22 UTC`` (``?`` when there is none)."""
    text = str(iso or "?")
    return text.replace("T", " ", 1).replace("+00:00", " UTC")


def _summary_line(db: Path, rid: str, path: Path | None, *, tty: bool = False) -> str:
    """One line about a stored run: short-sample figures greyed with the reason, ruin named."""
    from lq.backtest.runs import stored_caveat

    try:
        run = get_run(db, rid)
    except Exception:
        return f"run {rid}: not stored (store_result is off?); notebook {path}"
    m = run.metrics.get("metrics", {})
    ruined = bool(m.get("ruined"))
    caveat = stored_caveat(m)
    bits = [f"run {rid} stored"]
    if ruined:
        when = utc_text(m.get("ruined_at"))
        bits.append(f"RUINED: equity reached zero at {when}, account liquidated")
    from lq.backtest.charts import format_metric  # the tables' formats (lq.formatting)

    for key, label in (
        ("total_return", "return"),
        ("sharpe", "Sharpe"),
        ("max_drawdown", "max DD"),
        ("number_of_trades", "trades"),
    ):
        v = m.get(key)
        if key == "sharpe" and ruined:
            bits.append("Sharpe ruined")
            continue
        if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v)):
            text = f"{label} {format_metric(key, v)}"
            if key == "sharpe" and caveat:
                text = _dim(f"{text} (not meaningful: {caveat})", tty)
            bits.append(text)
    if run.kind == "sweep":
        dsr = run.metrics.get("dsr")
        text = f"DSR {format_metric('dsr', dsr)}"
        dsr_caveat = str(run.metrics.get("dsr_caveat") or "")
        if dsr_caveat and not ruined:
            text = _dim(f"{text} (not meaningful: {dsr_caveat})", tty)
        bits.append(text)
        bits.append(f"best {run.params}")
        n_ruined = int(run.metrics.get("ruined_trials") or 0)
        if n_ruined:
            n = run.metrics.get("n_trials")
            bits.append(f"{n_ruined} of {n} sets ruined (ranked last)")
    if path is not None:
        bits.append(f"-> {path}")
    return ", ".join(bits)


# -------------------------------------------------------------------------------- sweep
def run_sweep(
    values: Mapping[str, Any],
    axes: Mapping[str, Sequence[Any]],
    *,
    db: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None,
    workers: int = 2,
    scheduled: bool = False,
    progress: bool | Progress = True,
    engine: Engine = "local",
    address: str | None = None,
    max_retries: int = 2,
) -> tuple[str, Path | None]:
    """Sweep ``axes`` on the notebook's inputs and store one row (best set by DSR).

    With ``engine="ray"`` every task reads the bars itself (a
    :class:`~lq.backtest.source.StoreSlice` of ``db``). Returns ``(run_id, path of the CSV
    table or None)``.
    """
    from lq.backtest import Costs, Sizing, Stops, sweep
    from lq.backtest.runs import _symbols
    from lq.backtest.source import StoreSlice

    if not axes:
        raise ValidationError("--grid", axes, "no axes to sweep")
    slippage = str(values.get("slippage") or "fixed_bps")
    costs = Costs(
        fee_bps=float(values.get("fee_bps", 10.0)),
        slippage_bps=float(values.get("slippage_bps", 0.0)) if slippage == "fixed_bps" else 0.0,
        slippage=slippage,  # type: ignore[arg-type]
    )
    sizing = Sizing.from_dict(_as_dict(values.get("sizing"), "sizing"))
    stops = Stops.from_dict(_as_dict(values.get("stops"), "stops"))
    interval = str(values.get("interval") or DEFAULT_INTERVAL)
    where = StoreSlice(
        db=str(db),
        symbols=tuple(_symbols(values.get("symbols") or [])),
        interval=interval,
        start=values.get("start") or None,
        end=values.get("end") or None,
        last=values.get("last") or None,
        quotes="last" if slippage == "half_spread" else "none",
    )
    # the local engine gets the bars; Ray tasks read them from the store themselves
    data = where.load() if engine == "local" else where
    strategy = str(values["strategy"])
    base = _as_dict(values.get("params"), "params")
    base = {k: v for k, v in base.items() if k not in axes}
    table = sweep(
        data,
        strategy,
        dict(axes),
        base_params=base,
        costs=costs,
        sizing=sizing,
        stops=stops,
        capital=float(values.get("capital", 10_000.0)),
        workers=workers,
        progress=progress if isinstance(progress, str) else ("bar" if progress else "off"),
        engine=engine,
        address=address,
        max_retries=max_retries,
    )
    rid = new_run_id("sweep")
    csv = None
    if out_dir is not None:
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        csv = out / f"{rid}.csv"
        table.to_csv(csv, index=False)
    syms = list(where.symbols)
    record_sweep(
        db,
        table,
        strategy=strategy,
        grid=axes,
        base_params=base,
        run_id=rid,
        scheduled=scheduled,
        extra={
            "interval": interval,
            "source": "lq backtest --grid",
            "engine": engine,
            "table_path": None if csv is None else str(csv),
            "config": {
                "symbols": syms,
                "costs": costs.to_dict(),
                "sizing": sizing.to_dict(),
                "stops": stops.to_dict(),
            },
        },
    )
    return rid, csv


def _as_dict(value: Any, name: str) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        value = parse_value(value)
    if not isinstance(value, dict):
        raise ValidationError(name, value, "expected a dict")
    return dict(value)


# ----------------------------------------------------------------------------- schedule
class Schedule:
    """Fixed-rate ticks ``t0, t0 + every, ...`` that skip missed slots instead of bunching.

    ``stop()`` (from a signal handler) ends :meth:`ticks` at the next wait.
    """

    def __init__(self, every: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not every > 0:
            raise ValidationError("--every", every, "must be a positive duration")
        self.every = float(every)
        self._clock = clock
        self._stop = threading.Event()
        self.signals = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def ticks(self) -> Iterator[int]:
        """Yield slot numbers (0, 1, ...; missed slots skipped) at their times until stopped."""
        t0 = self._clock()
        n = 0
        while not self._stop.is_set():
            yield n
            n += 1
            now = self._clock()
            slot = max(n, math.floor((now - t0) / self.every) + 1)  # skip missed slots
            if self._stop.wait(max(0.0, t0 + slot * self.every - self._clock())):
                return
            n = slot


def _install_signals(schedule: Schedule) -> None:
    def handler(signum: int, _frame: Any) -> None:
        schedule.signals += 1
        if schedule.signals > 1:
            raise KeyboardInterrupt  # a second signal aborts the current run
        log.info("%s: stopping after the current run", signal.Signals(signum).name)
        schedule.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# -------------------------------------------------------------------------------- shell
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "backtest",
        help="run the backtest notebook with papermill (once, --every, or a --grid sweep)",
        description=(
            "Run notebooks/backtest.ipynb with papermill: once, on a schedule (--every) or "
            "as a parameter sweep (--grid). Executed notebooks go to --out; each run stores "
            "a row in backtest_runs."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  lq backtest -p strategy pairs_zscore -p entry 1.5 -p interval 1m\n"
            "  lq backtest --every 15m -p last 24h\n"
            "  lq backtest --grid entry=1.5,2,2.5 --grid lookback=60,120\n"
            "  lq backtest --grid entry=1.5,2,2.5 --engine ray --address 10.0.0.5:6379\n"
        ),
    )
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        dest="parameters",
        help="a notebook parameter or a strategy parameter (repeatable)",
    )
    p.add_argument(
        "--every",
        metavar="DURATION",
        help="run on a schedule (e.g. 15m) until SIGINT/SIGTERM; rows are marked scheduled",
    )
    p.add_argument("--max-runs", type=int, metavar="N", help="with --every: stop after N runs")
    p.add_argument(
        "--grid",
        action="append",
        metavar="NAME=V1,V2,...",
        help="sweep a strategy parameter over values (repeatable): one stored row, best DSR",
    )
    p.add_argument("--workers", type=int, default=2, help="processes for --grid (default 2)")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="--grid on this machine's processes (local, default) or as Ray tasks (ray)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: the Ray cluster to join (HOST:PORT; default: a local one)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=2,
        metavar="N",
        help="with --engine ray: retries of a failed task before the sweep fails (default 2)",
    )
    p.add_argument(
        "--out", default="runs", metavar="DIR", help="where executed notebooks go (default runs/)"
    )
    p.add_argument(
        "--notebook",
        metavar="PATH",
        help="the notebook to run (default notebooks/backtest.ipynb)",
    )
    p.add_argument(
        "--cell-timeout",
        type=float,
        metavar="SECONDS",
        help="fail a notebook cell that runs longer than this",
    )
    return p


def _sweep_progress(engine: str, scheduled: bool) -> Progress:
    if sys.stderr.isatty():
        return "bar"
    if engine == "ray":  # a log or a pipe: one "done/total" line per finished task
        return "lines"
    return "off" if scheduled else "bar"


def run(args: argparse.Namespace, settings: Any) -> int:
    """Run ``lq backtest``; returns the exit code."""
    from lq.config import parse_duration

    notebook = backtest_notebook(args.notebook)
    defaults = notebook_parameters(notebook)
    values = resolve_parameters(defaults, args.parameters)
    pairs = dict(args.parameters or [])
    db = Path(str(pairs["db"]) if pairs.get("db") else settings.db).resolve()
    values["db"] = str(db)
    if "store_result" not in pairs:
        # the notebook only reads its database by default; `lq backtest` records each run
        values["store_result"] = True
    axes = parse_grid(args.grid, strategy=str(values.get("strategy") or "") or None)
    if args.workers < 1:
        raise ValidationError("--workers", args.workers, "must be >= 1")
    if args.max_runs is not None and args.max_runs < 1:
        raise ValidationError("--max-runs", args.max_runs, "must be >= 1")
    if args.max_retries < 0:
        raise ValidationError("--max-retries", args.max_retries, "must be >= 0")
    if args.engine == "ray":
        if not axes:
            raise ValidationError("--engine", "ray", "runs sweeps only: give --grid NAME=V1,V2")
        from lq.backtest.sweep import require_ray

        require_ray()  # before any data is read
    elif args.address:
        raise ValidationError("--address", args.address, "only with --engine ray")

    def once(scheduled: bool) -> str:
        if axes:
            rid, csv = run_sweep(
                values,
                axes,
                db=db,
                out_dir=args.out,
                workers=args.workers,
                scheduled=scheduled,
                progress=_sweep_progress(args.engine, scheduled),
                engine=args.engine,
                address=args.address,
                max_retries=args.max_retries,
            )
            print(_summary_line(db, rid, csv, tty=sys.stdout.isatty()), flush=True)
            return rid
        rid, path = run_notebook(
            values,
            notebook=notebook,
            out_dir=args.out,
            scheduled=scheduled,
            run_id=None if scheduled else (str(values.get("run_id") or "") or None),
            cell_timeout=args.cell_timeout,
        )
        print(_summary_line(db, rid, path, tty=sys.stdout.isatty()), flush=True)
        return rid

    if not args.every:
        once(False)
        return 0

    every = parse_duration(args.every, field="--every")
    schedule = Schedule(every)
    _install_signals(schedule)
    done = failed = 0
    log.info("running every %s (%.3g s) until SIGINT/SIGTERM", args.every, every)
    for _n in schedule.ticks():
        try:
            once(True)
            done += 1
        except LqError as exc:
            failed += 1
            log.error("scheduled run failed: %s", exc)
        except Exception:  # a dead kernel, a full disk: log it, keep the schedule going
            failed += 1
            log.exception("scheduled run failed")
        if args.max_runs is not None and done + failed >= args.max_runs:
            break
    print(f"scheduled runs: {done} stored, {failed} failed", flush=True)
    return 0 if done or not failed else 1
