"""QA, issue 12: ``--channels`` applies to the non-Binance feeds: a channel the venue does not
offer is refused in one line naming the ones it does; a supported one is honoured."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lq.collector import Collector
from lq.collector.core import FeedSpec
from lq.errors import ValidationError


def _lq(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "LQ_CONFIG": os.devnull},
    )


@pytest.mark.parametrize(
    ("venue", "symbol"), [("coinbase", "BTC-USD"), ("kraken", "BTC/USD"), ("okx", "BTC-USDT")]
)
def test_an_unoffered_channel_is_refused_in_one_line_naming_the_offered_ones(
    venue: str, symbol: str, tmp_path: Path
) -> None:
    db = tmp_path / "x.sqlite"
    r = _lq("collect", "--db", str(db), "--source", "local", "--venue", venue,
            "--symbols", symbol, "--channels", "trade,bookTicker", timeout=40)  # fmt: skip
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("lq collect: error: "), lines[0]
    assert "bookTicker" in lines[0] and "offers: trade" in lines[0], lines[0]
    assert not db.exists() or db.stat().st_size < 200_000  # nothing collected


def test_mixed_venues_refuse_a_binance_only_channel_for_the_others() -> None:
    from lq.collector.cli import feeds_from_args
    from lq.config import Settings

    settings = Settings()
    ns = argparse.Namespace(
        venue=None, symbols=["binance:BTCUSDT", "coinbase:BTC-USD"], channels="trade,aggTrade"
    )
    with pytest.raises(ValidationError, match="coinbase does not offer aggTrade; it offers: trade"):
        feeds_from_args(ns, settings)
    ns.channels = "trade"
    feeds = feeds_from_args(ns, settings)
    assert [(f.venue, f.channels) for f in feeds] == [
        ("binance", ("trade",)),
        ("coinbase", ("trade",)),
    ]


def test_a_configured_feed_with_an_unoffered_channel_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError, match="okx does not offer kline_1m; it offers: trade"):
        Collector(
            db=tmp_path / "x.sqlite",
            source="local",
            feeds=[FeedSpec(venue="okx", symbols=("BTC-USDT",), channels=("kline_1m",))],
        )
