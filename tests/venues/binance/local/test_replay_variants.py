"""Replay keeps each frame's exchange time, for every payload variant, end to end.

A recording of USD-M futures frames (the shapes of shared/reference/binance-protocol.md §4.1:
``@trade`` with ``X`` and no ``M``, ``@bookTicker`` with ``e``/``E``/``T``) is replayed by a
real ``lq collect --source replay:FILE --endpoint usdm`` process (USD-M's rules: its
``/market`` and ``/public`` routes, aggregates that leave non-market trades out) into a real
SQLite file. The recorder's clock
is set 1.27 s behind the exchange (as in the real recording's README) and everything is from
2024, so a row stamped with the replay's or the recorder's clock cannot pass for ``T``.
Expected values are computed here from the frames written, by hand-readable arithmetic.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

T0 = 1_723_161_256_000  # 2024-08-08 23:54:16 UTC, ms
SKEW_NS = -1_270_000_000  # the recorder's clock runs 1.27 s behind the exchange
FIRST_ID = 5_266_583_935
N = 150  # one trade a second: 150 s of market time, klines of three minutes
MARKERS = {FIRST_ID + 40: "NA", FIRST_ID + 90: "INSURANCE_FUND"}


def _recording(path: Path) -> tuple[list[dict], list[dict], list[int]]:
    """Write the recording; return the market trades, the quotes and the marker ids."""
    lines, trades, quotes = [], [], []
    for k in range(N):
        tid = FIRST_ID + k
        t_ms = T0 + k * 1000 + 7
        x = MARKERS.get(tid, "MARKET")
        price = "0" if x == "NA" else f"{61800.0 + (k % 13) * 0.1:.2f}"
        qty = "0" if x == "NA" else f"{0.001 * (1 + k % 4):.3f}"
        trade = {"e": "trade", "E": t_ms + 3, "T": t_ms, "s": "BTCUSDT", "t": tid, "p": price,
                 "q": qty, "X": x, "m": k % 2 == 0}  # fmt: skip
        lines.append((t_ms + 3, {"stream": "btcusdt@trade", "data": trade}))
        if x == "MARKET":
            trades.append(trade)
        q_ms = t_ms + 400
        quote = {"e": "bookTicker", "u": 5_123_107_839_020 + k, "s": "BTCUSDT",
                 "b": f"{61799.0 + k % 7:.2f}", "B": "2.507", "a": f"{61801.0 + k % 7:.2f}",
                 "A": "2.510", "T": q_ms, "E": q_ms + 2}  # fmt: skip
        lines.append((q_ms + 2, {"stream": "btcusdt@bookTicker", "data": quote}))
        quotes.append(quote)
    with path.open("w") as fh:
        for e_ms, frame in lines:
            fh.write(f"{e_ms * 1_000_000 + SKEW_NS} {json.dumps(frame, separators=(',', ':'))}\n")
    return trades, quotes, sorted(MARKERS)


def test_futures_frames_replayed_keep_t_and_markers_are_skipped(tmp_path):
    rec = tmp_path / "usdm_btcusdt.txt"
    trades, quotes, marker_ids = _recording(rec)
    db = tmp_path / "replay.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "collect", "--db", str(db), "--source", f"replay:{rec}",
         "--endpoint", "usdm", "--speed", "max", "--symbols", "BTCUSDT",
         "--channels", "trade,aggTrade,bookTicker,kline_1m", "--no-alerts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if (
                db.exists()
                and _count(db, "book_tickers") >= len(quotes)
                and _count(db, "ticks") >= len(trades)
            ):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # a last flush and feed_status row
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    conn = sqlite3.connect(db)
    # bookTicker: the transaction time T, in µs, for every quote (not the replay's clock)
    got_q = dict(conn.execute("SELECT update_id, ts FROM book_tickers").fetchall())
    assert got_q == {q["u"]: q["T"] * 1000 for q in quotes}
    # trades: T for every market trade; the markers' ids are neither stored nor holes
    got_t = dict(conn.execute("SELECT trade_id, ts FROM ticks").fetchall())
    assert got_t == {t["t"]: t["T"] * 1000 for t in trades}
    assert not set(marker_ids) & set(got_t)
    assert conn.execute("SELECT count(*) FROM gaps").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    # aggTrades are rebuilt from the trades: each one's time is its first fill's T
    t_of = {t["t"]: t["T"] * 1000 for t in trades}
    aggs = conn.execute("SELECT first_id, last_id, ts FROM agg_trades").fetchall()
    assert aggs and all(ts == t_of[f] for f, _, ts in aggs)
    assert sorted(i for f, last, _ in aggs for i in range(f, last + 1)) == sorted(t_of)
    # klines: each minute of market time holds exactly the market trades whose T is in it
    per_minute: dict[int, int] = {}
    for t in trades:
        m = t["T"] * 1000 // 60_000_000 * 60_000_000
        per_minute[m] = per_minute.get(m, 0) + 1
    klines = dict(conn.execute("SELECT open_time, trades FROM klines WHERE closed = 1").fetchall())
    assert klines and all(per_minute[m] == n for m, n in klines.items())
    detail = json.loads(
        conn.execute("SELECT detail FROM feed_status ORDER BY updated_ts DESC LIMIT 1").fetchone()[
            0
        ]
    )
    assert detail["markers_skipped"] == len(marker_ids)
    conn.close()


def _count(db: Path, table: str) -> int:
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
