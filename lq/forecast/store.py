"""The forecasting lab's I/O with the database: deployments, live forecasts, stored runs.

* :func:`deploy` copies a model file next to the database (``<db>.models/<name>.lqm``) and
  records it in ``forecast_models``; a running collector notices it within a second and
  starts scoring it (:mod:`lq.forecast.hook`). :func:`undeploy` switches it off.
* The collector writes one ``forecasts`` row per scored bar (:func:`insert_points`) and
  fills in what happened once the horizon has passed (:func:`resolve_points`);
  :func:`read_forecasts` reads them back (the dashboard's Forecast tab).
* :func:`record_lab` stores a lab run in ``backtest_runs`` (``kind = "forecast"``), so
  forecast runs are listed with the backtests and compared side by side
  (:func:`list_forecast_runs`, :func:`compare_runs`).

Writes are short ``BEGIN IMMEDIATE`` transactions (control-plane rows, as for backtest
runs), except the forecasts rows, which the collector writes on its own writer thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lq.errors import ForecastError, StoreError, ValidationError

__all__ = [
    "compare_runs",
    "deploy",
    "deployed_models",
    "get_forecast_run",
    "insert_points",
    "list_forecast_runs",
    "models_dir",
    "new_forecast_run_id",
    "read_forecasts",
    "record_lab",
    "resolve_points",
    "undeploy",
]

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


def models_dir(db: str | os.PathLike[str]) -> Path:
    """Where deployed model files live: ``<db>.models/`` beside the database."""
    return Path(str(db) + ".models")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write(db: str | os.PathLike[str], sql: str, args: Sequence[Any]) -> int:
    from lq.store.sqlite import connect_writer

    try:
        conn = connect_writer(db)
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: cannot open for writing: {exc}") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(sql, args)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(cur.rowcount)
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: {exc}") from exc
    finally:
        conn.close()


def deploy(model: Any, db: str | os.PathLike[str], *, name: str | None = None) -> dict[str, Any]:
    """Deploy a model (a :class:`~lq.forecast.trained.TrainedModel` or a saved file) to
    the database's collector and dashboard, in one call; returns the deployment record.

    The file is checked (:func:`~lq.forecast.persist.load_model`) before anything is
    written; deploying the same name again replaces the model.
    """
    from lq.backtest._config import canonical_json  # (lq.backtest loads scipy)
    from lq.forecast.persist import load_model, read_manifest, save_model
    from lq.forecast.trained import TrainedModel

    if isinstance(model, TrainedModel):
        label = name or model.name
    else:
        src = Path(model)
        label = name or str(read_manifest(src)["name"])
    if not _NAME.match(label):
        raise ValidationError("name", label, "letters, digits and _ . - (up to 80; a file name)")
    folder = models_dir(db)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"{label}.lqm"
    if isinstance(model, TrainedModel):
        save_model(model, folder / f".{label}.new.lqm")
    else:
        shutil.copyfile(src, folder / f".{label}.new.lqm")
    staged = folder / f".{label}.new.lqm"
    try:
        checked = load_model(staged)  # refuse a file the collector could not load
    except Exception:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, dst)
    manifest = read_manifest(dst)
    manifest["name"] = label
    sha = _sha256(dst)
    now = time.time_ns() // 1000
    _write(
        db,
        "INSERT INTO forecast_models (name, path, symbol, manifest, sha256, enabled, deployed_ts)"
        " VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT(name) DO UPDATE SET path = excluded.path,"
        " symbol = excluded.symbol, manifest = excluded.manifest, sha256 = excluded.sha256,"
        " enabled = 1, deployed_ts = excluded.deployed_ts",
        (label, str(dst.resolve()), checked.symbol, canonical_json(manifest), sha, now),
    )
    log.info("deployed forecast model %s (%s) to %s", label, checked.describe(), db)
    return {"name": label, "path": str(dst.resolve()), "symbol": checked.symbol, "sha256": sha}


def undeploy(db: str | os.PathLike[str], name: str) -> None:
    """Stop scoring ``name`` (its stored forecasts stay)."""
    n = _write(db, "UPDATE forecast_models SET enabled = 0 WHERE name = ?", (name,))
    if n == 0:
        raise ValidationError("name", name, f"no deployed forecast model of that name in {db}")


def deployed_models(
    db: str | os.PathLike[str], *, enabled_only: bool = True, conn: sqlite3.Connection | None = None
) -> pd.DataFrame:
    """Deployments: ``name, path, symbol, sha256, enabled, deployed_ts, manifest`` (dict)."""
    from lq.store.sqlite import connect_reader

    cols = ["name", "path", "symbol", "sha256", "enabled", "deployed_ts", "manifest"]
    own = conn is None
    if own:
        if not Path(db).exists():
            return pd.DataFrame(columns=cols)
        conn = connect_reader(db)
    assert conn is not None
    try:
        sql = "SELECT " + ", ".join(cols) + " FROM forecast_models"
        if enabled_only:
            sql += " WHERE enabled = 1"
        try:
            rows = conn.execute(sql + " ORDER BY name").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                rows = []
            else:
                raise
    finally:
        if own:
            conn.close()
    frame = pd.DataFrame([list(r) for r in rows], columns=cols)
    frame["manifest"] = [json.loads(m) for m in frame["manifest"]]
    frame["enabled"] = frame["enabled"].astype(bool)
    return frame


# ------------------------------------------------------------------- live forecasts
def insert_points(conn: sqlite3.Connection, points: Iterable[Any]) -> int:
    """Store :class:`~lq.forecast.live.ForecastPoint` rows (on the collector's writer)."""
    now = time.time_ns() // 1000
    rows = [
        (p.model, int(p.ts), p.symbol, _num(p.value), _num(p.baseline), _num(p.edge), now)
        for p in points
    ]
    if not rows:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO forecasts (model, ts, symbol, value, baseline, edge, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(model, ts) DO UPDATE SET"
            " value = excluded.value, baseline = excluded.baseline, edge = excluded.edge",
            rows,
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def resolve_points(conn: sqlite3.Connection, resolved: Iterable[Any]) -> int:
    """Fill in what happened (:class:`~lq.forecast.live.Resolved` rows)."""
    rows = [
        (_num(r.realised), _num(r.loss), _num(r.baseline_loss), r.model, int(r.ts))
        for r in resolved
    ]
    if not rows:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "UPDATE forecasts SET realised = ?, loss = ?, baseline_loss = ? WHERE model = ? AND ts = ?",
            rows,
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def read_forecasts(
    conn: sqlite3.Connection, model: str, *, since: int | None = None, limit: int = 20_000
) -> pd.DataFrame:
    """The stored forecasts of ``model`` (oldest first), the newest ``limit`` after ``since``."""
    cols = ["ts", "value", "baseline", "realised", "loss", "baseline_loss", "edge"]
    sql = "SELECT " + ", ".join(cols) + " FROM forecasts WHERE model = ?"
    args: list[Any] = [model]
    if since is not None:
        sql += " AND ts > ?"
        args.append(int(since))
    sql += " ORDER BY ts DESC LIMIT ?"
    args.append(int(limit))
    try:
        rows = conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            rows = []
        else:
            raise
    frame = pd.DataFrame([list(r) for r in reversed(rows)], columns=cols)
    for c in cols[1:]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    frame["ts"] = frame["ts"].astype("int64")
    frame.index = pd.to_datetime(frame["ts"], unit="us", utc=True)
    return frame


# ------------------------------------------------------------------------ lab runs
def new_forecast_run_id(*, now: float | None = None) -> str:
    """``fc-20240809T000001Z-1a2b3c``."""
    t = time.time() if now is None else now
    return f"fc-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(t))}-{secrets.token_hex(3)}"


def record_lab(
    db: str | os.PathLike[str],
    lab: Any,
    *,
    run_id: str | None = None,
    notebook_path: str | os.PathLike[str] | None = None,
    scheduled: bool = False,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Store a :class:`~lq.forecast.lab.LabResult` as one ``backtest_runs`` row.

    ``strategy`` is ``forecast:<best model>``; ``params`` the target and models;
    ``metrics`` the record (:meth:`LabResult.record`: evaluation, DM test, trading metrics
    of the best model under ``"metrics"``, so the backtest list shows its return after
    costs).
    """
    from lq.backtest.runs import store_run

    rec = lab.record()
    rec.update(extra or {})
    best = lab.evaluation.best_model
    return store_run(
        db,
        strategy=f"forecast:{best}",
        params={"target": lab.target.to_dict(), "models": list(lab.models), "symbol": lab.symbol},
        metrics=rec,
        run_id=run_id or new_forecast_run_id(),
        notebook_path=notebook_path,
        scheduled=scheduled,
    )


FORECAST_RUN_COLUMNS = [
    "run_id",
    "time",
    "symbol",
    "target",
    "horizon",
    "best_model",
    "best_baseline",
    "primary",
    "model_loss",
    "baseline_loss",
    "dm_statistic",
    "dm_p_value",
    "beats_baseline",
    "trade_total_return",
    "trade_sharpe",
    "fees_paid",
    "causality_passed",
    "scheduled",
    "notebook_path",
]


def list_forecast_runs(db: str | os.PathLike[str], *, limit: int | None = None) -> pd.DataFrame:
    """Stored forecast runs, newest first, one row each (:data:`FORECAST_RUN_COLUMNS`)."""
    from lq.backtest.runs import get_run, list_runs

    runs = list_runs(db)
    out = []
    for rid in runs["run_id"]:
        run = get_run(db, rid)
        if run.kind != "forecast":
            continue
        out.append(_row(run))
        if limit is not None and len(out) >= limit:
            break
    return pd.DataFrame(out, columns=FORECAST_RUN_COLUMNS)


def _row(run: Any) -> dict[str, Any]:
    m = run.metrics
    ev = m.get("evaluation", {})
    best, base, pr = ev.get("best_model"), ev.get("best_baseline"), ev.get("primary")
    pooled = ev.get("pooled", {})
    dm = ev.get("dm", {}).get(best, {}) if best else {}
    trade = m.get("metrics", {}) or {}
    tgt = m.get("target", {})
    return {
        "run_id": run.run_id,
        "time": run.time,
        "symbol": m.get("symbol"),
        "target": tgt.get("kind"),
        "horizon": tgt.get("horizon"),
        "best_model": best,
        "best_baseline": base,
        "primary": pr,
        "model_loss": pooled.get(best, {}).get(pr) if best else None,
        "baseline_loss": pooled.get(base, {}).get(pr) if base else None,
        "dm_statistic": dm.get("statistic"),
        "dm_p_value": dm.get("p_value"),
        "beats_baseline": dm.get("beats_baseline"),
        "trade_total_return": trade.get("total_return"),
        "trade_sharpe": trade.get("sharpe"),
        "fees_paid": trade.get("fees_paid"),
        "causality_passed": m.get("causality_passed"),
        "scheduled": run.scheduled,
        "notebook_path": run.notebook_path,
    }


def get_forecast_run(db: str | os.PathLike[str], run_id: str) -> dict[str, Any]:
    """The stored record of one forecast run."""
    from lq.backtest.runs import get_run

    run = get_run(db, run_id)
    if run.kind != "forecast":
        raise ValidationError("run_id", run_id, f"is a {run.kind} run, not a forecast run")
    return dict(run.metrics)


def compare_runs(db: str | os.PathLike[str], run_ids: Sequence[str]) -> pd.DataFrame:
    """Forecast runs side by side: one column per run, one row per figure."""
    from lq.backtest.runs import get_run

    if not run_ids:
        raise ForecastError("compare_runs: give at least one run id")
    cols = {}
    for rid in run_ids:
        run = get_run(db, rid)
        if run.kind != "forecast":
            raise ValidationError("run_id", rid, f"is a {run.kind} run, not a forecast run")
        row = _row(run)
        cols[rid] = {k: v for k, v in row.items() if k != "run_id"}
    return pd.DataFrame(cols)
