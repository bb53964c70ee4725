"""Rule specs: validation names the field, JSON round-trip, content hash, store CRUD."""

from __future__ import annotations

import math
import sqlite3

import pytest

from lq.alerts.rules import Rule, rule_from_dict, rule_from_json, rule_to_dict, rule_to_json
from lq.alerts.store import AlertStore
from lq.errors import RuleError

GOOD = {
    "name": "eth-btc-z",
    "metric": "spread_zscore",
    "symbol": "ETHUSDT/BTCUSDT",
    "condition": "crosses_above",
    "threshold": 2.0,
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "sharpe"}, "metric"),
        ({"threshold": math.nan}, "threshold"),
        ({"threshold": math.inf}, "threshold"),
        ({"threshold": None}, "threshold"),
        ({"window": 1}, "window"),
        ({"window": 2_000_000}, "window"),
        ({"window": 2.5}, "window"),
        ({"sample": 0.5}, "sample"),
        ({"sample": -1}, "sample"),
        ({"cooldown": -5}, "cooldown"),
        ({"symbol": "ETHUSDT"}, "symbol"),  # a pair metric on one symbol
        ({"symbol": "ETHUSDT/ETHUSDT"}, "symbol"),
        ({"rearm": 2.5}, "rearm"),  # re-arm above the threshold of an 'above' condition
        ({"channels": ["pager"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"severity": "fatal"}, "severity"),
        ({"condition": "outside"}, "band"),
        ({"thresold": 2.0}, "thresold"),  # unknown field (typo) is refused, not ignored
        ({"name": ""}, "name"),
        (
            {"metric": "volatility", "symbol": "BTCUSDT", "vol_method": "garch", "window": 50},
            "window",
        ),
    ],
)
def test_invalid_rule_is_refused_with_a_message_naming_the_field(change, field):
    with pytest.raises(RuleError) as ei:
        rule_from_dict({**GOOD, **change})
    assert ei.value.field == field
    assert str(ei.value).startswith(f"{field}=")


def test_direct_construction_validates_too():
    with pytest.raises(RuleError, match="threshold"):
        Rule(name="x", metric="price", symbol="BTCUSDT", threshold=math.nan)
    with pytest.raises(TypeError):
        Rule(name="x", metric="price", symbol="BTCUSDT", threshold=1.0, bogus=1)  # type: ignore[call-arg]


def test_json_round_trip_and_content_hash():
    r = rule_from_dict({**GOOD, "band": None, "channels": ["email", "webhook"]})
    assert rule_from_json(rule_to_json(r)) == r
    assert rule_from_dict(rule_to_dict(r)) == r
    assert r.content_hash == rule_from_json(rule_to_json(r)).content_hash
    other = rule_from_dict({**GOOD, "threshold": 2.5})
    assert other.content_hash != r.content_hash
    assert len(r.content_hash) == 16
    # canonical: sorted keys
    keys = list(__import__("json").loads(rule_to_json(r)))
    assert keys == sorted(keys)


def test_rules_are_frozen():
    r = rule_from_dict(GOOD)
    with pytest.raises(AttributeError):
        r.threshold = 3.0  # type: ignore[misc]


def test_symbols_are_normalised_and_pairs_split():
    r = rule_from_dict({**GOOD, "symbol": " ethusdt/btcusdt "})
    assert r.symbol == "ETHUSDT/BTCUSDT"
    assert r.symbols == ("ETHUSDT", "BTCUSDT")


def test_a_refused_rule_changes_nothing_in_the_store(tmp_path):
    db = tmp_path / "a.sqlite"
    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        s.add(rule_from_dict(GOOD))
        before = s.conn.execute("SELECT * FROM alert_rules").fetchall()
        with pytest.raises(RuleError, match="symbol"):
            s.add(rule_from_dict({**GOOD, "name": "x", "symbol": "DOGEUSDT/BTCUSDT"}))
        with pytest.raises(RuleError, match="name"):
            s.add(rule_from_dict(GOOD))  # same name
        assert s.conn.execute("SELECT * FROM alert_rules").fetchall() == before


def test_crud_enable_disable_update_remove(tmp_path):
    db = tmp_path / "a.sqlite"
    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        a = s.add(rule_from_dict(GOOD))
        v0 = s.version()
        assert s.get("eth-btc-z").id == a.id == s.get(str(a.id)).id
        assert s.set_enabled(a.id, False).enabled is False
        v1 = s.version()
        assert v1 != v0
        b = s.update(a.id, rule_from_dict({**GOOD, "threshold": 3.0}))
        assert b.rule.threshold == 3.0 and b.id == a.id and s.version() != v1
        s.remove("eth-btc-z")
        assert s.rules() == []
        with pytest.raises(RuleError, match="no such rule"):
            s.get(a.id)


