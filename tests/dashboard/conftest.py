from __future__ import annotations

from pathlib import Path

import pytest

from lq.feeds import Parser
from lq.feeds.events import Trade
from lq.feeds.recording import read_frames

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"


def recorded_trades() -> list[Trade]:
    """Every trade of the two real recordings (BTCUSDT 9,757, ETHUSDT 6,106), by time."""
    files = sorted(DATA.glob("spot_*_20240808.gz"))
    if len(files) < 2:
        pytest.skip(f"real recordings not found at {DATA.resolve()} (shared/ beside the repo)")
    parser = Parser()
    trades = [
        e
        for f in files
        for ns, raw in read_frames(f)
        for e in parser.parse(raw, recv_ts=ns // 1000)
        if isinstance(e, Trade)
    ]
    return sorted(trades, key=lambda t: (t.ts, t.trade_id))


@pytest.fixture(scope="session")
def trades() -> list[Trade]:
    return recorded_trades()


@pytest.fixture
def real_db(tmp_path: Path, trades: list[Trade]) -> Path:
    from lq.store import Writer

    db = tmp_path / "real.sqlite"
    with Writer(db) as w:
        w.write_trades(trades)
    return db
