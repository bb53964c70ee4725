"""QA, issue 12: alert rules on Coinbase/Kraken/OKX symbols (legs ``SYMBOL@exchange``) are
accepted and evaluated on that label's stored rows; dislocation legs must be one asset and a
label must exist. Real SQLite files, the real engine."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pandas as pd
import pytest

from lq.alerts.engine import AlertEngine
from lq.alerts.history import load_samples
from lq.alerts.rules import Rule, rule_from_dict
from lq.alerts.store import AlertStore
from lq.errors import RuleError, ValidationError
from lq.feeds.events import Trade
from lq.store import Store, Writer

S = 1_000_000
T0 = 1_723_161_600 * S


def _trade(ex: str, sym: str, tid: int, p: float, ts: int) -> Trade:
    return Trade(symbol=sym, trade_id=tid, price=p, qty=1.0, ts=ts, event_ts=ts,
                 is_buyer_maker=False, recv_ts=time.time_ns() // 1000, exchange=ex)  # fmt: skip


def _market() -> list[Trade]:
    """Kraken BTC/USD at 100 + sec; a decoy BTC/USD under another label at 500 + sec;
    Coinbase BTC-USD and ETH-USD."""
    out = []
    for sec in range(6):
        t = T0 + sec * S
        out.append(_trade("kraken", "BTC/USD", sec + 1, 100.0 + sec, t + 100_000))
        out.append(_trade("local-kraken", "BTC/USD", sec + 1, 500.0 + sec, t + 200_000))
        out.append(_trade("coinbase", "BTC-USD", sec + 1, 200.0 * (1 + 0.01 * sec), t + 300_000))
        out.append(_trade("coinbase", "ETH-USD", sec + 1, 10.0 * (1 + 0.02 * sec), t + 400_000))
    return out


@pytest.mark.parametrize(
    ("text", "stored", "metric"),
    [
        ("btc/usd@Kraken", "BTC/USD@kraken", "price"),
        ("BTC-USD@coinbase", "BTC-USD@coinbase", "zscore"),
        ("BTC-USDT@okx", "BTC-USDT@okx", "return"),
        ("BTC-USD", "BTC-USD", "price"),
        ("ETH-USD@coinbase/BTC-USD@coinbase", "ETH-USD@coinbase/BTC-USD@coinbase", "correlation"),
    ],
)
def test_venue_symbols_are_accepted(text: str, stored: str, metric: str) -> None:
    r = rule_from_dict({"name": "r", "metric": metric, "symbol": text, "threshold": 0.5})
    assert r.symbol == stored


@pytest.mark.parametrize("text", ["BTC/USD@kraken/ETHUSDT", "BTC$USD@kraken", "BTC@"])
def test_bad_legs_are_refused_with_the_form(text: str) -> None:
    with pytest.raises(RuleError, match=r"BTC-USD@coinbase|Y/X"):
        rule_from_dict({"name": "r", "metric": "price", "symbol": text, "threshold": 1.0})


def test_a_price_rule_on_kraken_reads_only_krakens_rows(tmp_path) -> None:
    db = tmp_path / "k.sqlite"
    with Writer(db) as w:
        w.write_trades(_market())
    rule = Rule(name="k", metric="price", symbol="BTC/USD@kraken", condition="above",
                threshold=102.5)  # fmt: skip
    with AlertStore(db) as s:
        s.add(rule)
    with Store(db) as st:
        ts, prices = load_samples(st, rule)
    # 1 s buckets stamped with their end, each the last kraken price (never the decoy's 500s)
    assert ts.tolist() == [T0 + (k + 1) * S for k in range(6)]
    assert prices[:, 0].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]


def test_a_pair_rule_on_coinbase_legs_is_evaluated_from_coinbase_rows(tmp_path) -> None:
    db = tmp_path / "p.sqlite"
    with Writer(db) as w:
        w.write_trades(_market())
    rule = Rule(name="p", metric="correlation", symbol="ETH-USD@coinbase/BTC-USD@coinbase",
                window=3, condition="above", threshold=0.5)  # fmt: skip
    with Store(db) as st:
        _ts, prices = load_samples(st, rule)
    want = np.array([[10.0 * (1 + 0.02 * k), 200.0 * (1 + 0.01 * k)] for k in range(6)])
    np.testing.assert_allclose(prices, want, rtol=0, atol=1e-9)


def test_the_live_engine_follows_the_labelled_leg_only(tmp_path) -> None:
    db = tmp_path / "live.sqlite"
    rule = Rule(name="k", metric="price", symbol="BTC/USD@kraken", condition="above",
                threshold=1e9)  # fmt: skip
    with AlertStore(db) as s:
        s.add(rule)

    async def go() -> AlertEngine:
        eng = AlertEngine(db=db, poll_interval=0.05, warmup=False)
        eng.start()
        await eng.wait_ready()
        eng.feed(_market())
        await eng.flush()
        await eng.stop()
        return eng

    eng = asyncio.run(go())
    (entry,) = eng._entries.values()
    # the last closed bucket (second 4) carried kraken's 104, not the decoy's 504
    assert entry.metric.value == 104.0


def test_an_unknown_label_is_refused_listing_the_stored_ones(tmp_path) -> None:
    db = tmp_path / "u.sqlite"
    with Writer(db) as w:
        w.write_trades(_market())
    rule = Rule(name="x", metric="price", symbol="BTC/USD@krakn", threshold=1.0)
    with AlertStore(db) as s, pytest.raises(RuleError) as ei:
        s.add(rule)
    assert "krakn" in str(ei.value) and "coinbase, kraken, local-kraken" in str(ei.value)
    with Store(db) as st, pytest.raises(RuleError) as ei2:
        load_samples(st, rule)
    assert "BTC/USD is stored under kraken, local-kraken" in str(ei2.value)


def test_dislocation_of_two_different_assets_is_refused() -> None:
    with pytest.raises(RuleError, match=r"different assets \(BTC on coinbase, ETH on binance\)"):
        Rule(name="x", metric="dislocation_bps", symbol="BTC-USD@coinbase/ETHUSDT@binance",
             threshold=10.0)  # fmt: skip
    with pytest.raises(RuleError, match="not a spot"):
        Rule(name="x", metric="dislocation_bps", symbol="BTC-USDT-SWAP@okx/BTCUSDT@binance",
             threshold=10.0)  # fmt: skip


def test_dislocation_numbers_equal_a_hand_computation(tmp_path) -> None:
    """Kraken BTC/USD vs Coinbase BTC-USD, both USD: by hand (p_a / p_b - 1) · 1e4."""
    db = tmp_path / "d.sqlite"
    trades = _market()
    with Writer(db) as w:
        w.write_trades(trades)
    rule = Rule(name="d", metric="dislocation_bps", symbol="BTC/USD@kraken/BTC-USD@coinbase",
                threshold=10.0)  # fmt: skip
    from lq.alerts.history import evaluate_samples

    with Store(db) as st:
        ts, prices = load_samples(st, rule)
    _, values = evaluate_samples(rule, ts, prices)
    by_hand = [((100.0 + k) / (200.0 * (1 + 0.01 * k)) - 1.0) * 1e4 for k in range(6)]
    np.testing.assert_allclose(values, by_hand, rtol=0, atol=1e-9)
    assert by_hand[0] == -5000.0 and not any(math.isnan(v) for v in values)


def test_analytics_dislocation_refuses_different_assets_and_unknown_labels() -> None:
    from lq.analytics import dislocation

    idx = pd.to_datetime([T0, T0 + S], unit="us", utc=True)
    prices = {"coinbase": pd.Series([100.0, 101.0], index=idx),
              "binance": pd.Series([100.5, 100.0], index=idx)}  # fmt: skip
    quotes = {"coinbase": "USD", "binance": "USDT"}
    with pytest.raises(ValidationError, match=r"different assets \(BTC on coinbase, ETH on"):
        dislocation(prices, quotes=quotes, symbols={"coinbase": "BTC-USD", "binance": "ETHUSDT"})
    with pytest.raises(ValidationError, match=r"coinbsae.*not one of the venues priced"):
        dislocation(prices, quotes={**quotes, "coinbsae": "USD"})
    with pytest.raises(ValidationError, match="quoted in USDT"):
        dislocation(prices, quotes={"coinbase": "USD", "binance": "USD"},
                    symbols={"coinbase": "BTC-USD", "binance": "BTCUSDT"})  # fmt: skip
    d = dislocation(prices, quotes=quotes, symbols={"coinbase": "BTC-USD", "binance": "BTCUSDT"},
                    reference="binance", interval=None)  # fmt: skip
    # by hand: (100 / 100.5 - 1) · 1e4 and (101 / 100 - 1) · 1e4
    np.testing.assert_allclose(d.bps["coinbase"].to_numpy(),
                               [(100.0 / 100.5 - 1) * 1e4, 100.0], rtol=0, atol=1e-9)  # fmt: skip


@pytest.mark.parametrize(
    ("symbol", "ok", "says"),
    [
        ("BTC-USD@coinbase", True, "price(BTC-USD@coinbase)"),
        ("BTC/USD@kraken", True, "price(BTC/USD@kraken)"),
        ("XBT/USD@kraken", False, "use BTC/USD@kraken"),
        ("BTCUSDT@okx", False, "'BASE-QUOTE'"),
    ],
)
def test_lq_alerts_add_takes_a_venue_symbol_on_a_fresh_database(tmp_path, symbol, ok, says):
    """Before any row is stored, a labelled leg is checked by its venue's naming rule (the
    configured collector symbols are Binance's)."""
    import os
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "lq.cli", "alerts", "--db", str(tmp_path / "a.sqlite"), "add", "x",
         "--metric", "price", "--symbol", symbol, "--threshold", "1"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LQ_CONFIG": os.devnull},
    )  # fmt: skip
    assert (r.returncode == 0) is ok, (r.stdout, r.stderr)
    assert says in (r.stdout if ok else r.stderr), (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