def test_rule_writes_do_not_take_the_writer_lock(tmp_path):
    """`lq alerts add` works while a collector (the Writer) holds the database."""
    from lq.store import Writer

    db = tmp_path / "a.sqlite"
    with Writer(db), AlertStore(db, known_symbols=["BTCUSDT"]) as s:
        s.add(Rule(name="p", metric="price", symbol="BTCUSDT", threshold=1.0))
        assert len(s.rules()) == 1
    assert sqlite3.connect(db).execute("SELECT count(*) FROM alert_rules").fetchone() == (1,)


# ------------------------------------------------------------- levels within each range
@pytest.mark.parametrize(
    ("metric", "symbol", "condition", "threshold", "ok"),
    [
        ("rsi", "BTCUSDT", "above", 99.9, True),
        ("rsi", "BTCUSDT", "above", 100.0, False),  # RSI is never above 100
        ("rsi", "BTCUSDT", "above", 150.0, False),
        ("rsi", "BTCUSDT", "below", 0.1, True),
        ("rsi", "BTCUSDT", "below", 0.0, False),
        ("rsi", "BTCUSDT", "crosses_below", -5.0, False),
        ("correlation", "ETHUSDT/BTCUSDT", "crosses_below", -0.99, True),
        ("correlation", "ETHUSDT/BTCUSDT", "crosses_below", -1.0, False),
        ("correlation", "ETHUSDT/BTCUSDT", "above", 1.2, False),
        ("price", "BTCUSDT", "below", 0.01, True),
        ("price", "BTCUSDT", "below", 0.0, False),
        ("volatility", "BTCUSDT", "above", 0.0, True),  # any volatility at all
        ("volatility", "BTCUSDT", "below", 0.0, False),
        ("staleness", "BTCUSDT", "above", -1.0, False),
        ("zscore", "BTCUSDT", "below", -1e6, True),  # unbounded
    ],
)
def test_thresholds_are_checked_against_the_metrics_range(metric, symbol, condition, threshold, ok):
    spec = {"name": "r", "metric": metric, "symbol": symbol, "condition": condition,
            "threshold": threshold, "window": 100}  # fmt: skip
    if metric == "unfilled_gap":
        spec["condition"] = "above"
    if ok:
        rule_from_dict(spec)
        return
    with pytest.raises(RuleError) as err:
        rule_from_dict(spec)
    assert err.value.field == "threshold" and "choose" in err.value.reason


def test_bands_and_rearm_levels_stay_in_range():
    base = {"name": "r", "metric": "rsi", "symbol": "BTCUSDT", "condition": "outside"}
    rule_from_dict({**base, "band": [30, 70], "rearm_band": [35, 65]})
    with pytest.raises(RuleError, match=r"never outside 0\.\.100"):
        rule_from_dict({**base, "band": [0, 100]})
    with pytest.raises(RuleError, match="150 is never reached"):
        rule_from_dict({**base, "band": [30, 150]})
    with pytest.raises(RuleError, match=r"rearm=-3\.0: rsi lies between 0 and 100"):
        rule_from_dict({"name": "r", "metric": "rsi", "symbol": "BTCUSDT",
                        "condition": "below", "threshold": 30, "rearm": -3})  # fmt: skip


def test_every_enum_field_lists_its_choices():
    base = {"name": "r", "metric": "zscore", "symbol": "BTCUSDT", "threshold": 1}
    for field, bad, first in (
        ("condition", "abov", "'above'"),
        ("severity", "loud", "'info'"),
        ("hedge_method", "lsq", "'ols'"),
        ("vol_method", "ewma", "'realized'"),
        ("channels", ["slack"], "'dashboard'"),
    ):
        with pytest.raises(RuleError) as err:
            rule_from_dict({**base, field: bad})
        assert err.value.field == field and "expected one of [" + first in err.value.reason


def test_channel_settings_agree_with_the_channels_that_get_built():
    import itertools

    from lq.alerts.channel_setup import CHANNEL_SETTINGS, unconfigured_channels
    from lq.alerts.channels import channels_from_settings
    from lq.config import load_settings

    env_values = {
        "LQ_TELEGRAM_TOKEN": "1:x", "LQ_TELEGRAM_CHAT_ID": "9", "LQ_EMAIL_HOST": "127.0.0.1",
        "LQ_EMAIL_TO": "a@b.c", "LQ_WEBHOOK_URL": "http://127.0.0.1:9/",
    }  # fmt: skip
    keys = sorted(env_values)
    for n in range(len(keys) + 1):  # every subset of settings
        for subset in itertools.combinations(keys, n):
            settings = load_settings(env={k: env_values[k] for k in subset})
            built = set(channels_from_settings(settings))
            missing = unconfigured_channels(CHANNEL_SETTINGS, settings)
            assert built == set(CHANNEL_SETTINGS) - set(missing), subset


def test_every_metric_declares_its_range():
    from lq.alerts.rules import METRIC_RANGES, METRICS

    assert set(METRIC_RANGES) == set(METRICS)
