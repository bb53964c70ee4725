"""The venue framework over real sockets: registry, the shared loop driven by a venue's pure
modules (a tiny fake venue, tests/venues/toy_venue.py), its local imitation served by the
shared server core, faults, REST rate limits, and a venue without exact ids."""

from __future__ import annotations

import sqlite3
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from lq.errors import ValidationError
from lq.exchange.multi import VenueFeedSource
from lq.exchange.simulator import SimulatorSource
from lq.feeds.events import Gap, Trade
from lq.venues import registry
from lq.venues.base import ProtocolVenue

from .binance.conftest import run, wait_until
from .toy_venue import make_toy


@pytest.fixture
def toy() -> Any:
    v = registry.register(make_toy("contiguous"), replace=True)
    yield v
    registry.unregister("toy")


@pytest.fixture
def toynoid() -> Any:
    v = registry.register(make_toy("none"), replace=True)
    yield v
    registry.unregister("toynoid")


def _source(symbols: dict[str, str], *, rate: float = 60.0, seed: int = 3) -> VenueFeedSource:
    sim = SimulatorSource(symbols=sorted(set(symbols.values())), seed=seed, rate=rate, speed=1.0)
    return VenueFeedSource(simulator=sim, symbol_map=symbols, lag_us=50_000, noise_bps=1.0)


def _ids(trades: list[Trade], symbol: str) -> list[int]:
    return [t.trade_id for t in trades if t.symbol == symbol]


# -- registry and compatibility -------------------------------------------------------------


def test_registry_knows_binance_and_refuses_unknown_venues_naming_the_known_ones() -> None:
    assert "binance" in registry.venue_names()
    b = registry.get_venue("binance")
    assert b.name == "binance" and b.id_rule == "contiguous"
    assert b.ws_url.startswith("wss://stream.binance.com")  # the real endpoint is the default
    with pytest.raises(ValidationError, match=r"unknown venue.*binance"):
        registry.get_venue("nosuchvenue")


def test_register_checks_the_adapter_and_a_registered_venue_is_found(toy: ProtocolVenue) -> None:
    assert registry.get_venue("toy") is toy
    assert "toy" in registry.venue_names()
    with pytest.raises(ValidationError, match="not a venue adapter"):
        registry.register(type("X", (), {"name": "x"})())
    with pytest.raises(ValidationError, match="already registered"):
        registry.register(make_toy("contiguous"))


def test_old_import_paths_are_the_adapter_objects() -> None:
    import lq.exchange
    import lq.exchange.protocol
    import lq.exchange.rest
    import lq.exchange.server
    import lq.feeds
    import lq.feeds.client
    import lq.feeds.endpoints
    import lq.feeds.parser
    import lq.feeds.rest
    from lq.feeds.connection import FeedClient
    from lq.venues.binance import client, endpoints, parser, rest
    from lq.venues.binance.local import protocol, server
    from lq.venues.binance.local import rest as local_rest

    assert lq.feeds.BinanceClient is client.BinanceClient is lq.feeds.client.BinanceClient
    assert issubclass(client.BinanceClient, FeedClient)
    assert lq.feeds.Parser is parser.Parser is lq.feeds.parser.Parser
    assert lq.feeds.RestClient is rest.RestClient is lq.feeds.rest.RestClient
    assert lq.feeds.endpoints.ENDPOINTS is endpoints.ENDPOINTS
    assert lq.exchange.LocalExchange is server.LocalExchange is lq.exchange.server.LocalExchange
    assert lq.exchange.protocol.parse_path is protocol.parse_path
    assert lq.exchange.rest.RestApi is local_rest.RestApi


def test_guess_instrument_makes_venue_symbols_comparable() -> None:
    from lq.venues.base import guess_instrument

    keys = {
        guess_instrument("coinbase", "BTC-USD").key,
        guess_instrument("kraken", "XBT/USD").key,
        guess_instrument("binance", "BTCUSDT").key,
        guess_instrument("okx", "BTC-USDT").key,
    }
    assert keys == {"BTC-USD@coinbase", "BTC-USD@kraken", "BTC-USDT@binance", "BTC-USDT@okx"}


# -- the shared loop + the shared server core, driven by the toy venue's modules ------------


