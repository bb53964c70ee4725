"""End to end on the local exchange: a deployed model is scored by the collector on every
closed bar, its stored forecasts equal batch scoring of the stored bars, what happened is
filled in, and a `forecast` alert rule fires on them."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from _sim import ar1

from lq.alerts.engine import AlertEngine
from lq.alerts.rules import Rule
from lq.alerts.store import AlertStore
from lq.collector import Collector
from lq.errors import RuleError
from lq.forecast import FeatureSpec, TargetSpec, make_target
from lq.forecast.data import load_bars
from lq.forecast.hook import ForecastHook
from lq.forecast.store import deploy, deployed_models, read_forecasts, undeploy
from lq.forecast.trained import train_model

T0 = 1_723_161_600_000_000
SPEC = FeatureSpec(
    zscore_windows=(20,), vol_windows=(10,), flow_windows=(10,), intensity_windows=(10,)
)


def _model():
    bars = ar1(3000, 0.2, seed=3)
    bars.attrs["symbol"] = "BTCUSDT"
    return train_model(
        bars, target=TargetSpec(kind="sign"), features=SPEC, model="linear", name="btc-sign"
    )


def test_collector_scores_a_deployed_model_on_every_closed_bar_and_alerts_on_it(tmp_path):
    db = tmp_path / "fc.sqlite"
    rec = deploy(_model(), db)
    assert Path(rec["path"]).is_file() and rec["path"].endswith("btc-sign.lqm")
    assert list(deployed_models(db)["name"]) == ["btc-sign"]
    with AlertStore(db, known_symbols=["BTCUSDT"]) as s:
        rid = s.add(
            Rule(name="btc-up", metric="forecast", symbol="BTCUSDT", model="btc-sign",
                 condition="crosses_above", threshold=0.5, rearm=0.5)
        ).id  # fmt: skip

    async def go() -> ForecastHook:
        col = Collector(
            db=db, source="local", symbols=("BTCUSDT",),
            simulator={"seed": 5, "rate": 8.0, "speed": None, "start_time_us": T0, "duration": 400.0},
        )  # fmt: skip
        eng = AlertEngine.attach(col, channels={}, poll_interval=0.1)
        hook = ForecastHook.attach(col, poll_interval=0.1)
        hook.subscribe(eng.on_event)
        eng.start()
        hook.start()
        await eng.wait_ready()
        await hook.wait_ready()
        col.start()
        await col.wait_started(20)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not col.exchange.source_done.is_set():
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        await hook.stop()
        await eng.flush()
        await eng.stop()
        await col.stop()
        return hook

    hook = asyncio.run(go())
    assert hook.stored > 300
    conn = sqlite3.connect(db)
    rows = read_forecasts(conn, "btc-sign")
    conn.close()
    bars = load_bars(db, "BTCUSDT", interval="1s")
    # every stored bar but the last (still open when the feed ended) was scored live
    assert len(rows) == len(bars) - 1
    from lq.forecast.persist import load_model

    m = load_model(rec["path"])
    batch = m.score(bars).loc[rows.index]
    ok = batch["forecast"].notna()
    assert ok.sum() > 300
    np.testing.assert_allclose(rows["value"][ok], batch["forecast"][ok], rtol=1e-9)
    np.testing.assert_allclose(rows["baseline"][ok], batch["baseline"][ok], rtol=1e-9)
    assert rows["value"][~ok].isna().all()  # warm-up rows carry no forecast
    # what happened: the batch target of the stored bars
    t = make_target(bars, m.target).y.loc[rows.index]
    done = rows["realised"].notna()
    assert done.sum() > 250
    np.testing.assert_allclose(rows["realised"][done], t[done], rtol=1e-12)
    # the rule fired on crossings of the stored forecasts above 0.5
    with AlertStore(db) as s:
        ev = s.events(rule=rid, limit=None)
    assert len(ev) >= 3 and (ev["value"] > 0.5).all()
    v = rows["value"].dropna()
    crossings = int(((v.shift() <= 0.5) & (v > 0.5)).sum())
    assert len(ev) <= crossings + 1
    undeploy(db, "btc-sign")
    assert deployed_models(db).empty


def test_forecast_rules_need_a_model_and_others_refuse_one():
    with pytest.raises(RuleError, match="model"):
        Rule(name="x", metric="forecast", symbol="BTCUSDT", threshold=0.6)
    with pytest.raises(RuleError, match="only forecast rules"):
        Rule(name="x", metric="price", symbol="BTCUSDT", threshold=1.0, model="m")
    r = Rule(
        name="x",
        metric="forecast",
        symbol="BTCUSDT",
        model="m",
        output="edge",
        condition="below",
        threshold=0.0,
    )
    assert "model=m, edge" in r.describe()
