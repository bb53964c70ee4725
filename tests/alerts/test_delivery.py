"""Delivery when a channel is down (connection refused, HTTP 500, timeout): retried, then
recorded as failed; what cannot succeed (a 4xx, a body JSON cannot carry) is not retried;
the rate limit is per channel; the collector's ingestion is unaffected.

Times are measured where they are true: arrival times are recorded by the receiving server,
and "never waits" is shown by the order of events, not by a stopwatch."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from lq.alerts.channels import TelegramChannel, WebhookChannel
from lq.alerts.delivery import Delivery, RetryPolicy
from lq.alerts.engine import AlertEngine
from lq.alerts.rules import Rule
from lq.alerts.store import AlertStore
from lq.collector import Collector
from lq.errors import ValidationError

from ._events import RULE, event

# a generous attempt timeout: on a loaded machine a healthy local request can take a second,
# and an attempt that times out before reaching the server is not the failure under test
POLICY = RetryPolicy(attempts=3, initial=0.05, factor=2.0, attempt_timeout=10.0, rate=1000.0,
                     burst=1000)  # fmt: skip


def _deliver(url: str, events, policy: RetryPolicy = POLICY, queue_size: int = 100, server=None):
    """Submit ``events`` to one webhook channel; returns the recorded statuses and what had
    happened when the last ``submit`` returned: statuses recorded and requests that reached
    ``server`` (both none: "submit never waits for the channel" is an order of events, not
    a stopwatch reading)."""
    statuses: dict[int, dict] = {}

    async def record(event_id, channel, status):
        statuses[event_id] = status

    async def go():
        rule = RULE.__class__(**{**{f: getattr(RULE, f) for f in RULE.__struct_fields__},
                                 "channels": ("webhook",)})  # fmt: skip
        d = Delivery({"webhook": WebhookChannel(url=url)}, record=record, policy=policy,
                     queue_size=queue_size)  # fmt: skip
        d.start()
        for i, _ in enumerate(events):
            d.submit(event(rule=rule, id=i + 1, ts=1_723_161_600_000_000 + i))
        at_return = (len(statuses), len(server.requests) if server is not None else 0)
        await d.drain(30)
        await d.stop()
        return at_return

    at_return = asyncio.run(go())
    return statuses, at_return


@pytest.mark.parametrize("down", ["refused", "http_500", "timeout"])
def test_a_down_channel_is_retried_then_recorded_as_failed(down, http_server, refused_url):
    url = refused_url if down == "refused" else http_server.url
    http_server.mode = {"refused": "ok", "http_500": "500", "timeout": "hang"}[down]
    http_server.hang_s = 60.0  # far beyond the attempt timeout
    pol = POLICY
    if down == "timeout":
        pol = RetryPolicy(attempts=3, initial=0.05, attempt_timeout=2.0, rate=1000.0, burst=1000)
    statuses, at_return = _deliver(url, [1], policy=pol, server=http_server)
    st = statuses[1]
    assert st["status"] == "failed" and st["attempts"] == 3
    expected = {"refused": "ConnectError", "http_500": "HTTP 500", "timeout": "Timeout"}[down]
    assert expected in st["error"]
    if down != "refused":
        assert len(http_server.requests) == 3  # the server saw every retry
    # submitting never waits for the channel: it returned before any attempt was made
    assert at_return == (0, 0)


def test_a_channel_that_recovers_is_sent_on_a_retry(http_server):
    http_server.mode = "500"

    async def heal():
        while not http_server.requests:  # the first attempt has reached the server
            await asyncio.sleep(0.005)
        http_server.mode = "ok"

    statuses: dict[int, dict] = {}

    async def record(event_id, channel, status):
        statuses[event_id] = status

    async def go():
        d = Delivery({"webhook": WebhookChannel(url=http_server.url)}, record=record,
                     policy=RetryPolicy(attempts=4, initial=0.1, attempt_timeout=1.0))  # fmt: skip
        d.start()
        d.submit(event(rule=_webhook_rule(), id=1))
        await asyncio.gather(heal(), d.drain())
        await d.stop()

    asyncio.run(go())
    assert statuses[1]["status"] == "sent" and statuses[1]["attempts"] >= 2
    assert "HTTP 500" in statuses[1]["error"]  # the failure before success is kept


def _webhook_rule() -> Rule:
    return Rule(name="w", metric="price", symbol="BTCUSDT", threshold=1.0, channels=("webhook",))


def test_rate_limit_spaces_messages_per_channel(http_server):
    """1 message/s with a burst of 1, two channels, four messages each, measured at the
    server. The bucket spaces the *starts* of sends by >= 1 s and starts full after
    ``t_start``, so a channel's k-th message (from 0) cannot reach the server before
    ``t_start + k`` s: load only delays arrivals, so this bound cannot flake, and a bucket
    that lets two through at once breaks it. The limit is per channel: the two
    channels' messages interleave instead of one channel waiting for the other (which
    would put all of B after A's 4th, >= 3 s in)."""
    pol = RetryPolicy(attempts=1, rate=1.0, burst=1, attempt_timeout=10.0)
    statuses: dict[tuple[str, int], dict] = {}

    async def record(event_id, channel, status):
        statuses[(channel, event_id)] = status

    async def go():
        chans = {
            "webhook": WebhookChannel(url=f"{http_server.url}/hook"),
            "telegram": TelegramChannel(token="t0k", chat_id="1", base_url=http_server.url),
        }
        d = Delivery(chans, record=record, policy=pol)  # type: ignore[arg-type]
        d.start()
        rule = Rule(name="r", metric="price", symbol="BTCUSDT", threshold=1.0,
                    channels=("webhook", "telegram"))  # fmt: skip
        for i in range(1, 5):  # event i is at 00:00:0i exchange time
            d.submit(event(rule=rule, id=i, ts=1_723_161_600_000_000 + i * 1_000_000))
        await d.drain(60)
        await d.stop()

    t_start = time.monotonic()
    asyncio.run(go())
    assert [s["status"] for s in statuses.values()] == ["sent"] * 8
    second = re.compile(r"2024-08-09T00:00:0(\d)")
    arrivals = {
        ch: [
            (r.t, int(second.search(r.json()["text"]).group(1)))  # type: ignore[union-attr]
            for r in http_server.requests
            if r.path.startswith(prefix)
        ]
        for ch, prefix in (("webhook", "/hook"), ("telegram", "/bott0k/"))
    }
    for ch, got in arrivals.items():
        assert [i for _t, i in got] == [1, 2, 3, 4], ch  # in order, each once
        for k, (at, _i) in enumerate(got):
            assert at - t_start >= k * 1.0 - 1e-3, (ch, k, [a - t_start for a, _ in got])
        assert got[-1][0] - t_start < 3.0 + 30.0, ch  # and it does not stall
    w, t = arrivals["webhook"], arrivals["telegram"]
    assert t[0][0] < w[-1][0] and w[0][0] < t[-1][0]  # interleaved: a limit per channel


