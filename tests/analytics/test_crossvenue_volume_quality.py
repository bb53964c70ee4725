"""Share of volume per venue (against pandas resample/groupby) and per-venue data quality
(against hand-enumerated ledgers and a ledger written by lq's real Sequencer and Writer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lq.analytics as A
from lq.errors import ValidationError
from lq.feeds.events import Trade
from lq.feeds.sequencer import BackfillRequest, Sequencer
from lq.store import Batch, Store, Writer

T0 = 1_700_000_000_000_000


def trades(seed, n, level):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "ts": T0 + np.sort(rng.integers(0, 600_000_000, n)),
            "trade_id": np.arange(n),
            "price": np.round(level * np.exp(np.cumsum(rng.normal(0, 1e-4, n))), 2),
            "qty": np.round(rng.exponential(0.05, n), 5),
            "is_buyer_maker": rng.random(n) < 0.5,
        }
    )


@pytest.fixture
def venues():
    return {
        "coinbase": trades(1, 2_000, 60_000),
        "okx": trades(2, 3_000, 60_020),
        "kraken": trades(3, 500, 59_990),
    }


def pandas_volume(venues, interval, value):
    """Reference: pandas resample of each venue's per-trade amount, outer-joined."""
    cols = {}
    for name, df in venues.items():
        s = pd.Series(value(df).to_numpy(), index=pd.to_datetime(df["ts"], unit="us", utc=True))
        cols[name] = s.resample(interval).sum()
    out = pd.DataFrame(cols).fillna(0.0)
    return out[out.sum(axis=1) > 0]


