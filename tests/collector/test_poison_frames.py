"""Poison frames over a real WebSocket to a real collector writing a real SQLite file.

A small websockets server on 127.0.0.1 plays a script: normal BTCUSDT trades, aggTrades,
book tickers and klines, with one frame of every poison kind of issue 10 among them (ids
>= 2**63 in every id field, 1e308 and 1e-320, klines no exchange sends, wrong, lower-case,
HTML and RTL-override symbols, a crossed book, an aggTrade with f > l, a frame nested 1,000
deep) and USD-M futures marker trades. Afterwards every normal row is stored, every poison
frame is in ``dead_letters`` (and nowhere else), the markers are skipped and counted (not
dead-lettered, never seen by an event hook), and storage never froze (no write errors, the
trades after the poison are stored). Today's main stored or choked on most of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from lq.collector import Collector
from lq.feeds.events import MAX_DEAD_RAW, Trade, TradeMarker

T0 = 1_723_161_255_000  # 2024-08-08 23:54:15 UTC, ms
MIN0 = T0 // 60_000 * 60_000
FIRST = 3_735_683_259
N = 120
MARKERS = {FIRST + 50: "NA", FIRST + 70: "INSURANCE_FUND"}
BIG = 2**63


def _trade(tid: int, **kw: Any) -> dict[str, Any]:
    k = tid - FIRST
    d = {"e": "trade", "E": T0 + k + 1, "s": "BTCUSDT", "t": tid,
         "p": f"{61837.63 + (k % 9) * 0.01:.8f}", "q": f"{0.001 * (1 + k % 3):.8f}",
         "T": T0 + k, "m": k % 2 == 0, "M": True}  # fmt: skip
    d.update(kw)
    return d


def _agg(n: int, **kw: Any) -> dict[str, Any]:
    d = {"e": "aggTrade", "E": T0 + n, "s": "BTCUSDT", "a": 900 + n, "p": "61837.63000000",
         "q": "0.00200000", "f": FIRST + 2 * n, "l": FIRST + 2 * n + 1, "T": T0 + n, "m": True,
         "M": True}  # fmt: skip
    d.update(kw)
    return d


def _book(n: int, **kw: Any) -> dict[str, Any]:
    d = {"u": 400_900_217 + n, "s": "BTCUSDT", "b": "61837.62000000", "B": "1.50000000",
         "a": "61837.63000000", "A": "0.40000000"}  # fmt: skip
    d.update(kw)
    return d


def _kline(j: int, **k: Any) -> dict[str, Any]:
    body = {"t": MIN0 + j * 60_000, "T": MIN0 + j * 60_000 + 59_999, "s": "BTCUSDT", "i": "1m",
            "f": FIRST, "L": FIRST + 99, "o": "61837.63", "c": "61837.70", "h": "61837.90",
            "l": "61837.60", "v": "2.0", "n": 100, "x": True, "q": "123675.4", "V": "1.0",
            "Q": "61837.7", "B": "0"}  # fmt: skip
    body.update(k)
    return {"e": "kline", "E": MIN0 + j * 60_000 + 60_001, "s": "BTCUSDT", "k": body}


def _c(stream: str, data: Any) -> str:
    return json.dumps({"stream": stream, "data": data}, ensure_ascii=False)


T, A, B, K = "btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@kline_1m"

# (label, frame): every one must end in dead_letters, and only there
POISON: list[tuple[str, str]] = [
    ("trade id 2**63", _c(T, _trade(BIG))),
    ("trade id 2**64+5", _c(T, _trade(2**64 + 5))),
    ("qty 1e308", _c(T, _trade(FIRST + 5000, q="1e308"))),
    ("price 1e308", _c(T, _trade(FIRST + 5001, p="1e308"))),
    ("price 1e-320", _c(T, _trade(FIRST + 5002, p="1e-320"))),
    ("qty 1e-320", _c(T, _trade(FIRST + 5003, q="1e-320"))),
    ("trade time 1970", _c(T, _trade(FIRST + 5004, T=5))),
    # an id in int64 but a jump no venue can make: trusted, it raised the stream's last id for
    # good (a 9.2e18-id unfilled hole; after a restart every later trade dropped)
    ("trade id 2**63-1", _c(T, _trade(BIG - 1, E=T0 + 30, T=T0 + 29))),
    (
        "trade id 2**62, a marker",
        _c(T, {k: v for k, v in _trade(2**62, E=T0 + 31, T=T0 + 30, X="NA").items() if k != "M"}),
    ),
    ("aggTrade a 2**63-1", _c(A, _agg(1, a=BIG - 1))),
    ("a 2 MB frame", _c(T, _trade(FIRST + 7000, s="X" * 2_000_000))),
    ("aggTrade a 2**63", _c(A, _agg(0, a=BIG))),
    ("aggTrade f 2**63", _c(A, _agg(0, f=BIG, l=BIG))),
    ("aggTrade l 2**63", _c(A, _agg(0, l=BIG))),
    ("aggTrade f > l", _c(A, _agg(0, a=1_000_000, f=FIRST + 9, l=FIRST + 3))),
    ("bookTicker u 2**63", _c(B, _book(0, u=BIG))),
    ("crossed book", _c(B, _book(1, b="61840.00000000", a="61837.63000000"))),
    ("book qty 1e-320", _c(B, _book(2, B="1e-320"))),
    ("kline t 2**63", _c(K, _kline(0, t=BIG))),
    ("kline T 2**63", _c(K, _kline(0, T=BIG))),
    ("kline f 2**63", _c(K, _kline(0, f=BIG))),
    ("kline L 2**63", _c(K, _kline(0, L=BIG))),
    ("kline n 2**63", _c(K, _kline(0, n=BIG))),
    ("kline zero prices", _c(K, _kline(0, o="0", l="0"))),
    ("kline high < low", _c(K, _kline(0, h="61800.0", l="61900.0"))),
    ("kline absurd open_time", _c(K, _kline(0, t=1, T=59_999))),
    ("kline emoji interval", _c(K, _kline(0, i="\U0001f680"))),
    ("kline span != interval", _c(K, _kline(0, T=MIN0 + 299_999))),
    ("kline quote volume", _c(K, _kline(0, q="9.0"))),
    ("kline price 1e308", _c(K, _kline(0, h="1e308"))),
    ("symbol of another stream", _c(T, _trade(FIRST + 6000, s="ETHUSDT"))),
    ("lower-case symbol", _c(T, _trade(FIRST + 6001, s="btcusdt"))),
    ("lower-case stream", _c("BTCUSDT@trade", _trade(FIRST + 6002))),
    ("HTML symbol", _c("<script>@trade", _trade(FIRST + 6003, s="<SCRIPT>"))),
    ("RTL override symbol", _c("btc\u202eusdt@trade", _trade(FIRST + 6004, s="BTC\u202eUSDT"))),
    ("raw frame, unsubscribed symbol", json.dumps(_trade(FIRST + 6005, s="DOGEUSDT"))),
    ("nested 1000 deep", '{"stream":"btcusdt@trade","data":' + "[" * 1000 + "]" * 1000 + "}"),
    ("nested 1000 deep, raw", '{"e":' * 1000 + "1" + "}" * 1000),
    ("not JSON", "\x00\xff garbage"),
]


def _script() -> list[str]:
    frames: list[str] = []
    poison = iter(POISON)
    for k in range(N):
        tid = FIRST + k
        x = MARKERS.get(tid)
        if x is None:
            frames.append(_c(T, _trade(tid)))
        else:  # USD-M shape: X, no M; an NA marker has p = q = 0
            p, q = ("0", "0") if x == "NA" else ("61000.00", "0.002")
            marker = {k: v for k, v in _trade(tid, X=x, p=p, q=q).items() if k != "M"}
            frames.append(_c(T, marker))
        if k % 2 == 0:
            frames.append(_c(B, _book(10 + k)))
        if k % 4 == 0 and k // 4 < 20:
            frames.append(_c(A, _agg(k // 4)))
        if k % 3 == 1:
            bad = next(poison, None)
            if bad is not None:
                frames.append(bad[1])
    frames.extend(p for _, p in poison)
    frames.extend(_c(K, _kline(i)) for i in range(3))
    frames.extend(_c(T, _trade(FIRST + N + j)) for j in range(5))  # after everything
    return frames


async def _serve(frames: list[str]) -> Any:
    async def handler(conn: ServerConnection) -> None:
        for f in frames:
            await conn.send(f)
        with contextlib.suppress(Exception):
            await conn.wait_closed()

    return await serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None)


def _normal_ids() -> list[int]:
    return [FIRST + k for k in range(N + 5) if FIRST + k not in MARKERS]


def _collect(
    db: Any,
    frames: list[str],
    channels: list[str],
    done: Any,
    *,
    timeout: float = 30,
    event_hooks: Any = (),
    **client_options: Any,
) -> Collector:
    """A collector on a server playing ``frames`` until ``done(collector)`` (then 0.3 s for the
    last flush), stopped; ``client_options`` add to the client's."""

    async def main() -> Collector:
        server = await _serve(frames)
        port = server.sockets[0].getsockname()[1]
        col = Collector(
            db=db, source="live", symbols=["BTCUSDT"], channels=channels,
            ws_url=f"ws://127.0.0.1:{port}", rest_url=f"http://127.0.0.1:{port}",
            client_options={"compression": None, "backfill_delay": 0.0, **client_options},
            event_hooks=list(event_hooks),
        )  # fmt: skip
        col.start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not done(col):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            await col.stop()
            server.close()
        return col

    return asyncio.run(main())