def test_a_full_queue_records_dropped_instead_of_waiting(http_server):
    http_server.mode = "hang"
    http_server.hang_s = 0.3
    pol = RetryPolicy(attempts=1, attempt_timeout=0.2, rate=1000.0, burst=1000)
    statuses, at_return = _deliver(
        http_server.url, range(10), policy=pol, queue_size=2, server=http_server
    )
    assert at_return == (0, 0)  # submit returned before any send began
    # the queue held 2 and the worker had not run: the other 8 were dropped at once
    assert sorted(k for k, v in statuses.items() if v["status"] == "dropped") == list(range(3, 11))
    assert sorted(k for k, v in statuses.items() if v["status"] == "failed") == [1, 2]


def test_retry_policy_delays_and_validation():
    assert RetryPolicy(attempts=5, initial=0.5, factor=2.0, max_delay=3.0).delays() == [
        0.5, 1.0, 2.0, 3.0,
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="attempts"):
        RetryPolicy(attempts=0)


# -- ingestion is unaffected ----------------------------------------------------------------
def _ingest(db: Path, url: str) -> tuple[int, int, float | None, dict]:
    """3 s of the local market at real speed with a rule that fires all the time."""
    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        s.add(Rule(name="busy", metric="zscore", symbol="BTCUSDT", condition="outside",
                   band=(-0.5, 0.5), window=5, sample=0.0, channels=("webhook",)))  # fmt: skip

    async def go():
        col = Collector(
            db=db, source="local", symbols=("BTCUSDT", "ETHUSDT"),
            simulator={"seed": 5, "rate": 300.0, "speed": 1.0, "duration": 3.0,
                       "start_time_us": 1_723_161_600_000_000},
        )  # fmt: skip
        pol = RetryPolicy(attempts=3, initial=0.2, attempt_timeout=1.0, rate=20.0, burst=5)
        eng = AlertEngine.attach(col, channels={"webhook": WebhookChannel(url=url)}, policy=pol)
        eng.start()
        await eng.wait_ready()
        col.start()
        await col.wait_started(20)
        t_end = time.monotonic() + 3.5  # the simulator runs 3 s of real time
        lost = -1
        while time.monotonic() < t_end + 15:
            await asyncio.sleep(0.2)
            lost = _lost(db, col)
            if lost == 0 and time.monotonic() > t_end and col.exchange.source_done.is_set():
                break  # the simulator is done and all it made is stored
        p99 = col.stats.latency_ms(99)
        await eng.stop()  # gives delivery 5 s, then cancels
        await col.stop()
        return lost, eng.stats.fired, p99, dict(eng.delivery.failed)

    return asyncio.run(go())


