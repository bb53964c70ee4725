"""One collector, several venues: one writer, one file, one loop/sequencer/status row per feed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lq.collector import Collector, FeedSpec
from lq.exchange import LocalExchange, SimulatorSource
from lq.venues import registry

from .binance.conftest import run, wait_until
from .toy_venue import make_toy


@pytest.fixture
def toys() -> Any:
    a = registry.register(make_toy("contiguous"), replace=True)
    b = registry.register(make_toy("none"), replace=True)
    yield a, b
    registry.unregister("toy")
    registry.unregister("toynoid")


def _stored(db: Path) -> dict[tuple[str, str], list[int]]:
    con = sqlite3.connect(db)
    out: dict[tuple[str, str], list[int]] = {}
    for ex, sym, tid in con.execute(
        "SELECT exchange, symbol, trade_id FROM ticks ORDER BY exchange, symbol, trade_id"
    ):
        out.setdefault((ex, sym), []).append(tid)
    con.close()
    return out


def test_two_binance_protocol_exchanges_and_a_no_ids_venue_in_one_collector(
    toys: Any, tmp_path: Path
) -> None:
    """Two local Binance exchanges (different markets) under two labels, plus the fake venue
    without exact ids: every Binance-protocol trade is stored under its own label with the
    ids equal to its exchange's truth, and each feed has its own status row."""
    _, toynoid = toys
    db = tmp_path / "m.sqlite"

    async def main() -> dict[str, Any]:
        a = LocalExchange(source=SimulatorSource(symbols=["BTCUSDT"], seed=1, rate=40.0))
        b = LocalExchange(source=SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=2, rate=40.0))
        from lq.exchange.multi import VenueFeedSource

        nsim = SimulatorSource(symbols=["BTCUSDT"], seed=3, rate=40.0)
        n = toynoid.local_exchange(
            source=VenueFeedSource(simulator=nsim, symbol_map={"BTC-USD": "BTCUSDT"})
        )
        for ex in (a, b, n):
            await ex.start()
        c = Collector(
            db=db,
            source="live",
            feeds=[
                FeedSpec(
                    venue="binance",
                    symbols=("BTCUSDT",),
                    label="bin-a",
                    ws_url=a.ws_url,
                    rest_url=a.rest_url,
                ),
                FeedSpec(
                    venue="binance",
                    symbols=("BTCUSDT", "ETHUSDT"),
                    label="bin-b",
                    ws_url=b.ws_url,
                    rest_url=b.rest_url,
                ),
                FeedSpec(
                    venue="toynoid",
                    symbols=("BTC-USD",),
                    label="noid",
                    ws_url=n.ws_url,
                    rest_url=n.rest_url,
                ),
            ],
            client_options={"compression": None, "backfill_delay": 0.05},
        )
        c.start()
        try:
            await c.wait_started(60)
            await wait_until(lambda: c.stats.trades_new > 60, 40, "trades")
            a.inject("skip_ids", symbol="BTCUSDT", count=3)
            b.inject("drop_tcp")
            n0 = c.stats.trades_new
            await wait_until(lambda: c.stats.trades_new > n0 + 60, 40, "more trades")
            await wait_until(
                lambda: (
                    all(
                        not c.clients[label].sequencer.holes(sym, "trade")
                        for label, sym in (
                            ("bin-a", "BTCUSDT"),
                            ("bin-b", "BTCUSDT"),
                            ("bin-b", "ETHUSDT"),
                        )
                    )
                    and c.clients["bin-b"].status.state == "live"
                ),
                40,
                "healed",
            )
            await asyncio.sleep(0.3)  # the next flush stores what backfill delivered
        finally:
            await c.stop()
            truth = {
                ("bin-a", "BTCUSDT"): [t.trade_id for t in a.trades("BTCUSDT")],
                ("bin-b", "BTCUSDT"): [t.trade_id for t in b.trades("BTCUSDT")],
                ("bin-b", "ETHUSDT"): [t.trade_id for t in b.trades("ETHUSDT")],
            }
            for ex in (a, b, n):
                await ex.stop()
        return truth

    truth = run(main(), timeout=240)
    stored = _stored(db)
    assert set(stored) == {*truth, ("noid", "BTC-USD")}
    for key, ids in truth.items():
        got = stored[key]
        assert got == [i for i in ids if got[0] <= i <= got[-1]], key
    con = sqlite3.connect(db)
    rows = {ex: json.loads(d) for ex, d in con.execute("SELECT exchange, detail FROM feed_status")}
    gaps = con.execute("SELECT DISTINCT exchange FROM gaps").fetchall()
    con.close()
    assert set(rows) == {"bin-a", "bin-b", "noid"}
    assert rows["noid"]["gap_check"] == "not checkable"
    assert rows["bin-a"]["gap_check"] == "checked" and rows["bin-a"]["gaps_filled"] >= 1
    assert rows["bin-b"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert ("bin-a",) in gaps and ("noid",) not in gaps  # bin-b: its reconnect may open one


def test_local_source_serves_several_venues_from_one_price_process(
    toys: Any, tmp_path: Path
) -> None:
    """``source="local"`` with Binance and the toy venue: each on its own port, labelled
    ``local-<venue>``, the toy venue's prices follow Binance's (same process, small noise)
    and its times lag."""
    db = tmp_path / "l.sqlite"

    async def main() -> None:
        c = Collector(
            db=db,
            source="local",
            feeds=[
                FeedSpec(venue="binance", symbols=("BTCUSDT",)),
                FeedSpec(venue="toy", symbols=("BTC-USD",)),
            ],
            simulator={"seed": 11, "rate": 50.0},
        )
        c.start()
        try:
            await c.wait_started(60)
            assert set(c.exchanges) == {"local-binance", "local-toy"}
            ports = {ex.port for ex in c.exchanges.values()}
            assert len(ports) == 2
            await wait_until(lambda: c.stats.trades_new > 150, 40, "trades")
        finally:
            await c.stop()

    run(main(), timeout=240)
    con = sqlite3.connect(db)
    px = dict(con.execute("SELECT exchange, avg(price) FROM ticks GROUP BY exchange").fetchall())
    labels = {r[0] for r in con.execute("SELECT exchange FROM feed_status")}
    con.close()
    assert labels == {"local-binance", "local-toy"}
    assert abs(px["local-toy"] / px["local-binance"] - 1) < 0.01  # one price process


def test_cli_symbols_per_venue_and_config_feed_tables(toys: Any, tmp_path: Path) -> None:
    from lq.cli import build_parser
    from lq.collector.cli import collector_from_args, feeds_from_args
    from lq.config import load_settings
    from lq.errors import ValidationError

    parser, _ = build_parser("collect")
    settings = load_settings(None, env={})
    args = parser.parse_args(
        ["collect", "--symbols", "binance:btcusdt,ETHUSDT", "--symbols", "toy:BTC-USD",
         "--symbols", "SOLUSDT", "--db", str(tmp_path / "x")]
    )  # fmt: skip
    feeds = feeds_from_args(args, settings)
    assert [(f.venue, f.symbols) for f in feeds] == [
        ("binance", ("btcusdt", "ETHUSDT", "SOLUSDT")),
        ("toy", ("BTC-USD",)),
    ]
    c = collector_from_args(args, settings)
    assert [(f.venue, f.label, f.symbols) for f in c.feeds] == [
        ("binance", "binance", ("BTCUSDT", "ETHUSDT", "SOLUSDT")),
        ("toy", "toy", ("BTC-USD",)),
    ]
    args = parser.parse_args(["collect", "--symbols", "nope:BTC"])
    with pytest.raises(ValidationError, match="unknown venue 'nope'"):
        feeds_from_args(args, settings)
    args = parser.parse_args(
        ["collect", "--symbols", "binance:BTCUSDT", "--symbols", "toy:BTC-USD",
         "--ws-url", "ws://127.0.0.1:1"]
    )  # fmt: skip
    with pytest.raises(ValidationError, match=r"collector\.feeds"):
        collector_from_args(args, settings)
    args = parser.parse_args(["collect", "--venue", "toy", "--symbols", "ETH-USD"])
    assert [(f.venue, f.symbols) for f in feeds_from_args(args, settings)] == [
        ("toy", ("ETH-USD",))
    ]

    cfg = tmp_path / "lq.toml"
    cfg.write_text(
        '[collector]\nsource = "local"\n\n'
        '[[collector.feeds]]\nvenue = "binance"\nsymbols = ["BTCUSDT"]\n\n'
        '[[collector.feeds]]\nvenue = "toy"\nsymbols = ["BTC-USD", "ETH-USD"]\nlabel = "t"\n'
    )
    s2 = load_settings(cfg, env={})
    assert s2.collector.feeds[1] == {
        "venue": "toy",
        "symbols": ("BTC-USD", "ETH-USD"),
        "label": "t",
    }
    assert "[[collector.feeds]]" in s2.to_toml()
    c = collector_from_args(parser.parse_args(["collect", "--db", str(tmp_path / "y")]), s2)
    assert [(f.label, f.symbols) for f in c.feeds] == [
        ("local-binance", ("BTCUSDT",)),
        ("t", ("BTC-USD", "ETH-USD")),
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[collector.feeds]]\nvenue = "toy"\nsymbol = ["BTC-USD"]\n')
    from lq.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(bad, env={})


def test_lq_dashboard_forwards_every_venue_list_to_its_collector(tmp_path: Path) -> None:
    from lq.cli import build_parser
    from lq.dashboard.cli import _collector_command

    parser, _ = build_parser("dashboard")
    args = parser.parse_args(
        ["dashboard", "--source", "local", "--symbols", "binance:BTCUSDT",
         "--symbols", "coinbase:BTC-USD", "--symbols", "okx:BTC-USDT"]
    )  # fmt: skip
    cmd = _collector_command(args, tmp_path / "d.sqlite")
    i = cmd.index("collect")
    assert cmd[i + 1 : i + 3] == ["--db", str(tmp_path / "d.sqlite")]
    pairs = [(cmd[k], cmd[k + 1]) for k in range(i, len(cmd) - 1) if cmd[k] == "--symbols"]
    assert pairs == [
        ("--symbols", "binance:BTCUSDT"),
        ("--symbols", "coinbase:BTC-USD"),
        ("--symbols", "okx:BTC-USDT"),
    ]
    assert cmd[cmd.index("--source") : cmd.index("--source") + 2] == ["--source", "local"]
