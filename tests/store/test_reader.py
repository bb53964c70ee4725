from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from trade_factory import T0, make_trades

from lq.errors import ValidationError
from lq.store import Store, Writer, to_us
from lq.store.duck import sqlite_extension_path


@pytest.fixture
def filled(db):
    with Writer(db) as w:
        w.write_trades(make_trades(3_000, step_us=100_000))  # 300 s of BTCUSDT
        w.write_trades(make_trades(600, symbol="ETHUSDT", start_id=10, step_us=500_000))
    return db


def test_ticks_by_time_range_are_the_half_open_interval(filled):
    with Store(filled) as s:
        df = s.ticks("btcusdt", start=T0 + 1_000_000, end=T0 + 2_000_000)
    assert list(df.columns) == ["ts", "trade_id", "price", "qty", "is_buyer_maker"]
    assert df.ts.min() == T0 + 1_000_000
    assert df.ts.max() == T0 + 1_900_000
    assert len(df) == 10
    assert df.ts.dtype == np.int64


def test_times_may_be_strings_datetimes_or_microseconds():
    assert to_us("2024-08-08 23:54:15.342") == T0
    assert to_us(pd.Timestamp("2024-08-08T23:54:15.342Z")) == T0
    assert to_us(T0) == T0
    with pytest.raises(ValidationError, match="start"):
        to_us("yesterday-ish", field="start")


def test_ticks_since_returns_only_newer_ids_in_order(filled):
    with Store(filled) as s:
        df = s.ticks_since("BTCUSDT", 2_990)
        none = s.ticks_since("BTCUSDT", 3_000)
    assert list(df.trade_id) == list(range(2_991, 3_001))
    assert none.empty


def test_bars_1s_and_resampled_1m_match_a_pandas_resample_of_the_ticks(filled):
    with Store(filled) as s:
        ticks = s.ticks("BTCUSDT")
        b1 = s.bars("BTCUSDT", "1s")
        b1m = s.bars("BTCUSDT", "1m")
    t = ticks.assign(time=pd.to_datetime(ticks.ts, unit="us", utc=True)).set_index("time")
    ref = t.price.resample("1min").ohlc()  # pandas is the independent reference
    ref["volume"] = t.qty.resample("1min").sum()
    ref["trades"] = t.price.resample("1min").count()
    ref = ref[ref.trades > 0]
    assert len(b1) == 301  # 300 s of trades starting at .342 touch 301 seconds
    assert list(b1m.index) == list(ref.index)
    for col in ("open", "high", "low", "close", "trades"):
        np.testing.assert_array_equal(b1m[col].to_numpy(), ref[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(b1m.volume, ref.volume, rtol=1e-12)


def test_symbols_lists_what_is_stored(filled):
    with Store(filled) as s:
        assert s.symbols() == ["BTCUSDT", "ETHUSDT"]


def test_duckdb_sql_runs_over_the_attached_sqlite_file(filled):
    with Store(filled) as s:
        df = s.sql("SELECT symbol, count(*) AS n FROM ticks GROUP BY symbol ORDER BY symbol")
        p = s.sql("SELECT count(*) AS n FROM ticks WHERE trade_id > ?", [2_000])
    assert df.to_dict("list") == {"symbol": ["BTCUSDT", "ETHUSDT"], "n": [3_000, 600]}
    assert int(p.n[0]) == 1_000 + 0  # ETH ids stop at 609


def test_duckdb_extension_comes_from_the_wheel_and_nothing_is_downloaded(filled):
    import duckdb

    path = sqlite_extension_path()
    assert path.exists()
    assert f"v{duckdb.__version__}" in str(path)
    with Store(filled) as s:
        settings = s.duck.execute(
            "SELECT current_setting('autoinstall_known_extensions'), current_setting('allow_unsigned_extensions')"
        ).fetchone()
    assert settings == (False, False)  # no auto-install, and signatures are still checked


def test_reader_cannot_write(filled):
    import sqlite3

    with Store(filled) as s, pytest.raises(sqlite3.OperationalError, match="readonly"):
        s.conn.execute("DELETE FROM ticks")


def test_bad_symbol_is_refused_with_the_field_named(filled):
    with Store(filled) as s, pytest.raises(ValidationError, match="symbol"):
        s.ticks("")


def test_time_range_reads_are_exact_even_when_ids_are_not_in_time_order(db):
    # ticks have no time index: the range goes through the bars' trade-id ranges, which must
    # stay exact whatever the id order (reference: a plain pandas filter)
    import random

    from lq.feeds.events import Trade

    rng = random.Random(3)
    trades = [
        Trade(
            symbol="BTCUSDT",
            trade_id=i,
            price=100.0 + i % 5,
            qty=1.0,
            ts=T0 + rng.randrange(0, 20_000_000),
            event_ts=T0,
            is_buyer_maker=False,
        )
        for i in range(1, 2_001)
    ]
    with Writer(db) as w:
        for k in range(0, 2_000, 300):
            w.write_trades(trades[k : k + 300])
    ref = pd.DataFrame([(t.ts, t.trade_id) for t in trades], columns=["ts", "trade_id"])
    with Store(db) as s:
        for lo, hi in [
            (T0 + 3_000_000, T0 + 4_500_000),
            (T0, T0 + 1),
            (T0 + 19_999_000, None),
            (None, T0 + 700_000),
        ]:
            got = s.ticks("BTCUSDT", start=lo, end=hi)
            want = ref[(ref.ts >= (lo or 0)) & (ref.ts < (hi or 2**62))].sort_values(
                ["ts", "trade_id"]
            )
            assert got.trade_id.tolist() == want.trade_id.tolist(), (lo, hi)


def test_minute_bars_come_from_the_rollup_and_match_pandas_after_late_backfill(db):
    trades = make_trades(6_000, step_us=50_000)  # 300 s
    with Writer(db) as w:
        w.write_trades([t for t in trades if t.trade_id % 97])  # holes...
        w.write_trades([t for t in trades if not t.trade_id % 97])  # ...backfilled later
        rollup = w.conn.execute("SELECT count(*), sum(trades) FROM bars_1m").fetchone()
    with Store(db) as s:
        m1, m5 = s.bars("BTCUSDT", "1m"), s.bars("BTCUSDT", "5m")
        from_seconds = s.bars("BTCUSDT", "90s")  # not whole minutes: aggregated from 1 s bars
    t = pd.DataFrame([(t.ts, t.price, t.qty) for t in trades], columns=["ts", "price", "qty"])
    t.index = pd.to_datetime(t.ts, unit="us", utc=True)
    for bars, rule in ((m1, "1min"), (m5, "5min"), (from_seconds, "90s")):
        ref = t.price.resample(rule).ohlc().dropna()
        np.testing.assert_array_equal(
            bars[["open", "high", "low", "close"]].to_numpy(), ref.to_numpy()
        )
        assert bars.trades.sum() == 6_000
    assert rollup == (len(m1), 6_000)