def _lost(db: Path, col: Collector) -> int:
    """Trades the exchange made (from the first one stored on) that are not stored."""
    conn = sqlite3.connect(db)
    lost = 0
    for sym in ("BTCUSDT", "ETHUSDT"):
        ids = {r[0] for r in conn.execute("SELECT trade_id FROM ticks WHERE symbol = ?", (sym,))}
        if not ids:
            return -1
        lost += sum(
            1 for t in col.trades_of(sym) if t.trade_id >= min(ids) and t.trade_id not in ids
        )
    conn.close()
    return lost


def test_ingestion_is_unaffected_by_a_hanging_channel(tmp_path, http_server):
    up = _ingest(tmp_path / "up.sqlite", http_server.url)
    http_server.mode = "hang"
    http_server.hang_s = 2.0  # every attempt times out (attempt_timeout 1 s)
    down = _ingest(tmp_path / "down.sqlite", http_server.url)
    lost_up, fired_up, p99_up, _ = up
    lost_down, fired_down, p99_down, failed_down = down
    # every trade the exchange made is stored in both runs, and the rule fired throughout
    assert lost_up == 0 and lost_down == 0
    assert fired_up > 20 and fired_down > 20
    assert failed_down["webhook"] >= 1
    # commit latency (frame received -> stored) not degraded beyond a generous margin
    assert p99_up is not None and p99_down is not None
    assert p99_down < max(5 * p99_up, 250.0), (p99_up, p99_down)


# -- what cannot succeed is not retried; every number encodes --------------------------------
@pytest.mark.parametrize(
    ("status", "attempts", "state"),
    [("404", 1, "failed"), ("400", 1, "failed"), ("401", 1, "failed"), ("429", 3, "failed"),
     ("500", 3, "failed"), ("503", 3, "failed")],
)  # fmt: skip
def test_client_errors_are_not_retried_but_429_and_5xx_are(http_server, status, attempts, state):
    http_server.mode = status
    statuses, _ = _deliver(http_server.url, [1])
    assert statuses[1]["status"] == state and statuses[1]["attempts"] == attempts
    assert len(http_server.requests) == attempts  # counted at the server
    assert f"HTTP {status}" in statuses[1]["error"]
    if attempts == 1:
        assert "not retried" in statuses[1]["error"]


def test_a_body_json_cannot_carry_fails_once_without_retry(http_server):
    from lq.alerts.channels import PermanentDeliveryError, encode_json

    with pytest.raises(PermanentDeliveryError, match="cannot be encoded"):
        encode_json({"text": "\ud800"})  # a lone surrogate has no UTF-8 encoding
    statuses: dict[int, dict] = {}

    async def record(event_id, channel, status):
        statuses[event_id] = status

    async def go():
        d = Delivery({"webhook": WebhookChannel(url=http_server.url)}, record=record,
                     policy=POLICY)  # fmt: skip
        d.start()
        rule = Rule(name="w", metric="price", symbol="BTCUSDT", threshold=1.0,
                    channels=("webhook",))  # fmt: skip
        d.submit(msgspec.structs.replace(event(rule=rule, id=1), message="bad \ud800"))
        await d.drain(10)
        await d.stop()

    asyncio.run(go())
    assert statuses[1]["status"] == "failed" and statuses[1]["attempts"] == 1
    assert "PermanentDeliveryError" in statuses[1]["error"]
    assert http_server.requests == []  # nothing was sent


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_of_a_live_event_reach_a_json_webhook_exactly(http_server, value):
    import json

    rule = Rule(name="z", metric="zscore", symbol="BTCUSDT", condition="outside",
                band=(-2.0, 2.0), window=5, channels=("webhook",))  # fmt: skip
    statuses, _ = _deliver_one(http_server.url, event(rule=rule, value=value, id=5))
    assert statuses[5]["status"] == "sent" and statuses[5]["attempts"] == 1
    (req,) = http_server.requests
    spelled = "NaN" if value != value else ("inf" if value > 0 else "-inf")
    ev = event(rule=rule, value=value, id=5)
    expected = {
        "event": {
            "id": 5, "rule_id": 3, "rule": "z", "metric": "zscore", "symbol": "BTCUSDT",
            "condition": "outside", "threshold": None, "band": [-2.0, 2.0], "value": None,
            "ts": ev.ts, "time": "2024-08-09T00:00:00+00:00", "local_ts": ev.ts + 1500,
            "severity": "warning", "message": ev.message,
            "non_finite": {"value": spelled},
        },
        "text": f"[WARNING] z: {rule.describe()}\nvalue {value:.6g} at "
                "2024-08-09T00:00:00+00:00 (exchange time)",
    }  # fmt: skip
    # the exact bytes: compact UTF-8 JSON, null where JSON has no number
    assert req.headers["Content-Type"] == "application/json"
    assert req.body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


