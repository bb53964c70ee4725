"""``Store`` over archive + SQLite tail equals ``Store`` over the SQLite file alone before
compaction, for random ranges, symbols and intervals (hypothesis)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import DAY, make_db, today_us
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lq.store import Store
from lq.store.archive import archive_db


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Store]:
    """(archive + tail, SQLite alone): the first two closed days archived, the third closed
    day and today left in SQLite."""
    d = tmp_path_factory.mktemp("reads")
    db = make_db(d / "lq.sqlite", days=3, per_day=300, seed=7)
    ref = d / "ref.sqlite"
    shutil.copy(db, ref)
    res = archive_db(db, d / "arch", now_us=today_us() - DAY)
    assert res.rows["ticks"] == 2 * 2 * 300 and sum(res.deleted.values()) == res.total_rows
    return Store(db, archive=str(d / "arch")), Store(ref, archive=False)


SPAN0 = today_us() - 3 * DAY - DAY // 2
times = st.one_of(st.none(), st.integers(SPAN0, today_us() + DAY))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=times,
    end=times,
    symbol=st.sampled_from(["BTCUSDT", "ethusdt", "SOLUSDT"]),
    interval=st.sampled_from(["1s", "7s", "1m", "5m", "1h", "1d"]),
    limit=st.one_of(st.none(), st.integers(0, 500)),
)
def test_store_over_archive_and_tail_equals_sqlite_alone(
    stores: tuple[Store, Store],
    start: int | None,
    end: int | None,
    symbol: str,
    interval: str,
    limit: int | None,
) -> None:
    union, alone = stores
    pd.testing.assert_frame_equal(
        union.ticks(symbol, start, end, limit=limit), alone.ticks(symbol, start, end, limit=limit)
    )
    pd.testing.assert_frame_equal(
        union.bars(symbol, interval, start, end), alone.bars(symbol, interval, start, end)
    )
    pd.testing.assert_frame_equal(
        union.book_tickers(symbol, start, end), alone.book_tickers(symbol, start, end)
    )


def test_the_archive_really_is_read(stores: tuple[Store, Store]) -> None:
    union, alone = stores
    assert union.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] < alone.count("ticks")
    pd.testing.assert_frame_equal(union.ticks("BTCUSDT"), alone.ticks("BTCUSDT"))
    assert len(alone.ticks("BTCUSDT", end=today_us() - 2 * DAY)) > 0
    assert union.symbols() == alone.symbols()
    pd.testing.assert_frame_equal(union.gaps(), alone.gaps())


def test_random_ranges_equal_sqlite_alone_on_both_locations(tmp_path: Path, location: str) -> None:
    """The same property, seeded, on a local folder and on S3 (moto), through one code path."""
    import numpy as np

    db = make_db(tmp_path / "lq.sqlite", days=3, per_day=150, seed=11)
    ref = tmp_path / "ref.sqlite"
    shutil.copy(db, ref)
    archive_db(db, location, now_us=today_us() - DAY)
    union, alone = Store(db, archive=location), Store(ref, archive=False)
    rng = np.random.default_rng(16)
    for _ in range(12):
        a, b = sorted(int(x) for x in rng.integers(SPAN0, today_us() + DAY, 2))
        sym = str(rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"]))
        iv = str(rng.choice(["1s", "1m", "1h"]))
        pd.testing.assert_frame_equal(union.ticks(sym, a, b), alone.ticks(sym, a, b))
        pd.testing.assert_frame_equal(union.bars(sym, iv, a, b), alone.bars(sym, iv, a, b))
        pd.testing.assert_frame_equal(union.book_tickers(sym, a, b), alone.book_tickers(sym, a, b))
    assert (
        len(union.ticks("BTCUSDT", end=today_us() - DAY))
        == len(alone.ticks("BTCUSDT", end=today_us() - DAY))
        > 0
    )
    assert union.conn.execute("SELECT count(*) FROM ticks").fetchone()[0] < alone.count("ticks")