def test_poison_frames_are_dead_letters_and_every_normal_row_is_stored(tmp_path):
    db = tmp_path / "poison.sqlite"
    seen: list[object] = []
    want = len(_normal_ids())
    col = _collect(
        db,
        _script(),
        ["trade", "aggTrade", "bookTicker", "kline_1m"],
        lambda c: c.stats.trades_new >= want and c.stats.dead_letters >= len(POISON),
        timeout=60,
        event_hooks=[seen.append],
    )
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT trade_id FROM ticks ORDER BY trade_id")]
    assert ids == _normal_ids()  # every normal trade, the ones after the poison too
    assert conn.execute("SELECT sum(trades) FROM bars_1s").fetchone()[0] == len(ids)
    assert conn.execute("SELECT count(*) FROM gaps").fetchone()[0] == 0  # markers: no holes
    assert conn.execute("SELECT count(*) FROM agg_trades").fetchone()[0] == 20
    assert conn.execute("SELECT count(*) FROM book_tickers").fetchone()[0] == N // 2
    assert conn.execute("SELECT count(*) FROM klines").fetchone()[0] == 3
    dead = conn.execute("SELECT reason, raw FROM dead_letters").fetchall()
    conn.close()
    assert len(dead) == len(POISON), [r for r, _ in dead]
    raws = [raw for _, raw in dead]
    for label, frame in POISON:
        text = frame.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        if len(text) > MAX_DEAD_RAW:  # kept up to the cap, saying how much is left out
            text = f"{text[:MAX_DEAD_RAW]}... [cut: {len(text) - MAX_DEAD_RAW:,} more characters"
            assert any(r.startswith(text) for r in raws), f"{label} is not in dead_letters"
            continue
        assert text in raws, f"{label} is not in dead_letters"
    assert all(reason for reason, _ in dead)
    assert max(len(r) for r in raws) < MAX_DEAD_RAW + 100
    jumps = [r for r, _ in dead if "max_jump" in r]
    assert len(jumps) == 3 and all("not a real id" in r for r in jumps), jumps
    assert not any('"X":"NA"' in r or "INSURANCE_FUND" in r for r in raws)  # not errors
    st = col.client.status
    assert st.markers_skipped == 3 and st.rejected == len(POISON)
    assert col.stats.write_errors == 0
    # the hooks saw every normal trade, and never a marker or a price of 0
    trades = [e for e in seen if isinstance(e, Trade)]
    assert sorted(t.trade_id for t in trades) == _normal_ids()
    assert not any(isinstance(e, TradeMarker) for e in seen)
    assert min(t.price for t in trades) > 61_000


