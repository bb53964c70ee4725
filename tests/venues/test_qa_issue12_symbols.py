"""QA, issue 12: venue symbols are checked by the venue's naming rule at the CLI/adapter
boundary: refused in one line naming the form and an example, or normalised (Kraken XBT)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lq.collector import Collector
from lq.collector.core import FeedSpec
from lq.errors import ValidationError
from lq.venues.registry import get_venue


@pytest.mark.parametrize(
    ("venue", "symbol", "form", "example"),
    [
        ("coinbase", "BTCUSDT", "BASE-QUOTE", "BTC-USD"),
        ("coinbase", "BTC/USD", "BASE-QUOTE", "BTC-USD"),
        ("okx", "BTC-USDT-SWAP", "BASE-QUOTE", "BTC-USDT"),
        ("okx", "BTCUSDT", "BASE-QUOTE", "BTC-USDT"),
        ("kraken", "BTC-USD", "BASE/QUOTE", "BTC/USD"),
        ("kraken", "BTCUSD", "BASE/QUOTE", "BTC/USD"),
    ],
)
def test_a_symbol_off_the_venues_naming_rule_is_refused_with_the_form_and_an_example(
    venue: str, symbol: str, form: str, example: str
) -> None:
    with pytest.raises(ValidationError) as ei:
        get_venue(venue).normalize_symbols([symbol])
    text = str(ei.value)
    assert symbol in text and form in text and f"e.g. {example}" in text, text
    assert "\n" not in text


def test_the_okx_swap_is_named_a_derivative() -> None:
    with pytest.raises(ValidationError, match="derivative"):
        get_venue("okx").normalize_symbols(["BTC-USDT-SWAP"])


@pytest.mark.parametrize(
    ("venue", "given", "stored"),
    [
        ("kraken", "XBT/USD", "BTC/USD"),
        ("kraken", "xdg/eur", "DOGE/EUR"),
        ("coinbase", "btc-usd", "BTC-USD"),
        ("okx", "BTC-USDT", "BTC-USDT"),
    ],
)
def test_a_good_symbol_is_kept_or_normalised(venue: str, given: str, stored: str) -> None:
    assert get_venue(venue).normalize_symbols([given]) == [stored]


def test_the_collector_stores_kraken_xbt_under_the_ws_v2_name(tmp_path: Path) -> None:
    c = Collector(
        db=tmp_path / "x.sqlite",
        source="local",
        feeds=[FeedSpec(venue="kraken", symbols=("XBT/USD",))],
    )
    assert c.feeds[0].symbols == ("BTC/USD",)


def _lq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=40,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "LQ_CONFIG": os.devnull},
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["exchange", "--symbols", "coinbase:BTCUSDT"],
        ["collect", "--source", "local", "--venue", "okx", "--symbols", "BTC-USDT-SWAP"],
    ],
)
def test_the_cli_refuses_in_one_line(argv: list[str], tmp_path: Path) -> None:
    if argv[0] == "collect":
        argv = [*argv, "--db", str(tmp_path / "x.sqlite")]
    r = _lq(*argv)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"lq {argv[0]}: error: ") and "BASE-QUOTE" in lines[0], lines


def test_exchange_serves_a_venue_given_without_symbols() -> None:
    """``--venue coinbase`` alone serves the venue's default symbols (was: 'no symbols')."""
    import argparse

    from lq.exchange import cli as exchange_cli

    p = argparse.ArgumentParser(prog="lq")
    exchange_cli.add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["exchange", "--venue", "coinbase"])
    assert exchange_cli.venue_lists(args) == [("coinbase", ["BTC-USD", "ETH-USD"])]
