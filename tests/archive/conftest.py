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

from lq.feeds.events import BookTicker, Trade
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
    return path


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
