"""BinanceClient end to end over real loopback sockets against tests/venues/binance/conftest.FakeBinance.

The truth is the fake server's own list of trade ids (every trade it produced, sent or not);
each scenario ends with the delivered ids equal to it exactly: none lost, none duplicated.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lq.errors import ExhaustedRetriesError, FeedError
from lq.feeds import Backoff, BinanceClient, RestClient
from lq.feeds.events import Gap, Rejected, Trade
from lq.feeds.recording import FrameRecorder, read_frames

from .conftest import FakeBinance, pace, run, wait_until

FAST = Backoff(
    initial=0.02,
    factor=2.0,
    max_delay=0.1,
    jitter="none",
    healthy_after=1.0,
    policy_violation_delay=0.3,
)


def make_client(fake: FakeBinance, events: list[Any], **kw: Any) -> BinanceClient:
    opts: dict[str, Any] = dict(
        symbols=["BTCUSDT"],
        ws_url=fake.url,
        rest_url=fake.rest_url,
        sink=events.append,
        backoff=FAST,
        stale_after=5.0,
        backfill_delay=0.05,
        compression=None,
        max_attempts=20,
    )
    opts.update(kw)
    return BinanceClient(**opts)


def trade_ids(events: list[Any], symbol: str = "BTCUSDT") -> list[int]:
    return [e.trade_id for e in events if isinstance(e, Trade) and e.symbol == symbol]


async def publisher(fake: FakeBinance, stop: asyncio.Event, every: float = 0.003) -> None:
    while not stop.is_set():
        await fake.publish()
        await asyncio.sleep(every)


async def scenario(
    fault: Callable[[FakeBinance, BinanceClient], Awaitable[None]],
    *,
    before: float = 0.15,
    after: float = 0.6,
    **kw: Any,
) -> tuple[FakeBinance, BinanceClient, list[Any]]:
    """Trades flow, the fault happens, trades keep flowing; wait until everything arrived."""
    async with FakeBinance() as fake:
        events: list[Any] = []
        client = make_client(fake, events, **kw)
        task = client.start()
        await wait_until(lambda: fake.conns, what="first connection")
        stop = asyncio.Event()
        pub = asyncio.create_task(publisher(fake, stop))
        await asyncio.sleep(before)
        await fault(fake, client)
        await asyncio.sleep(after)
        stop.set()
        await pub
        await wait_until(
            lambda: (
                trade_ids(events)[-1:] == fake.ids()[-1:]
                and len(set(trade_ids(events))) >= len(fake.ids())
            ),
            timeout=10,
            what="every trade delivered",
        )
        await asyncio.sleep(0.1)  # anything extra (a duplicate) would show up now
        assert not task.done()
        await client.stop()
        return fake, client, events


def assert_exact(fake: FakeBinance, events: list[Any]) -> None:
    got = trade_ids(events)
    assert sorted(got) == fake.ids()  # none lost
    assert len(got) == len(set(got))  # none duplicated


async def _close(code: int) -> Callable[[FakeBinance, BinanceClient], Awaitable[None]]:
    async def f(fake: FakeBinance, client: BinanceClient) -> None:
        await fake.close_all(code, "test")
        await asyncio.sleep(0.05)  # trades published now reach nobody: a real gap

    return f


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011])
def test_every_close_code_reconnects_and_backfills_to_the_exact_ids(code):
    async def main():
        fake, client, events = await scenario(await _close(code))
        assert_exact(fake, events)
        st = client.status
        assert st.reconnects >= 1 and fake.connections_opened >= 2
        assert st.state == "stopped"
        gaps = [e for e in events if isinstance(e, Gap)]
        assert {g.status for g in gaps} <= {"found", "filled"}
        assert st.gaps_found == st.gaps_filled and st.gaps_unfilled == 0

    run(main())


def test_policy_violation_1008_waits_the_longer_penalty_delay():
    async def main():
        async with FakeBinance() as fake:
            client = make_client(fake, [])
            client.start()
            await wait_until(lambda: fake.conns)
            t0 = asyncio.get_running_loop().time()
            await fake.close_all(1008, "Too many requests")
            await wait_until(lambda: fake.connections_opened == 2)
            waited = asyncio.get_running_loop().time() - t0
            await client.stop()
        # FAST.policy_violation_delay is 0.3 s; FAST's ordinary delay would be 0.02 s
        assert waited >= 0.3

    run(main())


def test_gap_is_backfilled_after_1006_close():
    async def drop(fake: FakeBinance, client: BinanceClient) -> None:
        fake.drop_tcp()  # no close frame: the client sees 1006
        await asyncio.sleep(0.05)

    async def main():
        fake, client, events = await scenario(drop)
        assert_exact(fake, events)
        assert client.status.backfilled > 0
        assert any(isinstance(e, Gap) and e.status == "filled" for e in events)

    run(main())


def test_stalled_connection_is_replaced_by_the_watchdog():
    async def stall(fake: FakeBinance, client: BinanceClient) -> None:
        fake.stall()  # open, answers pings, sends nothing

    async def main():
        fake, client, events = await scenario(stall, stale_after=0.3, after=0.9)
        assert_exact(fake, events)
        assert fake.connections_opened >= 2 and client.status.reconnects >= 1

    run(main())


def test_server_shutdown_rotates_by_overlap_without_loss():
    async def shutdown(fake: FakeBinance, client: BinanceClient) -> None:
        await fake.server_shutdown()

    async def main():
        fake, client, events = await scenario(shutdown)
        assert_exact(fake, events)
        st = client.status
        assert st.rotations == 1 and st.reconnects == 0
        assert st.gaps_found == 0  # overlap: nothing to backfill

    run(main())


def test_rotation_by_age_overlaps_and_deduplicates():
    async def nothing(fake: FakeBinance, client: BinanceClient) -> None:
        pass

    async def main():
        fake, client, events = await scenario(nothing, rotate_after=0.3, after=1.0)
        assert_exact(fake, events)
        st = client.status
        assert st.rotations >= 2 and st.reconnects == 0 and fake.connections_opened >= 3

    run(main())


def test_skipped_ids_are_backfilled_from_rest():
    async def skip(fake: FakeBinance, client: BinanceClient) -> None:
        fake.skip_next = 7

    async def main():
        fake, client, events = await scenario(skip)
        assert_exact(fake, events)
        [found] = [e for e in events if isinstance(e, Gap) and e.status == "found"]
        [filled] = [e for e in events if isinstance(e, Gap) and e.status == "filled"]
        assert filled.last_missing - filled.first_missing + 1 == 7 == client.status.backfilled
        assert (found.first_missing, found.last_missing) == (
            filled.first_missing,
            filled.last_missing,
        )
        assert "historicalTrades" in fake.rest_calls

    run(main())


def test_duplicate_frames_are_dropped():
    async def dup(fake: FakeBinance, client: BinanceClient) -> None:
        fake.duplicate_next = 20

    async def main():
        fake, client, events = await scenario(dup)
        assert_exact(fake, events)
        assert client.status.duplicates_dropped == 20

    run(main())


def test_malformed_frames_become_rejected_events_and_everything_else_is_delivered():
    bad = ["{not json", '{"stream":"btcusdt@trade","data":{"e":"trade"}}', "[]"]

    async def garbage(fake: FakeBinance, client: BinanceClient) -> None:
        for _ in range(3):
            for b in bad:
                await fake.broadcast(b)
            await asyncio.sleep(0.02)

    async def main():
        fake, client, events = await scenario(garbage)
        assert_exact(fake, events)
        rejected = [e for e in events if isinstance(e, Rejected)]
        assert [r.raw for r in rejected] == bad * 3
        assert client.status.rejected == 9 and all(r.reason for r in rejected)
        assert "missing required field" in rejected[1].reason

    run(main())


def test_backfill_obeys_429_retry_after():
    async def main():
        async with FakeBinance() as fake:
            slept: list[float] = []

            async def sleep(s: float) -> None:
                slept.append(s)

            rest = RestClient(rest_url=fake.rest_url, sleep=sleep)
            fake.rest_429 = 2
            fake.retry_after = "3"

            async def skip(fake: FakeBinance, client: BinanceClient) -> None:
                fake.skip_next = 4

            events: list[Any] = []
            client = make_client(fake, events, rest=rest)
            client.start()
            await wait_until(lambda: fake.conns)
            for _ in range(3):
                await fake.publish()
            await skip(fake, client)
            for _ in range(8):
                await fake.publish()
            await wait_until(lambda: sorted(trade_ids(events)) == fake.ids(), what="backfill")
            await client.stop()
            await rest.aclose()
        assert slept == [3.0, 3.0]  # two 429s, each waited out for Retry-After seconds
        assert fake.rest_calls == ["historicalTrades"] * 3
        assert client.status.gaps_filled == 1

    run(main())


def test_resume_ids_backfill_from_the_stored_id_and_cap_the_size():
    async def main():
        async with FakeBinance() as fake:
            for _ in range(100):  # ids 1000..1099 happen while lq is down
                fake.trade()
            events: list[Any] = []
            client = make_client(
                fake, events, resume_ids={("BTCUSDT", "trade"): 1019}, max_backfill=30
            )
            client.start()
            await wait_until(lambda: fake.conns)
            live = await fake.publish()  # 1100
            await wait_until(lambda: client.status.gaps_filled == 1, what="backfill")
            await client.stop()
        got = trade_ids(events)
        # one request of 30 ids (max_backfill); the rest was reported unfilled at once, but
        # the page of 1,000 held it too and a page fills every hole it covers (a store then
        # marks those ids filled): no second request
        assert sorted(got) == [*range(1020, 1100), live]
        assert len(fake.rest_calls) == 1
        [unfilled] = [e for e in events if isinstance(e, Gap) and e.status == "unfilled"]
        assert (unfilled.first_missing, unfilled.last_missing) == (1050, 1099)
        assert "max_backfill=30" in unfilled.reason

    run(main())


def test_endpoint_without_historical_trades_reports_the_gap_unfilled_with_the_reason():
    async def main():
        async with FakeBinance() as fake:
            events: list[Any] = []
            client = make_client(fake, events, endpoint="spot-data")
            client.start()
            await wait_until(lambda: fake.conns)
            await fake.publish()
            fake.skip_next = 3
            for _ in range(4):
                await fake.publish()
            await wait_until(lambda: client.status.gaps_unfilled == 1)
            await client.stop()
        [g] = [e for e in events if isinstance(e, Gap) and e.status == "unfilled"]
        assert g.last_missing - g.first_missing == 2
        assert "no historicalTrades" in g.reason and fake.rest_calls == []

    run(main())


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_attempt_budget_exhausted_raises_and_status_is_failed():
    async def main():
        port = _dead_port()
        client = BinanceClient(
            symbols=["BTCUSDT"],
            ws_url=f"ws://127.0.0.1:{port}",
            rest_url=f"http://127.0.0.1:{port}",
            sink=lambda e: None,
            backoff=FAST,
            max_attempts=3,
        )
        task = client.start()
        with pytest.raises(ExhaustedRetriesError, match="max_attempts=3"):
            await task
        st = client.status
        assert st.state == "failed" and st.connect_failures == 3 and "max_attempts=3" in st.error

    run(main())


def test_rejected_handshakes_count_as_failed_attempts():
    async def main():
        async with FakeBinance() as fake:
            fake.reject_handshakes = True
            client = make_client(fake, [], max_attempts=2)
            with pytest.raises(ExhaustedRetriesError, match="503"):
                await client.start()

    run(main())


def test_frames_are_recorded_with_their_receive_time(tmp_path):
    async def main():
        async with FakeBinance() as fake:
            rec = FrameRecorder(tmp_path / "rec.txt")
            events: list[Any] = []
            client = make_client(fake, events, record=rec)
            client.start()
            await wait_until(lambda: fake.conns)
            for _ in range(25):
                await fake.publish()
            await wait_until(lambda: len(trade_ids(events)) == 25)
            await client.stop()
            rec.close()
            return client.status, fake.ids()

    st, ids = run(main())
    frames = list(read_frames(tmp_path / "rec.txt"))
    assert len(frames) == 25 == st.messages
    assert [json.loads(raw)["data"]["t"] for _, raw in frames] == ids
    assert all(a <= b for (a, _), (b, _) in itertools.pairwise(frames))
    assert st.lag_p50_ms is not None and st.last_message_age_s is not None


def test_sink_errors_are_counted_not_fatal():
    async def main():
        async with FakeBinance() as fake:
            seen: list[Any] = []

            def sink(e: Any) -> None:
                seen.append(e)
                if len(seen) % 2:
                    raise RuntimeError("collector hiccup")

            client = make_client(fake, [], sink=sink)
            task = client.start()
            await wait_until(lambda: fake.conns)
            for _ in range(10):
                await fake.publish()
            await wait_until(lambda: len(seen) == 10)
            assert not task.done()
            await client.stop()
            return client.status

    assert run(main()).sink_errors == 5


def test_start_needs_a_running_loop_and_bad_arguments_name_the_field():
    client = BinanceClient(symbols=["BTCUSDT"], sink=lambda e: None)
    with pytest.raises(FeedError, match="running event loop"):
        client.start()
    assert client.status.state == "idle"
    with pytest.raises(ValueError, match="symbols='BTCUSDT'"):
        BinanceClient(symbols="BTCUSDT", sink=lambda e: None)
    with pytest.raises(ValueError, match="stale_after=0"):
        BinanceClient(symbols=["BTCUSDT"], sink=lambda e: None, stale_after=0)


def test_backfilled_rows_that_break_the_invariants_are_rejected_and_their_ids_stay_holes():
    async def main():
        async with FakeBinance() as fake:
            events: list[Any] = []
            client = make_client(fake, events)
            client.start()
            await wait_until(lambda: fake.conns, what="first connection")
            await pace(fake, 5)
            await wait_until(lambda: len(trade_ids(events)) == 5, what="the first trades")
            lo = fake.next_id["BTCUSDT"]
            fake.rest_override = {lo + 2: {"qty": "1e-320"}, lo + 4: {"price": "0", "qty": "0"}}
            fake.skip_next = 6
            await pace(fake, 10)
            await wait_until(
                lambda: any(isinstance(e, Gap) and e.status != "found" for e in events),
                what="the gap to settle",
            )
            await client.stop()
        [unfilled] = [e for e in events if isinstance(e, Gap) and e.status == "unfilled"]
        assert (unfilled.first_missing, unfilled.last_missing) == (lo + 2, lo + 2)
        assert "refused" in unfilled.reason and "qty=1e-320" in unfilled.reason
        got = set(trade_ids(events))
        assert {lo, lo + 1, lo + 3, lo + 5} <= got and not {lo + 2, lo + 4} & got
        [rej] = [e for e in events if isinstance(e, Rejected)]
        assert "qty=1e-320" in rej.reason and client.status.rejected == 1
        assert client.status.backfilled == 4  # lo+4 is voided (p = q = 0): not a hole

    run(main())
