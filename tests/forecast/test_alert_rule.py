"""``forecast`` as an alert metric: levels checked against the deployed model's target, the
rule's symbol against the model's, and the engine firing on the forecast and on the live
edge (which waits for MIN_RESOLVED resolved forecasts, as the Forecast tab's warning does)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from _sim import ar1

from lq.alerts.engine import AlertEngine
from lq.alerts.rules import METRIC_RANGES, Rule
from lq.alerts.store import AlertStore
from lq.errors import RuleError
from lq.forecast import FeatureSpec, TargetSpec
from lq.forecast.hook import ForecastUpdate
from lq.forecast.live import MIN_RESOLVED
from lq.forecast.store import deploy
from lq.forecast.trained import train_model
from lq.store import Writer

T0 = 1_723_161_600_000_000
SPEC = FeatureSpec(
    zscore_windows=(20,), vol_windows=(10,), flow_windows=(10,), intensity_windows=(10,)
)


def _train(kind: str, name: str):
    bars = ar1(2000, 0.2, seed=3)
    bars.attrs["symbol"] = "BTCUSDT"
    return train_model(bars, target=TargetSpec(kind=kind), features=SPEC, model="linear", name=name)


def _rule(**kw) -> Rule:
    base = {"name": "r", "metric": "forecast", "symbol": "BTCUSDT", "model": "btc-sign"}
    return Rule(**{**base, **kw})


def test_the_forecast_metric_declares_its_range_and_levels_follow_the_models_target(tmp_path):
    # the rule alone cannot bound a forecast (P(up), a return or a volatility): unbounded
    # in METRIC_RANGES; the store checks it against the deployed model
    assert METRIC_RANGES["forecast"] == (-math.inf, math.inf)
    db = tmp_path / "fc.sqlite"
    deploy(_train("sign", "btc-sign"), db)
    deploy(_train("volatility", "btc-vol"), db)
    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        with pytest.raises(RuleError, match=r"P\(up\)\) lies between 0 and 1, so 1.5 is never"):
            s.add(_rule(name="a", threshold=1.5))
        with pytest.raises(RuleError, match="crosses_above 1 can never fire"):
            s.add(_rule(name="b", condition="crosses_above", threshold=1.0))
        with pytest.raises(RuleError, match=r"never outside 0\.\.1; narrow the band"):
            s.add(_rule(name="c", condition="outside", band=(0.0, 1.0)))
        with pytest.raises(RuleError, match="a volatility forecast is never below 0"):
            s.add(_rule(name="d", model="btc-vol", condition="below", threshold=-0.1))
        with pytest.raises(RuleError, match="model 'btc-sign' forecasts BTCUSDT; use --symbol"):
            s.add(_rule(name="e", symbol="ETHUSDT", threshold=0.6))
        assert s.rules() == []  # every refusal stored nothing
        s.add(_rule(name="up", threshold=0.6))
        s.add(_rule(name="edge", output="edge", condition="below", threshold=-0.01))
        s.add(_rule(name="vol", model="btc-vol", threshold=0.002))
        s.add(_rule(name="later", model="not-deployed-yet", threshold=7.0))  # waits for it
        with pytest.raises(RuleError, match=r"so 2 is never reached"):
            s.update("up", _rule(name="up", threshold=2.0))
        assert sorted(r.rule.name for r in s.rules()) == ["edge", "later", "up", "vol"]
        assert s.get("up").rule.threshold == 0.6  # the refused update changed nothing


def test_the_engine_fires_on_the_forecast_and_on_the_edge_once_it_is_reported(tmp_path):
    db = tmp_path / "eng.sqlite"
    with AlertStore(db, known_symbols=["BTCUSDT"]) as s:
        s.add(_rule(name="up", condition="crosses_above", threshold=0.6))
        s.add(_rule(name="worse", output="edge", condition="crosses_below", threshold=0.0))
        s.add(_rule(name="other", model="other-model", condition="above", threshold=0.0))

    # the hook reports the edge as NaN until MIN_RESOLVED forecasts are resolved
    values = [0.5, 0.7, 0.65, 0.4, 0.8]
    edges = [math.nan] * 3 + [0.01, -0.02]

    async def go() -> list[tuple[str, float]]:
        w = Writer(db)

        async def riw(fn):
            return await asyncio.to_thread(fn, w)

        eng = AlertEngine(db=db, run_in_writer=riw, poll_interval=0.05, warmup=False)
        fired: list[tuple[str, float]] = []
        eng.subscribe(lambda e: fired.append((e.rule.name, e.value)))
        eng.start()
        await eng.wait_ready()
        for i, (v, e) in enumerate(zip(values, edges, strict=True)):
            n = MIN_RESOLVED + i - 3 if e == e else i
            eng.on_event(ForecastUpdate("btc-sign", "BTCUSDT", T0 + i * 1_000_000, v, e, n))
            eng.on_event(ForecastUpdate("btc-sign", "ETHUSDT", T0 + i * 1_000_000, 0.9, -1.0, n))
        await eng.flush()
        await eng.stop()
        w.close()
        return fired

    fired = asyncio.run(go())
    # P(up) crosses above 0.6 at 0.7 and again at 0.8; the edge crosses below 0 at -0.02;
    # other models and other symbols fire nothing
    assert sorted(fired) == [("up", 0.7), ("up", 0.8), ("worse", -0.02)]


def test_the_hook_reports_the_edge_only_from_min_resolved_forecasts(tmp_path):
    """The hook's updates as the engine gets them, on a deployed model scored live."""
    from lq.forecast.hook import ForecastHook

    db = tmp_path / "hook.sqlite"
    model = _train("sign", "btc-sign")
    deploy(model, db)
    hook = ForecastHook(db=Path(db))
    got: list[ForecastUpdate] = []
    hook.subscribe(got.append)
    from lq.forecast.live import ForecastPoint

    for n in (0, 1, MIN_RESOLVED - 1, MIN_RESOLVED, MIN_RESOLVED + 5):
        hook._emit([ForecastPoint(model="btc-sign", symbol="BTCUSDT", ts=T0 + n, close_ts=T0 + n,
                                  value=0.55, baseline=0.5, edge=0.003, resolved=n)])  # fmt: skip
    assert [math.isnan(u.edge) for u in got] == [True, True, True, False, False]
    assert [u.value for u in got] == [0.55] * 5
