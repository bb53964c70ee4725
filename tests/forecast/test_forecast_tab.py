"""The Forecast tab draws stored forecasts, the running score, and warns below baseline."""

from __future__ import annotations

import sqlite3

import numpy as np
from _sim import ar1

from lq.forecast import TargetSpec
from lq.forecast.live import ForecastPoint, Resolved
from lq.forecast.store import deploy, insert_points, resolve_points
from lq.forecast.trained import train_model
from lq.store import Store, Writer


def _db(tmp_path, *, edge_sign: float):
    db = tmp_path / "tab.sqlite"
    Writer(db).close()
    bars = ar1(1500, 0.1, seed=2)
    bars.attrs["symbol"] = "BTCUSDT"
    deploy(train_model(bars, target=TargetSpec(kind="sign"), model="linear", name="btc"), db)
    conn = sqlite3.connect(db, isolation_level=None)
    t0 = 1_723_161_600_000_000
    pts = [
        ForecastPoint(
            "btc", "BTCUSDT", t0 + i * 1_000_000, t0 + (i + 1) * 1_000_000, 0.6, 0.5, 0.0, 0
        )
        for i in range(100)
    ]
    insert_points(conn, pts)
    # the model's loss is 0.1 better (edge_sign > 0) or worse than the baseline's
    res = [Resolved("btc", p.ts, 1.0, 0.7 - 0.1 * edge_sign, 0.7, 1.0, 1.0) for p in pts[:80]]
    resolve_points(conn, res)
    conn.close()
    return db


def test_tab_shows_forecasts_and_the_live_score_against_the_baseline(tmp_path):
    from lq.dashboard.forecast_tab import ForecastTab

    db = _db(tmp_path, edge_sign=+1)
    with Store(db) as store:
        tab = ForecastTab(store=store, db=db)
        tab.refresh()
        assert list(tab.model.options) == ["btc"]
        assert tab.score["n"] == 80
        assert tab.score["edge"] == np.float64(0.7 - 0.6) or abs(tab.score["edge"] - 0.1) < 1e-12
        assert "last 80 resolved" in tab.info.value and "edge +0.1" in tab.info.value
        assert tab.warning.value == ""
        assert len(tab.fig.data[0].x) == 100 and len(tab.fig.data[3].x) == 80
        assert tab.fig.data[0].y[0] == 0.6


def test_tab_warns_when_the_live_score_falls_below_the_baseline(tmp_path):
    from lq.dashboard.forecast_tab import ForecastTab

    db = _db(tmp_path, edge_sign=-1)
    with Store(db) as store:
        tab = ForecastTab(store=store, db=db)
        tab.refresh()
        assert "Live score below the baseline" in tab.warning.value
        assert "lq forecast undeploy btc" in tab.warning.value


def test_tab_without_deployed_models_says_how_to_deploy(tmp_path):
    from lq.dashboard.forecast_tab import ForecastTab

    db = tmp_path / "empty.sqlite"
    Writer(db).close()
    with Store(db) as store:
        tab = ForecastTab(store=store, db=db)
        tab.refresh()
        assert "lq forecast train -p deploy NAME" in tab.info.value