def test_share_by_base_quantity_equals_pandas_resample(venues):
    vs = A.volume_share(venues, interval="1m")
    ref = pandas_volume(venues, "1min", lambda df: df["qty"])
    np.testing.assert_allclose(vs.volume.to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert vs.volume.index.equals(ref.index.rename("time"))
    np.testing.assert_allclose(vs.share.to_numpy(), ref.div(ref.sum(axis=1), axis=0), rtol=1e-12)
    np.testing.assert_allclose(vs.share.sum(axis=1), 1.0, rtol=1e-12)
    total = pd.Series({k: v["qty"].sum() for k, v in venues.items()})
    np.testing.assert_allclose(vs.total.to_numpy(), total.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(vs.total_share.to_numpy(), (total / total.sum()).to_numpy())
    assert vs.unit == "base" and vs.by == "base"


def test_share_by_quote_notional_sums_price_times_qty_per_trade(venues):
    usd = {"coinbase": "USD", "okx": "USD", "kraken": "USD"}
    vs = A.volume_share(venues, by="quote", quotes=usd, interval="5m")
    ref = pandas_volume(venues, "5min", lambda df: df["price"] * df["qty"])
    np.testing.assert_allclose(vs.volume.to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert vs.unit == "USD" and vs.conversion["okx"] == "in USD"


def test_mixed_quotes_are_converted_only_with_a_supplied_rate(venues):
    quotes = {"coinbase": "USD", "okx": "USDT", "kraken": "USD"}
    with pytest.raises(ValidationError, match=r"quotes differ .* pass currency='USD' and rates="):
        A.volume_share(venues, by="quote", quotes=quotes)
    with pytest.raises(ValidationError, match="no USDT/USD rate"):
        A.volume_share(venues, by="quote", quotes=quotes, currency="USD")
    rate_ts = T0 - 1 + np.arange(0, 700_000_000, 60_000_000)
    rate = pd.Series(np.linspace(0.999, 1.001, rate_ts.size),
                     index=pd.to_datetime(rate_ts, unit="us", utc=True))  # fmt: skip
    vs = A.volume_share(venues, by="quote", quotes=quotes, currency="usd",
                        rates={"USDT/USD": rate}, interval=None)  # fmt: skip
    okx = venues["okx"]
    r = pd.merge_asof(okx[["ts"]], pd.DataFrame({"ts": rate_ts, "r": rate.to_numpy()}), on="ts")
    want = float((okx["price"] * okx["qty"] * r["r"]).sum())
    assert vs.total["okx"] == pytest.approx(want, rel=1e-12)
    assert vs.total["coinbase"] == pytest.approx(
        float((venues["coinbase"]["price"] * venues["coinbase"]["qty"]).sum()), rel=1e-12
    )
    assert vs.conversion["okx"] == "USDT -> USD via USDT/USD series"
    assert vs.volume.shape == (1, 3)
    # a rate series that starts after a trade cannot convert it: refused, not guessed
    late = rate.iloc[3:]
    with pytest.raises(ValidationError, match="no rate at or before okx's trade"):
        A.volume_share(venues, by="quote", quotes=quotes, currency="USD", rates={"USDT/USD": late})
    # parity stated by the caller is shown as a constant
    par = A.volume_share(venues, by="quote", quotes=quotes, currency="USD",
                         rates={"USDT/USD": 1.0})  # fmt: skip
    assert par.conversion["okx"] == "USDT -> USD via USDT/USD = 1 (constant)"


def test_window_keeps_start_inclusive_end_exclusive(venues):
    start, end = T0 + 60_000_000, "2023-11-14 22:16:40"  # no zone: UTC, = T0 + 200 s
    vs = A.volume_share(venues, start=start, end=end, interval=None)
    end_us = T0 + 200_000_000
    assert pd.Timestamp(end, tz="UTC").value // 1000 == end_us
    for name, df in venues.items():
        sel = (df["ts"] >= start) & (df["ts"] < end_us)
        assert vs.total[name] == pytest.approx(df.loc[sel, "qty"].sum(), rel=1e-12)
    assert vs.volume.index[0] == pd.Timestamp(start, unit="us", tz="UTC")


def test_volume_share_refuses_bad_input(venues):
    with pytest.raises(ValidationError, match="quotes"):
        A.volume_share(venues, by="quote")
    bad = venues["okx"].assign(qty=-venues["okx"]["qty"])
    with pytest.raises(ValidationError, match="negative quantity"):
        A.volume_share({**venues, "okx": bad})
    with pytest.raises(ValidationError, match="no 'qty' column"):
        A.volume_share({"okx": venues["okx"].drop(columns="qty")})


# -- data quality -------------------------------------------------------------------------------


def test_data_quality_hand_enumerated_ledger():
    gaps = pd.DataFrame(
        [
            # exchange, symbol, kind, first, last, status, updated_ts, reason
            ("kraken", "BTC/USD", "trade", 100, 200, "found", 10, ""),
            ("kraken", "BTC/USD", "trade", 150, 160, "unfilled", 20, "REST: no trades"),
            ("kraken", "BTC/USD", "trade", 300, 309, "found", 30, ""),
            ("kraken", "BTC/USD", "trade", 300, 309, "filled", 40, ""),
            ("kraken", "BTC/USD", "trade", 500, 504, "found", 50, ""),  # backfill running
            ("okx", "BTC-USDT", "trade", 7, 7, "found", 5, ""),
            ("okx", "BTC-USDT", "trade", 7, 7, "filled", 6, ""),
        ],
        columns=["exchange", "symbol", "kind", "first_missing", "last_missing", "status",
                 "updated_ts", "reason"],
    )  # fmt: skip
    streams = pd.DataFrame(
        {
            "venue": ["kraken", "okx", "coinbase", "bybit"],
            "symbol": ["BTC/USD", "BTC-USDT", "BTC-USD", "BTCUSDT"],
            "ids": ["contiguous", "contiguous", "contiguous", "none"],
            "received": [10_000, 5_000, 7_000, 3_000],
            "dropped_by_venue": [116, 1, 0, None],
            "rest_filled": [100, 1, 0, None],
        }
    )
    q = A.data_quality(gaps, streams)
    assert list(q.columns) == list(A.QUALITY_COLUMNS)
    k = q.loc[("kraken", "BTC/USD", "trade")]
    # ids listed: 100..200 (101) + 300..309 (10) + 500..504 (5) = 116, in 3 runs
    assert (k["holes"], k["ids_found"]) == (3, 116)
    # 100..200 settled by the unfilled 150..160 row: 100..149 and 161..200 were filled
    assert k["ids_filled"] == 50 + 40 + 10
    assert k["ids_missing"] == 11 and k["missing"] == ((150, 160),)
    assert k["ids_pending"] == 5  # 500..504: found, no outcome yet
    assert k["state"] == "unfilled holes" and k["reasons"] == "REST: no trades"
    assert (k["received"], k["dropped_by_venue"], k["rest_filled"]) == (10_000, 116, 100)
    o = q.loc[("okx", "BTC-USDT", "trade")]
    assert (o["state"], o["ids_filled"], o["ids_missing"]) == ("all holes filled", 1, 0)
    c = q.loc[("coinbase", "BTC-USD", "trade")]
    assert (c["state"], c["holes"], c["ids_missing"]) == ("complete", 0, 0)
    b = q.loc[("bybit", "BTCUSDT", "trade")]
    assert b["state"] == "not checkable"
    assert all(pd.isna(b[c]) for c in ("holes", "ids_found", "ids_missing", "dropped_by_venue"))
    assert q["ids_missing"].dtype == "Int64"
    # only pending ids left: "backfill pending"
    pending = A.data_quality(gaps[gaps["first_missing"] == 500])
    assert pending.loc[("kraken", "BTC/USD", "trade"), "state"] == "backfill pending"


def test_data_quality_latest_row_wins_and_ties_never_overclaim():
    gaps = pd.DataFrame({
        "exchange": ["x", "x", "x"], "symbol": ["S"] * 3,
        "first_missing": [10, 10, 15], "last_missing": [19, 12, 16],
        "status": ["unfilled", "filled", "unfilled"], "updated_ts": [1, 2, 2]})  # fmt: skip
    k = A.data_quality(gaps).loc[("x", "S", "trade")]
    # 10..12 refilled later (filled at 2 beats unfilled at 1); 15..16: tie at 2 -> unfilled
    assert k["missing"] == ((13, 19),) and k["ids_missing"] == 7 and k["ids_filled"] == 3


def test_data_quality_of_a_not_checkable_venue_ignores_and_says_so():
    gaps = pd.DataFrame({"exchange": ["bybit"], "symbol": ["BTCUSDT"], "first_missing": [1],
                         "last_missing": [2], "status": ["found"]})  # fmt: skip
    streams = pd.DataFrame({"exchange": ["bybit"], "symbol": ["BTCUSDT"], "ids": ["none"]})
    row = A.data_quality(gaps, streams).loc[("bybit", "BTCUSDT", "trade")]
    assert row["state"] == "not checkable" and "1 ledger rows ignored" in row["note"]


def test_data_quality_empty_and_bad_input():
    empty = A.data_quality(pd.DataFrame())
    assert empty.empty and list(empty.index.names) == ["venue", "symbol", "kind"]
    with pytest.raises(ValidationError, match="status"):
        A.data_quality(pd.DataFrame({"exchange": ["x"], "symbol": ["S"], "first_missing": [1],
                                     "last_missing": [1], "status": ["lost"]}))  # fmt: skip
    with pytest.raises(ValidationError, match="missing columns"):
        A.data_quality(pd.DataFrame({"exchange": ["x"], "symbol": ["S"]}))
    with pytest.raises(ValidationError, match=r"streams\.ids"):
        A.data_quality(pd.DataFrame(), pd.DataFrame({"venue": ["x"], "symbol": ["S"],
                                                     "ids": ["sometimes"]}))  # fmt: skip


def _trade(i):
    return Trade(symbol="BTC/USD", trade_id=i, price=60_000.0, qty=0.01, ts=T0 + i * 1000,
                 event_ts=T0 + i * 1000, is_buyer_maker=False, exchange="kraken")  # fmt: skip


def test_data_quality_reads_a_ledger_written_by_the_real_sequencer_and_writer(tmp_path):
    # ids 1..400 arrive with holes 100..200 and 300..309; backfill then delivers 100..149,
    # 161..200 and all of 300..309, so only 150..160 stays missing
    seq = Sequencer(exchange="kraken")
    db = tmp_path / "lq.sqlite"
    found, requests = [], []
    for i in [*range(1, 100), *range(201, 300), *range(310, 401)]:
        step = seq.on_trade(_trade(i), now=T0)
        found += step.gaps
        requests += step.requests
    assert [(r.first_id, r.last_id) for r in requests] == [(100, 200), (300, 309)]
    with Writer(db) as w:
        w.write_batch(Batch(gaps=list(found)))
        for i in [*range(100, 150), *range(161, 201), *range(300, 310)]:
            assert seq.on_trade(_trade(i), now=T0 + 1).deliver
        settled = []
        for r in requests:
            settled += seq.settle(
                BackfillRequest(symbol=r.symbol, kind=r.kind, first_id=r.first_id,
                                last_id=r.last_id),
                now=T0 + 2, reason="REST returned nothing for these ids",
            )  # fmt: skip
        w.write_batch(Batch(gaps=settled))
    with Store(db) as store:
        ledger = store.gaps()
    q = A.data_quality(ledger).loc[("kraken", "BTC/USD", "trade")]
    assert q["missing"] == ((150, 160),) and q["ids_missing"] == 11
    assert q["ids_found"] == 101 + 10 and q["ids_filled"] == 90 + 10
    assert q["state"] == "unfilled holes"
    assert q["reasons"] == "REST returned nothing for these ids"
    # the truth, from the sequencer itself
    assert seq.holes("BTC/USD", "trade") == [(150, 160)]


def test_missing_ids_stay_exact_when_the_ledger_row_is_overwritten(tmp_path):
    # backfill fills 121..200 of the hole 100..200: the unfilled rest 100..120 has the same
    # key (first_missing=100), so the writer's upsert shrinks the stored row to 100..120.
    # What is still missing stays exact; what was filled is no longer in the ledger.
    seq = Sequencer(exchange="kraken")
    db = tmp_path / "lq.sqlite"
    steps = [seq.on_trade(_trade(i), now=T0) for i in [*range(1, 100), *range(201, 220)]]
    (req,) = [r for s in steps for r in s.requests]
    with Writer(db) as w:
        w.write_batch(Batch(gaps=[g for s in steps for g in s.gaps]))
        for i in range(121, 201):
            seq.on_trade(_trade(i), now=T0 + 1)
        w.write_batch(Batch(gaps=list(seq.settle(req, now=T0 + 2))))
    with Store(db) as store:
        q = A.data_quality(store.gaps()).loc[("kraken", "BTC/USD", "trade")]
    assert q["missing"] == ((100, 120),) and q["ids_missing"] == 21
    assert seq.holes("BTC/USD", "trade") == [(100, 120)]
