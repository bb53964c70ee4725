"""RestClient against a real loopback HTTP server (tests/venues/binance/conftest.FakeBinance)."""

from __future__ import annotations

from typing import Any

import pytest

from lq.errors import RateLimitError, RestError, ValidationError
from lq.venues.binance.rest import RestClient

from .conftest import BASE_MS, FakeBinance, run


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


async def with_fake(n: int, body: Any) -> Any:
    async with FakeBinance() as fake:
        for _ in range(n):
            fake.trade()
        return await body(fake)


def test_historical_trades_match_the_server_history_and_weight_is_tracked():
    async def body(fake: FakeBinance):
        async with RestClient(rest_url=fake.rest_url) as rest:
            got = await rest.historical_trades("BTCUSDT", from_id=1010, limit=5)
            return got, rest.used_weight, fake.history["BTCUSDT"]

    got, used, hist = run(with_fake(50, body))
    assert [t.trade_id for t in got] == [1010, 1011, 1012, 1013, 1014]
    for t, h in zip(got, hist[10:15], strict=True):
        assert (t.price, t.qty, t.ts, t.is_buyer_maker) == (
            float(h["p"]),
            float(h["q"]),
            h["T"] * 1000,
            h["m"],
        )
    assert used == 25  # the fake's X-MBX-USED-WEIGHT-1M


def test_429_retry_after_is_obeyed_then_the_call_succeeds():
    sleeps = Sleeps()

    async def body(fake: FakeBinance):
        fake.rest_429, fake.retry_after = 2, "7"
        async with RestClient(rest_url=fake.rest_url, sleep=sleeps) as rest:
            got = await rest.agg_trades("BTCUSDT", from_id=1000, limit=3)
            return got, rest.rate_limited

    got, limited = run(with_fake(5, body))
    assert sleeps.calls == [7.0, 7.0] and limited == 2
    assert [a.agg_id for a in got] == [1000, 1001, 1002]


def test_retry_after_longer_than_max_retry_after_raises_rate_limit_error():
    sleeps = Sleeps()

    async def body(fake: FakeBinance):
        fake.rest_429, fake.retry_after = 1, "600"
        async with RestClient(rest_url=fake.rest_url, sleep=sleeps, max_retry_after=300) as rest:
            with pytest.raises(RateLimitError) as info:
                await rest.historical_trades("BTCUSDT", from_id=1000)
            return info.value

    err = run(with_fake(5, body))
    assert (err.status, err.retry_after, err.code) == (429, 600.0, -1003) and sleeps.calls == []
    assert "Retry-After=600 s" in str(err)


def test_invalid_agg_trades_with_f_minus_one_are_dropped():
    async def body(fake: FakeBinance):
        fake.agg_invalid_row = True  # Binance's 2022 audit marks duplicates p=0, f=l=-1
        async with RestClient(rest_url=fake.rest_url) as rest:
            return await rest.agg_trades("BTCUSDT", from_id=1000, limit=10)

    got = run(with_fake(10, body))
    assert [a.agg_id for a in got] == list(range(1000, 1010)) and all(a.first_id >= 0 for a in got)


def test_minus_1127_narrows_the_window_until_the_server_accepts_it():
    async def body(fake: FakeBinance):
        fake.max_window_ms = 20  # trades are 1 ms apart from BASE_MS
        async with RestClient(rest_url=fake.rest_url) as rest:
            got = await rest.agg_trades(
                "BTCUSDT", start_time=(BASE_MS + 5) * 1000, end_time=(BASE_MS + 100) * 1000 + 999
            )
            return got, fake.rest_calls

    got, calls = run(with_fake(200, body))
    # window 96 ms -> 48 -> 24 -> 12 (<= 20 accepted): the first 12 ms from BASE_MS+5, i.e.
    # trades with T = BASE_MS+5 .. BASE_MS+16 inclusive, which are ids 1005..1016
    assert [a.agg_id for a in got] == list(range(1005, 1017))
    assert len(calls) == 4


def test_client_errors_name_the_status_and_code():
    async def body(fake: FakeBinance):
        async with RestClient(rest_url=fake.rest_url) as rest:
            with pytest.raises(RestError) as info:
                await rest.historical_trades("NOPEUSDT")
            with pytest.raises(ValidationError, match="limit=5000"):
                await rest.historical_trades("BTCUSDT", limit=5000)
            return info.value

    err = run(with_fake(1, body))
    assert (err.status, err.code) == (400, -1121) and "Invalid symbol" in str(err)


def test_data_only_endpoint_refuses_historical_trades_without_a_request():
    async def body(fake: FakeBinance):
        async with RestClient(endpoint="spot-data", rest_url=fake.rest_url) as rest:
            with pytest.raises(RestError, match="has no historicalTrades"):
                await rest.historical_trades("BTCUSDT", from_id=1000)
        return fake.rest_calls

    assert run(with_fake(1, body)) == []


def test_rows_that_break_the_invariants_are_left_out_and_kept_with_the_reason():
    async def body(fake: FakeBinance):
        fake.rest_override = {
            1002: {"price": "1e308"},
            1003: {"id": 2**63},
            1005: {"price": "0", "qty": "0"},  # not a trade: a voided id
        }
        async with RestClient(rest_url=fake.rest_url) as rest:
            got = await rest.historical_trades("BTCUSDT", from_id=1000, limit=8)
            return [t.trade_id for t in got], rest.rejected_rows, rest.void_ids

    ids, rejected, void = run(with_fake(10, body))
    assert ids == [1000, 1001, 1004, 1006, 1007]
    assert void == [1005]
    reasons = [r for r, _ in rejected]
    assert len(reasons) == 2
    assert "price=1e+308" in reasons[0] and "trade_id=9223372036854775808" in reasons[1]
    assert '"id":1002' in rejected[0][1]