def _deliver_one(url: str, ev):
    statuses: dict[int, dict] = {}

    async def record(event_id, channel, status):
        statuses[event_id] = status

    async def go():
        d = Delivery({"webhook": WebhookChannel(url=url)}, record=record, policy=POLICY)
        d.start()
        d.submit(ev)
        await d.drain(10)
        await d.stop()

    asyncio.run(go())
    return statuses, None


def test_lq_alerts_test_reaches_a_json_webhook_once(http_server, monkeypatch, capsys):
    """`lq alerts test` sends a test event whose value is NaN: it used to fail JSON encoding
    and be retried; now it arrives once, with "value": null and the reason spelled out."""
    import json

    from lq.cli import main

    monkeypatch.setenv("LQ_WEBHOOK_URL", http_server.url + "/hook")
    monkeypatch.setenv("LQ_WEBHOOK_FORMAT", "json")
    assert main(["alerts", "add", "p", "--metric", "price", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--channels", "webhook"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["alerts", "test", "p"]) == 0
    assert capsys.readouterr().out.split() == ["webhook", "sent"]
    (req,) = http_server.requests  # one request: no retry
    got = req.json()
    ev = got["event"]  # type: ignore[index]
    assert ev["value"] is None and ev["non_finite"] == {"value": "NaN"}
    expected = {
        "event": {
            "id": 0, "rule_id": 1, "rule": "p", "metric": "price", "symbol": "BTCUSDT",
            "condition": "above", "threshold": 1.0, "band": None, "value": None,
            "ts": ev["ts"], "time": ev["time"], "local_ts": ev["ts"], "severity": "warning",
            "message": "p: test message from `lq alerts test`",
            "non_finite": {"value": "NaN"},
        },
        "text": f"[WARNING] p: price(BTCUSDT) above 1\nvalue nan at {ev['time']} (exchange time)",
    }  # fmt: skip
    assert req.body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


def test_an_smtp_server_that_refuses_the_recipient_is_not_retried():
    from aiosmtpd.controller import Controller

    from lq.alerts.channels import EmailChannel

    from .conftest import _free_port

    rcpts: list[str] = []

    class Refuse:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            rcpts.append(address)
            return "550 5.1.1 no such mailbox"

    ctl = Controller(Refuse(), hostname="127.0.0.1", port=_free_port())
    ctl.start()
    try:
        statuses: dict[int, dict] = {}

        async def record(event_id, channel, status):
            statuses[event_id] = status

        async def go():
            ch = EmailChannel(host="127.0.0.1", port=ctl.port, sender="lq@example.org",
                              to=["nobody@example.org"], security="none", timeout=5)  # fmt: skip
            d = Delivery({"email": ch}, record=record, policy=POLICY)
            d.start()
            rule = Rule(name="m", metric="price", symbol="BTCUSDT", threshold=1.0,
                        channels=("email",))  # fmt: skip
            d.submit(event(rule=rule, id=1))
            await d.drain(20)
            await d.stop()

        asyncio.run(go())
    finally:
        ctl.stop()
    assert statuses[1]["status"] == "failed" and statuses[1]["attempts"] == 1
    assert "550" in statuses[1]["error"] and "not retried" in statuses[1]["error"]
    assert rcpts == ["nobody@example.org"]  # the server was asked once
