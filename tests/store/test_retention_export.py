from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from trade_factory import T0, make_trades

from lq.store import Store, Writer
from lq.store.export import export
from lq.store.retention import purge


def test_purge_removes_old_ticks_keeps_bars_and_gives_disk_space_back(db):
    with Writer(db) as w:
        for k in range(20):  # 200k ticks over ~200 s
            w.write_trades(
                make_trades(10_000, start_id=k * 10_000 + 1, t0=T0 + k * 10_000_000, step_us=1_000)
            )
        w.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size_before = os.path.getsize(db)
        bars_before = w.conn.execute("SELECT count(*), sum(trades) FROM bars_1s").fetchone()
        cutoff = T0 + 150 * 1_000_000
        res = purge(w, cutoff)
        left = w.conn.execute("SELECT count(*), min(ts) FROM ticks").fetchone()
        bars_after = w.conn.execute("SELECT count(*), sum(trades) FROM bars_1s").fetchone()
    assert res.deleted["ticks"] == 150_000
    assert left == (50_000, cutoff)
    assert bars_after == bars_before  # bars stay
    assert os.path.getsize(db) < 0.5 * size_before  # the file really shrank
    assert res.bytes_freed > 0


def test_purge_bars_is_a_separate_choice_and_never_outruns_the_ticks(db):
    with Writer(db) as w:
        w.write_trades(make_trades(1_000, step_us=100_000))  # 100 s of ticks
        kept = purge(w, T0 + 50_000_000, what="bars")  # ticks are still there: bars stay
        assert kept.deleted["bars_1s"] == 0
        purge(w, T0 + 50_000_000, what="ticks")
        res = purge(w, T0 + 50_000_000, what="bars")
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 500
    # bar open times from floor(T0) (.342 s before T0) up to the second of the oldest tick left
    assert res.deleted["bars_1s"] == 50
    assert res.deleted["bars_1m"] == 1  # 23:54 only: the 23:55 minute still holds kept seconds


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips_ticks(db, tmp_path, suffix):
    with Writer(db) as w:
        w.write_trades(make_trades(500))
    out = tmp_path / f"ticks{suffix}"
    with Store(db) as s:
        n = export(s, "ticks", "BTCUSDT", out)
        ref = s.ticks("BTCUSDT")
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert n == 500
    assert list(back.trade_id) == list(ref.trade_id)
    assert list(back.price) == list(ref.price)  # exact: floats survive both formats
    assert not (tmp_path / f"ticks{suffix}.part").exists()


def test_purge_request_nobody_answers_is_withdrawn_with_a_clear_error(db):
    from lq.errors import StoreError
    from lq.store.retention import request_purge

    Writer(db).close()
    with pytest.raises(StoreError, match="did not answer the purge request within 0 s"):
        request_purge(db, T0, timeout=0.3)
    assert not list(Path(str(db) + ".inbox").glob("*.purge.json"))  # withdrawn


def test_a_bad_purge_request_is_answered_with_its_error_and_changes_nothing(db):
    import json

    from lq.importer import process_inbox

    with Writer(db) as w:
        w.write_trades(make_trades(100))
        box = Path(str(db) + ".inbox")
        box.mkdir()
        (box / "1-x.purge.json").write_text(
            json.dumps({"older_than_us": T0 + 10**9, "what": "all"})
        )
        process_inbox(w)  # what the collector runs every second
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 100
    answer = json.loads((box / "results" / "1-x.json").read_text())
    assert "what='all'" in answer["error"] and "expected one of" in answer["error"]
    assert not (box / "1-x.purge.json").exists()


@pytest.mark.parametrize("kind", ["ticks", "bars"])
def test_a_symbol_under_two_exchange_labels_is_never_spliced_into_one_export(db, tmp_path, kind):
    from lq.errors import ValidationError

    with Writer(db) as w:  # the same symbol and the same ids from two sources
        w.write_trades(make_trades(300, step_us=100_000, exchange="binance"))
        w.write_trades(make_trades(200, step_us=100_000, price=61_900.0, exchange="local"))
    out = tmp_path / "x.csv"
    with Store(db) as s:
        with pytest.raises(ValidationError, match=r"from 2 exchanges \(binance, local\); choose"):
            export(s, kind, "BTCUSDT", out)
        assert not out.exists()
        with pytest.raises(ValidationError, match="stored under: binance, local"):
            export(s, kind, "BTCUSDT", out, exchange="kraken")
        n = export(s, kind, "BTCUSDT", out, exchange="local")
    df = pd.read_csv(out)
    assert list(df.columns[:3]) == ["time", "symbol", "exchange"]
    assert set(df["exchange"]) == {"local"}
    if kind == "ticks":
        assert n == 200 and df["trade_id"].is_unique and df["price"].min() >= 61_900.0
    else:
        assert df["trades"].sum() == 200 and df["low"].min() >= 61_900.0


def test_a_symbol_under_one_label_exports_without_naming_it(db, tmp_path):
    with Writer(db) as w:
        w.write_trades(make_trades(50, exchange="coinbase", symbol="BTC-USD"))
    with Store(db) as s:
        assert export(s, "ticks", "BTC-USD", tmp_path / "a.csv") == 50
    assert set(pd.read_csv(tmp_path / "a.csv")["exchange"]) == {"coinbase"}