def test_toy_venue_every_fault_ends_with_the_exchanges_truth(toy: ProtocolVenue) -> None:
    """Skipped ids, a dropped TCP connection, a 1001 close, a stall, duplicated and dropped
    frames: the ids delivered equal the exchange's truth, each exactly once."""

    async def main() -> None:
        ex = toy.local_exchange(source=_source({"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}))
        got: list[Any] = []
        await ex.start()
        client = toy.client(
            symbols=["BTC-USD", "ETH-USD"], sink=got.append, exchange_label="local-toy",
            ws_url=ex.ws_url, rest_url=ex.rest_url, backfill_delay=0.05, stale_after=3.0,
        )  # fmt: skip
        client.start()
        try:
            await wait_until(lambda: client.status.state == "live", 40, "live")
            trades = lambda: [e for e in got if type(e) is Trade]  # noqa: E731
            await wait_until(lambda: len(trades()) > 20, 40, "first trades")
            for kind, params in [
                ("skip_ids", {"symbol": "BTC-USD", "count": 7}),
                ("duplicate", {"count": 3}),
                ("drop", {"count": 2}),
                ("drop_tcp", {}),
                ("close_1001", {}),
                ("stall", {"seconds": 0.5}),
            ]:
                before, opened = len(trades()), ex.connections_opened
                await wait_until(lambda: ex.connection_count == 1, 40, "a connection")
                ex.inject(kind, **params)
                if kind in ("drop_tcp", "close_1001"):
                    await wait_until(lambda o=opened: ex.connections_opened > o, 40, "reconnect")
                await wait_until(lambda b=before: len(trades()) > b + 10, 40, f"after {kind}")
            await wait_until(
                lambda: (
                    client.status.state == "live"
                    and not any(client.sequencer.holes(s, "trade") for s in ("BTC-USD", "ETH-USD"))
                ),
                40,
                "holes filled",
            )
        finally:
            await client.stop()
            await ex.stop()
        st = client.status
        assert st.id_rule == "contiguous" and st.gap_check == "checked"
        assert st.reconnects + st.connect_failures >= 2  # a close can hit the subscribe
        assert st.gaps_found and st.gaps_found >= 1
        assert st.gaps_unfilled == 0 and st.backfilled >= 7
        assert st.duplicates_dropped >= 1
        for sym in ("BTC-USD", "ETH-USD"):
            mine = sorted(_ids(trades(), sym))
            assert len(mine) == len(set(mine)), "a trade delivered twice"
            truth = _ids(ex.trades(sym), sym)
            # everything from the first id seen to the last one seen, exactly the exchange's
            assert mine == [i for i in truth if mine[0] <= i <= mine[-1]]
        assert {e.exchange for e in got if type(e) is Trade} == {"local-toy"}
        assert all(g.exchange == "local-toy" for g in got if type(g) is Gap)

    run(main(), timeout=240)


def test_toy_venue_backfill_obeys_the_rate_limit_and_the_venues_429(toy: ProtocolVenue) -> None:
    """A hole of 400 ids at 50 per page needs 8+ pages; the client paces them at the venue's
    rate (measured at the server: no two history calls closer than 1/rate), and two forced
    429 replies are waited out (Retry-After) and counted, and the hole still fills."""
    rate = 8.0

    async def main() -> None:
        ex = toy.local_exchange(
            source=_source({"BTC-USD": "BTCUSDT"}, rate=400.0), rest_rate_limit=rate
        )
        got: list[Any] = []
        await ex.start()
        client = toy.client(
            symbols=["BTC-USD"], sink=got.append, exchange_label="local-toy",
            ws_url=ex.ws_url, rest_url=ex.rest_url, backfill_delay=0.0, rest_rate_limit=rate,
        )  # fmt: skip
        client.start()
        try:
            await wait_until(lambda: any(type(e) is Trade for e in got), 40, "first trade")
            ex.inject("rest_429", count=2)
            ex.inject("skip_ids", symbol="BTC-USD", count=400)
            await wait_until(
                lambda: any(type(e) is Gap and e.status != "found" for e in got), 40, "settled"
            )
        finally:
            await client.stop()
            await ex.stop()
        settled = [e for e in got if type(e) is Gap and e.status != "found"]
        assert [g.status for g in settled] == ["filled"], settled
        assert client.rest_stats["rate_limited"] == 2
        calls = [t for t, _, _ in ex.history_calls]
        assert len(calls) >= 400 // 50 + 2
        # measured at the server: k calls cannot arrive in less than (k-1)/rate, give or
        # take the delay of the first one (load delays requests, it never hastens them)
        span = calls[-1] - calls[0]
        assert len(calls) - 1 <= rate * span + 1, (len(calls), span)
        gaps = [b - a for a, b in pairwise(calls)]
        assert sorted(gaps)[len(gaps) // 2] >= 0.9 / rate, gaps  # the median interval
        statuses = [s for _, _, s in ex.history_calls]
        assert statuses.count(429) == 2 and statuses[-1] == 200

    run(main(), timeout=240)


def test_same_timestamp_switch_drops_them_on_the_socket_and_rest_fills_them(
    toy: ProtocolVenue,
) -> None:
    """Kraken's WS v2 behaviour (krakenfx/api-go#36) through the imitation's switch."""

    async def main() -> None:
        src = _source({"BTC-USD": "BTCUSDT"}, rate=200.0)
        ex = toy.local_exchange(source=src)
        got: list[Any] = []
        await ex.start()
        client = toy.client(
            symbols=["BTC-USD"], sink=got.append, exchange_label="local-toy",
            ws_url=ex.ws_url, rest_url=ex.rest_url, backfill_delay=0.05,
        )  # fmt: skip
        client.start()
        try:
            await wait_until(lambda: any(type(e) is Trade for e in got), 40, "first trade")
            ex.inject("same_timestamp", on=True)
            await wait_until(lambda: client.status.backfilled >= 20, 40, "refills")
            ex.inject("same_timestamp", on=False)
            await wait_until(
                lambda: (
                    not client.sequencer.holes("BTC-USD", "trade")
                    and len([e for e in got if type(e) is Trade]) > 300
                ),
                40,
                "holes filled",
            )
        finally:
            await client.stop()
            await ex.stop()
        mine = sorted(_ids([e for e in got if type(e) is Trade], "BTC-USD"))
        truth = _ids(ex.trades("BTC-USD"), "BTC-USD")
        assert mine == [i for i in truth if mine[0] <= i <= mine[-1]]
        assert client.status.gaps_unfilled == 0

    run(main(), timeout=240)


def test_rest_replies_of_the_server_core_are_json_and_404_for_unknown_paths(
    toy: ProtocolVenue,
) -> None:
    import httpx

    async def main() -> None:
        ex = toy.local_exchange(source=_source({"BTC-USD": "BTCUSDT"}))
        await ex.start()
        try:
            async with httpx.AsyncClient(base_url=ex.rest_url, trust_env=False) as h:
                r = await h.get("/nope")
                assert r.status_code == 404 and r.json()["message"].startswith("not found")
                r = await h.get("/trades/NOPE-USD")
                assert r.status_code == 404
                assert r.headers["X-LQ-Exchange"] == "local"
        finally:
            await ex.stop()

    run(main(), timeout=240)


# -- a venue without exact ids ---------------------------------------------------------------


def test_no_exact_ids_venue_never_reports_a_gap_and_says_not_checkable(
    toynoid: ProtocolVenue, tmp_path: Path
) -> None:
    from lq.collector import Collector, FeedSpec

    db = tmp_path / "n.sqlite"

    async def main() -> None:
        c = Collector(
            db=db,
            source="local",
            feeds=[FeedSpec(venue="toynoid", symbols=("BTC-USD",))],
            simulator={"seed": 5, "rate": 80.0},
        )
        c.start()
        try:
            await c.wait_started(60)
            ex = c.exchanges["local-toynoid"]
            await wait_until(lambda: c.stats.trades_new > 20, 40, "trades")
            ex.inject("skip_ids", symbol="BTC-USD", count=5)  # a real hole nobody can see
            n = c.stats.trades_new
            await wait_until(lambda: c.stats.trades_new > n + 20, 40, "more trades")
            time.sleep(0)  # let a status row be written
            await wait_until(lambda: c.client.status.messages > 0, 5)
        finally:
            await c.stop()
        st = c.client.status
        assert st.id_rule == "none" and st.gap_check == "not checkable"
        assert st.gaps_found is None and st.gaps_unfilled is None  # never a reassuring 0

    run(main(), timeout=240)
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM gaps").fetchone()[0] == 0
    rows = con.execute("SELECT exchange, detail FROM feed_status").fetchall()
    con.close()
    import json

    [(label, detail)] = rows
    d = json.loads(detail)
    assert label == "local-toynoid"
    assert d["gap_check"] == "not checkable" and d["id_rule"] == "none"
    assert d["gaps_found"] is None and d["venue"] == "toynoid"
    from lq.dashboard.status import status_html

    html = status_html([{**d, "exchange": label, "updated_ts": time.time_ns() // 1000}],
                       now_us=time.time_ns() // 1000)  # fmt: skip
    assert "gaps not checkable" in html and "0 found" not in html
