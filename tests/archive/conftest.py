"""Archive fixtures: a database spanning closed days and the open one, and the two archive
locations every test runs against (a local folder, and moto's S3 server on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lq.feeds.events import AggTrade, BookTicker, BookTop, Gap, Kline, Trade
from lq.store import Batch, Writer

DAY = 86_400_000_000


def today_us() -> int:
    return time.time_ns() // 1000 // DAY * DAY


def make_db(
    path: Path,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    *,
    days: int = 3,
    per_day: int = 400,
    seed: int = 1,
    extras: bool = True,
) -> Path:
    """Trades and book tickers of ``symbols`` over ``days`` closed UTC days and today's first
    minutes (the open interval, which is never archived)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    start = today_us() - days * DAY
    now = time.time_ns() // 1000
    with Writer(path, source="import") as w:
        for k, sym in enumerate(symbols):
            trades, books = [], []
            tid = 1000 * (k + 1)
            for d in range(days + 1):
                base = start + d * DAY
                n = per_day if d < days else per_day // 4
                offs = np.sort(rng.integers(0, DAY // 50 if d < days else 1, n))
                for o in offs:
                    ts = int(base + o * (1 if d == days else 50))
                    if ts > now:
                        continue
                    tid += 1 + int(rng.integers(0, 2))
                    px = float(np.round(60_000 + rng.normal(0, 50), 2))
                    trades.append(
                        Trade(
                            symbol=sym,
                            trade_id=tid,
                            price=px,
                            qty=float(np.round(rng.random(), 4)) + 0.001,
                            ts=ts,
                            event_ts=ts + 5,
                            is_buyer_maker=bool(rng.integers(0, 2)),
                            recv_ts=ts + 9,
                        )
                    )
                    if tid % 3 == 0:
                        books.append(
                            BookTicker(
                                symbol=sym,
                                update_id=tid,
                                bid=px - 0.01,
                                bid_qty=1.0,
                                ask=px + 0.01,
                                ask_qty=2.0,
                                ts=ts,
                                recv_ts=ts + 9,
                            )
                        )
            w.write_batch(Batch(trades=trades, book_tickers=books))
        if extras:
            w.write_batch(_extras(symbols, start, days, rng))
    return path


def _extras(symbols: tuple[str, ...], start: int, days: int, rng: object) -> Batch:
    """Klines (of a kline-only symbol, SOLUSDT, and of the first symbol's minutes without
    trades), book snapshots, aggregated trades and gaps (settled and still open)."""
    sym = symbols[0]
    klines, tops, aggs, gaps = [], [], [], []
    for d in range(days):
        base = start + d * DAY
        for m in range(0, 24 * 60, 97):
            for ks in ("SOLUSDT", sym):
                o = base + m * 60_000_000 + (DAY // 2 if ks == sym else 0)
                px = 100.0 + m % 13
                klines.append(
                    Kline(
                        symbol=ks,
                        interval="1m",
                        open_time=o,
                        close_time=o + 59_999_999,
                        open=px,
                        high=px + 1,
                        low=px - 1,
                        close=px + 0.5,
                        volume=3.0 + m % 5,
                        quote_volume=300.0 + m,
                        trades=7 + m % 3,
                        taker_buy_volume=1.0,
                        taker_buy_quote_volume=100.0,
                        first_id=m,
                        last_id=m + 6,
                        closed=True,
                        event_ts=o + 60_000_000,
                    )
                )
        for k in range(20):
            ts = base + k * 3_600_000_000 + 17
            tops.append(
                BookTop(
                    symbol=sym,
                    update_id=10_000 * d + k,
                    ts=ts,
                    recv_ts=ts + 5,
                    levels=3,
                    bids=((100.0 - k * 0.01, 1.5), (99.9, 2.0)),
                    asks=((100.1, 1.0), (100.2 + k * 0.01, 0.5), (100.3, 4.0)),
                )
            )
            aggs.append(
                AggTrade(
                    symbol=symbols[-1],
                    agg_id=1000 * d + k,
                    first_id=k,
                    last_id=k,
                    price=50.0 + k,
                    qty=0.5,
                    ts=ts,
                    event_ts=ts,
                    is_buyer_maker=bool(k % 2),
                )
            )
        for k, status in enumerate(("filled", "unfilled", "found")):
            gaps.append(
                Gap(
                    symbol=sym,
                    kind="trade",
                    first_missing=100 * d + 10 * k,
                    last_missing=100 * d + 10 * k + 3,
                    status=status,  # type: ignore[arg-type]
                    detected_ts=base + 1000 + k,
                )
            )
    return Batch(klines=klines, book_tops=tops, agg_trades=aggs, gaps=gaps)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = pytest.importorskip("moto.server")
    port = _free_port()
    srv = server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.stop()


@pytest.fixture(params=["local", "s3"])
def location(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """An empty archive location: a local folder, or a fresh bucket on moto's S3 server
    (credentials and endpoint in the environment, as a user sets them)."""
    if request.param == "local":
        return str(tmp_path / "archive")
    endpoint = request.getfixturevalue("moto_endpoint")
    pytest.importorskip("s3fs")
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    import boto3

    bucket = f"lq-{os.getpid()}-{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lq"


@pytest.fixture
def db_and_ref(tmp_path: Path) -> tuple[Path, Path]:
    """A database and an untouched copy of it (the reference: SQLite alone)."""
    db = make_db(tmp_path / "lq.sqlite")
    ref = tmp_path / "ref.sqlite"
    shutil.copy(db, ref)
    return db, ref
