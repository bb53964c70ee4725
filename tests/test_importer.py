"""`lq import`: Binance public-data layouts (made here in the documented formats), recordings, uploads."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sqlite3
import time
import zipfile

import pytest

from lq.errors import ImportFormatError
from lq.importer import detect_kind, import_file, import_upload
from lq.store import Store, Writer

# rows in the exact layouts of data.binance.vision (binance-public-data README, 2025-01-09)
SPOT_TRADES_US = [  # id, price, qty, quoteQty, time (µs since 2025), isBuyerMaker, isBestMatch
    f"{51175358 + i},{17.8018 + i * 0.0001:.8f},5.69000000,101.29224200,{1735689600010866 + i * 1000},{'True' if i % 2 else 'False'},True"
    for i in range(50)
]
FUTURES_TRADES_MS = ["id,price,qty,quote_qty,time,is_buyer_maker"] + [
    f"{3249558288 + i},61800.{i:02d},0.006,370.8,{1723161256322 + i},{'true' if i % 3 else 'false'}"
    for i in range(30)
]
SPOT_AGG = [  # agg_id, price, qty, first_id, last_id, time, is_buyer_maker, is_best_match
    "0,0.20000000,50.00000000,0,0,1735689600010866,False,True",
    "1,0.20000000,10.00000000,1,2,1735689600020866,True,True",
    "2,0,0,-1,-1,1735689600030866,False,True",  # invalid (Binance's 2022 audit marker): skipped
    "3,0.20010000,5.00000000,3,3,1735689600040866,True,True",
]
SPOT_KLINES = [
    f"{1735689600000000 + i * 60_000_000},4.15,4.20,4.10,4.18,2240.39860900,{1735689600000000 + (i + 1) * 60_000_000 - 1},"
    f"9337.1,13,401.82,1669.98,0"
    for i in range(10)
]


def _zip(name: str, lines: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name.replace(".zip", ".csv"), "\n".join(lines) + "\n")
    return buf.getvalue()


def test_spot_trades_zip_without_header_in_microseconds(tmp_path):
    f = tmp_path / "BTCUSDT-trades-2025-01-01.zip"
    f.write_bytes(_zip(f.name, SPOT_TRADES_US))
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f)
        again = import_file(w, f)
    assert (rep.kind, rep.symbol, rep.rows, rep.new) == ("trades", "BTCUSDT", 50, 50)
    assert (again.new, again.duplicates) == (0, 50)  # idempotent
    with Store(tmp_path / "a.sqlite") as s:
        t = s.ticks("BTCUSDT")
    assert t.trade_id.tolist()[:2] == [51175358, 51175359]
    assert t.ts.iloc[0] == 1735689600010866  # µs kept as µs
    assert t.is_buyer_maker.tolist()[:2] == [False, True]
    assert t.price.iloc[1] == pytest.approx(17.8019)


def test_futures_trades_csv_with_header_lowercase_booleans_and_milliseconds(tmp_path):
    f = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    f.write_text("\n".join(FUTURES_TRADES_MS) + "\n")
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f)
    assert (rep.kind, rep.rows, rep.new) == ("trades", 30, 30)
    with Store(tmp_path / "a.sqlite") as s:
        t = s.ticks("BTCUSDT")
    assert t.ts.iloc[0] == 1723161256322 * 1000  # ms became µs
    assert t.is_buyer_maker.tolist()[:3] == [False, True, True]


def test_agg_trades_skip_the_invalid_f_minus_one_rows(tmp_path):
    f = tmp_path / "ETHUSDT-aggTrades-2025-01-01.csv"
    f.write_text("\n".join(SPOT_AGG) + "\n")
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f)
        rows = w.conn.execute(
            "SELECT agg_id, first_id, last_id FROM agg_trades ORDER BY agg_id"
        ).fetchall()
    assert (rep.kind, rep.rows, rep.new, rep.skipped) == ("aggTrades", 4, 3, 1)
    assert rows == [(0, 0, 0), (1, 1, 2), (3, 3, 3)]


def test_klines_go_to_the_klines_table_with_their_interval(tmp_path):
    f = tmp_path / "BTCUSDT-1m-2025-01-01.zip"
    f.write_bytes(_zip(f.name, SPOT_KLINES))
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f)
    assert (rep.kind, rep.rows) == ("klines", 10)
    with Store(tmp_path / "a.sqlite") as s:
        k = s.klines("BTCUSDT", "1m")
    assert len(k) == 10 and k.close.iloc[0] == 4.18 and k.trades.iloc[0] == 13


def test_monthly_klines_of_every_month_length_are_kept_as_1M(tmp_path):
    # data.binance.vision names monthly klines "1mo"; months are 28..31 days long, and the
    # writer checks each kline's span against its interval (lq.feeds.invariants)
    starts = [1_704_067_200_000, 1_706_745_600_000, 1_709_251_200_000, 1_711_929_600_000]
    lines = [  # 2024-01 (31 d), 2024-02 (29 d), 2024-03 (31 d), ms as in the futures dumps
        f"{a},100.0,110.0,90.0,105.0,2.0,{b - 1},205.0,3,1.0,101.0,0"
        for a, b in itertools.pairwise(starts)
    ]
    f = tmp_path / "BTCUSDT-1mo-2024-01.zip"
    f.write_bytes(_zip("BTCUSDT-1mo-2024-01.csv", lines))
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f)
        rows = w.conn.execute("SELECT interval, count(*) FROM klines GROUP BY 1").fetchall()
    assert (rep.rows, rep.new, rep.rejected) == (3, 3, 0)
    assert rows == [("1M", 3)]


def test_recorded_frames_import_every_trade_of_the_real_recording(tmp_path, shared_data):
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, shared_data / "spot_ethusdt_20240808.gz")
        n = w.conn.execute("SELECT count(*), min(trade_id), max(trade_id) FROM ticks").fetchone()
        books = w.conn.execute("SELECT count(*) FROM book_tickers").fetchone()[0]
    assert rep.kind == "frames"
    assert n[0] == 6_106 and n[2] - n[1] + 1 == 6_106
    assert books == 24_077


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "BTCUSDT-trades-2025-01-01.csv",
            "1,abc,1,1,1735689600010866,True,True\n",
            ":1: column 2 (price) = 'abc'",
        ),
        (
            "BTCUSDT-trades-2025-01-01.csv",
            "1,1.5,1,1,1735689600010866,maybe,True\n",
            "column 6 (is_buyer_maker) = 'maybe'",
        ),
        (
            "BTCUSDT-trades-2025-01-01.csv",
            "1,1.5,1,1,17356,True,True\n",
            "neither milliseconds nor microseconds",
        ),
        ("notes.csv", "hello,world\n1,2\n", "cannot tell what this file is"),
        ("notes.csv", "hello,world\n", "a header row and no data"),
        ("x.csv", "", "empty file"),
        (
            "BTCUSDT-1m-2025-01-01.csv",
            SPOT_KLINES[0].replace("4.20", "4.00") + "\n",
            "not a valid positive OHLC bar",
        ),
        ("BTCUSDT-trades-2025-01-01.zip", "not a zip", "not a valid zip"),
    ],
)
def test_files_it_does_not_understand_are_refused_naming_the_place(
    tmp_path, name, content, message
):
    f = tmp_path / name
    f.write_text(content)
    with Writer(tmp_path / "a.sqlite") as w:
        with pytest.raises(
            ImportFormatError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            import_file(w, f)
        assert w.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] == 0


def test_a_bad_row_late_in_the_file_refuses_the_whole_upload(tmp_path):
    lines = [*SPOT_TRADES_US[:40], "999,1.0,oops,1,1735689600010866,True,True"]
    with pytest.raises(
        ImportFormatError, match=r"BTCUSDT-trades-2025-01-01.csv:41: column 3 \(qty\)"
    ):
        import_upload(
            tmp_path / "a.sqlite",
            "BTCUSDT-trades-2025-01-01.csv",
            ("\n".join(lines) + "\n").encode(),
        )
    assert not (tmp_path / "a.sqlite").exists()  # nothing half-applied


def test_ohlc_csv_upload_is_imported_as_klines_with_the_detected_interval(tmp_path):
    csv = "time,open,high,low,close,volume\n" + "".join(
        f"2024-08-08T23:{50 + i}:00Z,{100 + i},{101 + i},{99 + i},{100.5 + i},{10 * i}\n"
        for i in range(5)
    )
    res = import_upload(tmp_path / "a.sqlite", "mydata.csv", csv.encode(), symbol="solusdt")
    assert (res.status, res.kind, res.symbol, res.rows) == ("imported", "ohlc", "SOLUSDT", 5)
    with Store(tmp_path / "a.sqlite") as s:
        k = s.klines("SOLUSDT", "1m")
    assert k.open.tolist() == [100, 101, 102, 103, 104]
    assert str(k.index[0]) == "2024-08-08 23:50:00+00:00"


def test_upload_while_a_collector_runs_is_queued_and_imported_by_the_collector(tmp_path):
    from lq.collector import Collector

    db = tmp_path / "a.sqlite"
    data = ("\n".join(SPOT_TRADES_US) + "\n").encode()

    async def go():
        col = Collector(
            db=db,
            source="local",
            symbols=["BTCUSDT"],
            simulator={"seed": 1, "rate": 20.0},
            status_interval=0.2,
        )
        col.start()
        await col.wait_started(15)
        res = await asyncio.to_thread(import_upload, db, "XRPUSDT-trades-2025-01-01.csv", data)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            conn = sqlite3.connect(db)
            n = conn.execute("SELECT count(*) FROM ticks WHERE symbol='XRPUSDT'").fetchone()[0]
            conn.close()
            if n == 50:
                break
        await col.stop()
        return res, n

    res, n = asyncio.run(go())
    assert res.status == "queued"
    assert n == 50
    box = tmp_path / "a.sqlite.inbox"
    assert [p.name for p in box.iterdir()] == ["results"]  # nothing left waiting
    answer = json.loads(res.result_path().read_text())  # the collector's answer to the uploader
    assert answer["status"] == "imported" and answer["new"] == 50


def test_detect_kind_by_columns_when_the_name_says_nothing():
    assert detect_kind("x.csv", SPOT_TRADES_US[0]) == "trades"
    assert detect_kind("x.csv", SPOT_AGG[0]) == "aggTrades"
    assert detect_kind("x.csv", SPOT_KLINES[0]) == "klines"
    assert detect_kind("x.csv", FUTURES_TRADES_MS[0]) == "trades"
    assert (
        detect_kind(
            "x.csv",
            "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker",
        )
        == "aggTrades"
    )


def test_a_frame_the_parser_chokes_on_is_set_aside_and_the_rest_imported(tmp_path):
    """A JSON frame nested 1,000 deep (RecursionError in a parser) between good frames."""
    good = [
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":%d,'
        b'"p":"61837.63","q":"0.02","T":1723161255342,"m":false,"M":true}}' % i
        for i in (1, 2)
    ]
    deep = b"[" * 1000 + b"]" * 1000
    f = tmp_path / "session.txt"
    f.write_bytes(b"".join(b"1723161255343000000 %s\n" % x for x in (good[0], deep, good[1])))
    with Writer(tmp_path / "a.sqlite") as w:
        rep = import_file(w, f, progress=False)
        ids = [r[0] for r in w.conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
        dead = w.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    assert (rep.kind, ids, dead, rep.rejected) == ("frames", [1, 2], 1, 1)