def test_one_id_sent_twice_with_another_price_is_a_dead_letter_naming_both(tmp_path):
    # the sequencer dropped the second as a duplicate: a conflicting trade vanished uncounted
    db = tmp_path / "conflict.sqlite"
    frames = [_c(T, _trade(FIRST + k)) for k in range(10)]
    frames.insert(6, _c(T, _trade(FIRST + 3, p="70000.00000000")))  # id 3 again, other price
    frames.insert(8, _c(T, _trade(FIRST + 4)))  # id 4 again, the same: a plain duplicate

    col = _collect(db, frames, ["trade"], lambda c: c.stats.trades_new >= 10)
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT trade_id, price FROM ticks ORDER BY 1").fetchall()
    dead = conn.execute("SELECT reason, raw FROM dead_letters").fetchall()
    conn.close()
    assert [i for i, _ in stored] == [FIRST + k for k in range(10)]
    assert dict(stored)[FIRST + 3] < 62_000  # the first one is kept
    [(reason, raw)] = dead
    assert f"trade {FIRST + 3} conflicts" in reason and "70000.0" in reason and "61837" in reason
    assert "70000" in raw
    # one duplicate: the conflicting trade is a dead letter, counted once, not also a duplicate
    assert col.client.status.duplicates_dropped == 1
    assert col.duplicates == 1
    assert col.stats.dead_letters == 1


