"""What each endpoint preset can backfill, over real loopback sockets (lq.exchange).

Facts (shared/reference/binance-protocol.md §2, §4): ``aggTrades?fromId`` needs no key
anywhere; ``historicalTrades`` is open on spot (security type NONE since 2023-08-25), needs an
API key on USD-M futures (HTTP 401, code -2014 without one) and, per its docs, on Binance.US
(MARKET_DATA), and does not exist on ``data-api.binance.vision``. The local exchange imitates
the key requirement with ``rest_api_key``; the ``usdm`` preset is served there on its own
``/market`` WebSocket route and ``/fapi/v1`` REST prefix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lq.feeds import ENDPOINTS, Backoff, BinanceClient
from lq.feeds.events import Gap, Trade

from .conftest import FakeBinance, pace, run, wait_until

exchange = pytest.importorskip("lq.exchange")

KEY = "lq-test-key-6f1c2b"  # a made-up key for the local exchange; never a real one
FAST = Backoff(initial=0.02, factor=2.0, max_delay=0.1, jitter="none", healthy_after=1.0)
README = Path(__file__).resolve().parents[3] / "README.md"


async def _session(
    *,
    endpoint: str,
    channels: tuple[str, ...] = ("trade",),
    exchange_key: str | None = KEY,
    client_key: str | None = None,
    backfill_delay: float = 0.05,
    until: Any = None,
) -> tuple[Any, BinanceClient, list[Any], float]:
    ex = exchange.LocalExchange(
        source=exchange.SimulatorSource(symbols=["BTCUSDT"], seed=3, rate=200, duration=6.0),
        rest_api_key=exchange_key,
    )
    await ex.start()
    events: list[Any] = []
    client = BinanceClient(
        symbols=["BTCUSDT"],
        channels=channels,
        endpoint=endpoint,
        ws_url=ex.ws_url,
        rest_url=ex.rest_url,
        sink=events.append,
        backoff=FAST,
        backfill_delay=backfill_delay,
        compression=None,
        api_key=client_key,
    )
    try:
        client.start()
        await wait_until(lambda: client.status.state == "live", 20, "the feed to go live")
        await wait_until(lambda: len(events) >= 20, 20, "some trades")
        ex.inject("skip_ids", symbol="BTCUSDT", count=7)  # a 7-trade hole
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await wait_until(until or (lambda: _settled(events)), 20, "the gap to settle")
        waited = loop.time() - t0
    finally:
        await client.stop()
        await ex.stop()
    return ex, client, events, waited


def _settled(events: list[Any]) -> bool:
    return any(isinstance(e, Gap) and e.status != "found" for e in events)


def _gaps(events: list[Any], status: str) -> list[Gap]:
    return [e for e in events if isinstance(e, Gap) and e.status == status]


@pytest.mark.parametrize("endpoint", ["usdm", "us"])
def test_trade_hole_without_a_key_is_unfillable_at_once_with_the_reason(endpoint):
    # no REST call and no retrying: only backfill_delay (0.5 s here) for stragglers, which
    # might close the hole by themselves, then the reason
    ex, client, events, waited = run(_session(endpoint=endpoint, backfill_delay=0.5), timeout=60)
    [gap] = _gaps(events, "unfilled")
    assert (gap.last_missing - gap.first_missing + 1) == 7
    assert gap.reason.startswith("needs an API key")
    assert f"endpoint={endpoint!r}" in gap.reason
    assert "LQ_BINANCE_API_KEY" in gap.reason and "aggTrade" in gap.reason
    assert waited < 15.0  # generous for a loaded machine; no 401 retry loop is involved
    hist = [t for t in ex.rest.targets if "historicalTrades" in t]
    assert hist == []  # and nothing was asked
    assert client.status.gaps_unfilled == 1


@pytest.mark.parametrize("endpoint", ["usdm", "us"])
def test_trade_hole_with_the_key_is_filled_in_pages_of_1000(endpoint, caplog):
    caplog.set_level(logging.DEBUG)
    ex, client, events, _ = run(_session(endpoint=endpoint, client_key=KEY), timeout=60)
    assert _gaps(events, "unfilled") == []
    [filled] = _gaps(events, "filled")
    got = sorted(e.trade_id for e in events if isinstance(e, Trade))
    assert got == list(range(got[0], got[-1] + 1))  # every id, once
    truth = {t.trade_id for t in ex.trades("BTCUSDT")}
    assert set(range(filled.first_missing, filled.last_missing + 1)) <= truth
    hist = [t for t in ex.rest.targets if "historicalTrades" in t]
    assert hist, "the hole was filled from historicalTrades"
    prefix = "/fapi/v1/" if endpoint == "usdm" else "/api/v3/"
    for target in hist:
        parts = urlsplit(target)
        assert parts.path == prefix + "historicalTrades"
        assert parse_qs(parts.query)["limit"] == ["1000"]  # weight 25 whatever the limit
    assert client.status.backfilled == 7
    # the client side (lq, httpx, httpcore) never logs it; the exchange's server library
    # (websockets.server, standing in for Binance) logs request headers at DEBUG
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "websockets.server")
    assert KEY not in logged
    assert KEY not in repr(client._rest)


def test_a_wrong_key_leaves_the_hole_unfilled_naming_the_refusal():
    _, _, events, _ = run(_session(endpoint="usdm", client_key="not-the-key"), timeout=60)
    [gap] = _gaps(events, "unfilled")
    assert "HTTP 401" in gap.reason and "-2015" in gap.reason
    assert "refused the API key" in gap.reason


def test_agg_trade_holes_need_no_key_on_usdm():
    ex, client, events, _ = run(_session(endpoint="usdm", channels=("aggTrade",)), timeout=60)
    assert _gaps(events, "unfilled") == []
    assert len(_gaps(events, "filled")) == 1
    assert client.status.backfilled >= 1
    assert [t for t in ex.rest.targets if "historicalTrades" in t] == []
    assert all("limit=1000" in t for t in ex.rest.targets if "aggTrades" in t)


def _readme_table() -> dict[str, dict[str, str]]:
    text = README.read_text()
    m = re.search(r"\| channel \\ endpoint \|(.+?)\n\n", text, re.S)
    assert m, "README has the backfill table"
    lines = [ln for ln in m.group(0).strip().splitlines() if not ln.startswith("|--")]
    head = [c.strip(" `") for c in lines[0].strip("|").split("|")][1:]
    out: dict[str, dict[str, str]] = {}
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        out[cells[0].strip("`")] = dict(zip(head, cells[1:], strict=True))
    return out


def test_readme_backfill_table_says_what_each_preset_does():
    table = _readme_table()
    assert set(table) == {"@trade", "@aggTrade"}
    for channel, row in table.items():
        kind = channel.lstrip("@")
        assert set(row) == set(ENDPOINTS)
        for name, cell in row.items():
            ep = ENDPOINTS[name]
            if ep.backfill(kind, api_key=False) is None:
                assert cell.startswith("yes"), (channel, name, cell)
            elif ep.backfill(kind, api_key=True) is None:
                assert cell.startswith("with an API key"), (channel, name, cell)
            else:
                assert cell.startswith("no"), (channel, name, cell)


def test_a_hole_closed_by_a_straggler_is_filled_even_where_rest_cannot_fill():
    # two trades swapped on the wire: the hole that opens closes by itself within
    # backfill_delay, so it is "filled", not "needs an API key" (nothing was missing)
    async def main() -> list[Any]:
        async with FakeBinance() as fake:
            events: list[Any] = []
            client = BinanceClient(
                symbols=["BTCUSDT"], endpoint="us", ws_url=fake.url, rest_url=fake.rest_url,
                sink=events.append, backoff=FAST, backfill_delay=0.5, compression=None,
            )  # fmt: skip
            client.start()
            await wait_until(lambda: fake.conns, what="first connection")
            await pace(fake, 3)
            a, b = fake.trade(), fake.trade()
            for t in (b, a):
                await fake.broadcast(json.dumps({"stream": "btcusdt@trade", "data": t}))
            await pace(fake, 3)
            await wait_until(lambda: _settled(events), 20, "the gap to settle")
            await client.stop()
            assert fake.rest_calls == []
            return events

    events = run(main(), timeout=60)
    assert _gaps(events, "unfilled") == []
    [filled] = _gaps(events, "filled")
    assert filled.first_missing == filled.last_missing
    got = [e.trade_id for e in events if isinstance(e, Trade)]
    assert sorted(got) == list(range(got[0], got[0] + 8))


def test_lq_collect_takes_the_key_from_the_environment_only(tmp_path):
    from lq.cli import build_parser
    from lq.collector.cli import collector_from_args
    from lq.config import load_settings

    parser, _ = build_parser("collect")
    args = parser.parse_args(["collect", "--endpoint", "usdm", "--db", str(tmp_path / "x")])
    with_key = load_settings(None, env={"LQ_BINANCE_API_KEY": KEY})
    assert collector_from_args(args, with_key).client_options == {"api_key": KEY}
    assert collector_from_args(args, load_settings(None, env={})).client_options == {}
    assert not any(KEY in a for a in vars(args).values() if isinstance(a, str))  # not argv
