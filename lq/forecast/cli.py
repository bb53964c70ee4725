"""``lq forecast``: train (a papermill run of the forecast notebook, once or ``--every``),
deploy, list.

::

    lq forecast train -p symbol BTCUSDT -p target sign -p last 6h        # one lab run
    lq forecast train --every 1h -p deploy btc-sign                      # retrain hourly
    lq forecast models                                                   # what is deployed
    lq forecast deploy model.lqm --name btc-sign                         # deploy a file
    lq forecast undeploy btc-sign
    lq forecast runs [--compare RUN RUN]                                 # stored lab runs

``train`` executes ``notebooks/forecast.ipynb`` with the parameters injected, keeps the
executed notebook as ``<out>/<run_id>.ipynb``, and the notebook stores the run (with the
backtest runs, ``kind = "forecast"``) and, with ``-p deploy NAME``, deploys the best model
when it beats its baseline out of sample (``-p deploy_if always`` deploys regardless).
``--every`` repeats until SIGINT/SIGTERM, as ``lq backtest --every`` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lq.errors import ForecastError, LqError, ValidationError

__all__ = ["NOTEBOOK", "add_parser", "resolve_parameters", "run", "run_notebook"]

log = logging.getLogger(__name__)

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "forecast.ipynb"


def resolve_parameters(
    defaults: Mapping[str, Any], pairs: Sequence[Sequence[str]] | None
) -> dict[str, Any]:
    """The notebook's parameters after ``-p NAME VALUE`` pairs (unknown names refused)."""
    from lq.backtest.cli import parse_value

    values = dict(defaults)
    for name, text in pairs or []:
        if name not in defaults:
            raise ValidationError(
                f"-p {name}", text, f"not a notebook parameter {sorted(defaults)}"
            )
        v = parse_value(text)
        d = defaults[name]
        if isinstance(d, list) and isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        elif isinstance(d, bool) and not isinstance(v, bool):
            raise ValidationError(f"-p {name}", text, "expected true or false")
        elif isinstance(d, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif isinstance(d, str) and not isinstance(v, str):
            v = str(v)
        values[name] = v
    return values


def run_notebook(
    values: Mapping[str, Any],
    *,
    notebook: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    scheduled: bool = False,
    cell_timeout: float | None = None,
) -> tuple[str, Path]:
    """Execute the notebook once; returns ``(run_id, executed notebook)``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from lq.forecast.store import new_forecast_run_id

    rid = str(values.get("run_id") or "") if not scheduled else ""
    rid = rid or new_forecast_run_id()
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
        raise ForecastError(
            f"forecast run {rid} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
            f"(executed notebook kept at {path})"
        ) from None
    log.info("forecast run %s finished in %.1f s", rid, time.perf_counter() - t0)
    return rid, path


def _summary(db: Path, rid: str, path: Path) -> str:
    from lq.forecast.store import get_forecast_run

    try:
        rec = get_forecast_run(db, rid)
    except LqError:
        return f"run {rid}: not stored (store_result is off?); notebook {path}"
    ev = rec.get("evaluation", {})
    bits = [f"run {rid} stored", str(ev.get("verdict", ""))]
    tr = rec.get("metrics") or {}
    if tr.get("total_return") is not None:
        bits.append(
            f"after costs {tr['total_return']:.2%} ({int(tr.get('number_of_trades') or 0)} trades)"
        )
    if rec.get("deployed"):
        bits.append(f"deployed as {rec['deployed']}")
    elif rec.get("deploy_skipped"):
        bits.append(f"not deployed: {rec['deploy_skipped']}")
    bits.append(f"-> {path}")
    return "; ".join(b for b in bits if b)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "forecast",
        help="train forecasts honestly (papermill, --every), deploy them, list runs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  lq forecast train -p symbol BTCUSDT -p target sign -p last 6h\n"
            "  lq forecast train --every 1h -p deploy btc-sign\n"
            "  lq forecast models\n"
        ),
    )
    p.add_argument("--db", metavar="PATH", help="the SQLite database (default from `lq config`)")
    sub = p.add_subparsers(dest="forecast_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="run notebooks/forecast.ipynb with papermill")
    t.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   dest="parameters", help="a notebook parameter (repeatable)")  # fmt: skip
    t.add_argument(
        "--every", metavar="DURATION", help="retrain on a schedule (e.g. 1h) until SIGINT/SIGTERM"
    )
    t.add_argument("--max-runs", type=int, metavar="N", help="with --every: stop after N runs")
    t.add_argument(
        "--out", default="runs", metavar="DIR", help="executed notebooks (default runs/)"
    )
    t.add_argument("--notebook", metavar="PATH", help="default notebooks/forecast.ipynb")
    t.add_argument("--cell-timeout", type=float, metavar="SECONDS")
    sub.add_parser("models", help="list the deployed models")
    d = sub.add_parser("deploy", help="deploy a saved model file (.lqm)")
    d.add_argument("file")
    d.add_argument("--name", help="deployment name (default: the model's)")
    u = sub.add_parser("undeploy", help="stop scoring a deployed model")
    u.add_argument("name")
    r = sub.add_parser("runs", help="stored forecast runs, newest first")
    r.add_argument("--limit", type=int, default=20)
    r.add_argument("--compare", nargs="+", metavar="RUN", help="these runs side by side")
    for sp in (t, sub.choices["models"], d, u, r):
        sp.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help="the database")
    return p


def run(args: argparse.Namespace, settings: Any) -> int:
    """Run ``lq forecast``; returns the exit code."""
    import pandas as pd

    from lq.forecast import store

    db = Path(settings.db).resolve()
    cmd = args.forecast_command
    if cmd == "models":
        rows = store.deployed_models(db, enabled_only=False)
        if rows.empty:
            print(f"no forecast models deployed in {db} (lq forecast train -p deploy NAME)")
            return 0
        for r in rows.itertuples():
            m = r.manifest
            state = "scoring" if r.enabled else "undeployed"
            print(f"{r.name}: {m.get('model')} on {r.symbol}, {m.get('target', {}).get('kind')} "
                  f"over {m.get('target', {}).get('horizon')}, {state}; {r.path}")  # fmt: skip
        return 0
    if cmd == "deploy":
        rec = store.deploy(args.file, db, name=args.name)
        print(f"deployed {rec['name']} ({rec['symbol']}) -> {rec['path']}; a running collector "
              "scores it within a second")  # fmt: skip
        return 0
    if cmd == "undeploy":
        store.undeploy(db, args.name)
        print(f"undeployed {args.name}")
        return 0
    if cmd == "runs":
        if args.compare:
            table = store.compare_runs(db, args.compare)
        else:
            table = store.list_forecast_runs(db, limit=args.limit)
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(table.to_string() if not table.empty else "no forecast runs stored")
        return 0
    return _train(args, db)


_WALK_HINTS = {
    "folds": "the number of walk-forward test blocks, e.g. -p folds 5",
    "embargo": "bars between training labels and each test block, e.g. -p embargo 0",
    "workers": "processes fitting the blocks, e.g. -p workers 2",
}


def _check_walk_forward(values: Mapping[str, Any]) -> None:
    """``-p folds 0`` and the like: one line naming the parameter and a valid value."""
    from lq.forecast.walkforward import WalkForwardConfig

    workers = values.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError(
            "-p workers", workers, f"must be an integer >= 1 ({_WALK_HINTS['workers']})"
        )
    try:
        WalkForwardConfig(folds=values.get("folds", 5), embargo=values.get("embargo", 0))
    except ValidationError as exc:
        name = exc.field.rsplit(".", 1)[-1]
        low = 1 if name == "folds" else 0
        raise ValidationError(
            f"-p {name}", exc.value, f"must be an integer >= {low} ({_WALK_HINTS.get(name, '')})"
        ) from None


def _train(args: argparse.Namespace, db: Path) -> int:
    from lq.backtest.cli import Schedule, _install_signals, notebook_parameters
    from lq.config import parse_duration

    notebook = Path(args.notebook) if args.notebook else NOTEBOOK
    if not notebook.is_file():
        raise ValidationError("--notebook", str(notebook), "no such notebook")
    values = resolve_parameters(notebook_parameters(notebook), args.parameters)
    if not dict(args.parameters or []).get("db"):
        values["db"] = str(db)
    if args.max_runs is not None and args.max_runs < 1:
        raise ValidationError("--max-runs", args.max_runs, "must be >= 1")
    _check_walk_forward(values)  # before papermill starts a kernel, not in its cell 3

    def once(scheduled: bool) -> None:
        rid, path = run_notebook(
            values, notebook=notebook, out_dir=args.out, scheduled=scheduled,
            cell_timeout=args.cell_timeout,
        )  # fmt: skip
        print(_summary(Path(values["db"]), rid, path), flush=True)

    if not args.every:
        once(False)
        return 0
    schedule = Schedule(parse_duration(args.every, field="--every"))
    _install_signals(schedule)
    done = failed = 0
    for _n in schedule.ticks():
        try:
            once(True)
            done += 1
        except LqError as exc:
            failed += 1
            log.error("scheduled forecast run failed: %s", exc)
        except Exception:
            failed += 1
            log.exception("scheduled forecast run failed")
        if args.max_runs is not None and done + failed >= args.max_runs:
            break
    print(f"scheduled forecast runs: {done} stored, {failed} failed", flush=True)
    return 0 if done or not failed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