def test_a_bogus_first_id_and_bogus_aggregate_trade_ids_are_dead_letters(tmp_path):
    # a stream's first id was trusted without a bound: t = 2**62 first made every real trade
    # after it a "duplicate" (restarts too); an aggregate with f = l = 2**62 was stored and
    # left a 4.6e18-id "unfilled" hole over trade ids
    db = tmp_path / "first.sqlite"
    frames = [_c(T, _trade(2**62, E=T0 + 1, T=T0)), _c(A, _agg(0, a=2**62))]
    frames += [_c(T, _trade(FIRST + k)) for k in range(8)]
    frames += [_c(A, _agg(n)) for n in range(3)]
    frames.append(_c(A, _agg(3, f=2**62, l=2**62)))  # a = 903 is taken by nothing else
    frames.append(_c(A, _agg(4, f=FIRST + 8, l=2**62 + 5)))
    frames += [_c(A, _agg(n)) for n in range(5, 7)]

    col = _collect(
        db, frames, ["trade", "aggTrade"], lambda c: c.stats.dead_letters >= 4, backfill_delay=30.0
    )
    conn = sqlite3.connect(db)
    ids = [i for (i,) in conn.execute("SELECT trade_id FROM ticks ORDER BY 1")]
    aggs = [i for (i,) in conn.execute("SELECT agg_id FROM agg_trades ORDER BY 1")]
    dead = [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]
    big = conn.execute("SELECT count(*) FROM gaps WHERE last_missing - first_missing > 1e6")
    big = big.fetchone()[0]
    conn.close()
    assert ids == [FIRST + k for k in range(8)]
    assert aggs == [900, 901, 902, 905, 906]  # 903 and 904 refused; their ids open a hole
    assert len(dead) == 4 and all("max_jump" in r for r in dead), dead
    assert big == 0
    assert col.duplicates == 0
