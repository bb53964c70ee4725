"""The engine inside a real collector on the local exchange (real loopback sockets), with
real SMTP and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import email
import email.policy
import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from lq.alerts.channels import EmailChannel, WebhookChannel
from lq.alerts.delivery import RetryPolicy
from lq.alerts.engine import AlertEngine
from lq.alerts.history import rule_history
from lq.alerts.rules import Rule
from lq.alerts.store import AlertStore
from lq.collector import Collector
from lq.feeds.events import Gap, Trade
from lq.store import Store, Writer

S = 1_000_000
T0 = 1_723_161_600 * S  # fixed exchange start time: the same seed gives the same market
SPREAD_RULE = Rule(
    name="eth-btc-spread-z",
    metric="spread_zscore",
    symbol="ETHUSDT/BTCUSDT",
    condition="crosses_above",
    threshold=2.0,
    rearm=0.0,
    window=30,
    channels=("email", "webhook", "dashboard"),
)
# no test here makes a channel hang: the attempt timeout only has to let a healthy local
# request through on a loaded machine, where one took more than 1 s and was retried
FAST = RetryPolicy(attempts=3, initial=0.05, factor=2.0, attempt_timeout=10.0, rate=1000.0,
                   burst=1000)  # fmt: skip


def _collector(db: Path, duration: float, **kw) -> Collector:
    return Collector(
        db=db, source="local", symbols=("BTCUSDT", "ETHUSDT"),
        simulator={"seed": 21, "rate": 10.0, "speed": None, "start_time_us": T0,
                   "duration": duration},
        **kw,
    )  # fmt: skip


async def _run_collector(col: Collector, eng: AlertEngine) -> None:
    """Engine ready first (so it sees every trade), then the feed, until the simulator has
    finished and everything it made is stored; then the engine, then the collector stop."""
    eng.start()
    await eng.wait_ready()
    col.start()
    await col.wait_started(20)
    deadline = time.monotonic() + 60
    last = (-1, -1)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = (sum(len(col.trades_of(s)) for s in ("BTCUSDT", "ETHUSDT")), _stored_trades(col.db))
        if now == last and col.exchange.source_done.is_set():
            break  # the simulator has finished and nothing more is being stored
        last = now
    await eng.flush()
    if eng.delivery is not None:
        await eng.delivery.drain(30)
    await eng.stop()
    await col.stop()


def _stored_trades(db: Path) -> int:
    return sqlite3.connect(db).execute("SELECT count(*) FROM ticks").fetchone()[0]


def test_spread_zscore_crosses_above_2_end_to_end_by_email_and_webhook(
    tmp_path, smtp_plain, http_server
):
    """The issue's 'done when': a user adds the rule, the collector on the local exchange
    fires it, it arrives by e-mail and webhook, and it is in the history."""
    db = tmp_path / "e2e.sqlite"
    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        rid = s.add(SPREAD_RULE).id

    async def go() -> AlertEngine:
        col = _collector(db, 600.0)
        channels = {
            "email": EmailChannel(host=smtp_plain.host, port=smtp_plain.port,
                                  sender="lq@example.org", to=["quant@example.org"],
                                  security="none"),
            "webhook": WebhookChannel(url=http_server.url + "/hook", format="json"),
        }  # fmt: skip
        eng = AlertEngine.attach(col, channels=channels, policy=FAST, poll_interval=0.1)
        await _run_collector(col, eng)
        return eng

    eng = asyncio.run(go())
    with AlertStore(db) as s, Store(db) as st:
        ev = s.events(rule=rid, limit=None).sort_values("ts")
        hist = rule_history(st, SPREAD_RULE, exchange="local")
    assert len(ev) >= 2, "the rule should fire several times in 10 simulated minutes"
    # stored events are what history finds over the same stored data (a firing on the very
    # last, still-open second is only in history)
    assert ev["ts"].tolist() == hist.firings["ts"].tolist()[: len(ev)]
    np.testing.assert_allclose(ev["value"], hist.firings["value"][: len(ev)], rtol=1e-12)
    assert (ev["value"] > 2.0).all()
    # every event delivered once by e-mail and once by webhook, and recorded as sent
    assert len(smtp_plain.messages) == len(ev)
    bodies = [r.json() for r in http_server.requests]
    assert sorted(b["event"]["ts"] for b in bodies) == ev["ts"].tolist()
    assert {b["event"]["rule"] for b in bodies} == {"eth-btc-spread-z"}
    mail = email.message_from_bytes(smtp_plain.messages[0][2], policy=email.policy.default)
    assert "eth-btc-spread-z" in mail["Subject"]
    for d in ev["delivery"]:
        assert d["email"]["status"] == "sent" and d["webhook"]["status"] == "sent"
        assert d["dashboard"]["status"] == "stored"
    assert eng.stats.stored == len(ev) and eng.stats.duplicates == 0
    assert len(eng.stats.latency_us) == len(ev)  # each one timed frame -> stored


def test_collector_restart_keeps_rules_and_history_and_never_fires_twice(tmp_path, http_server):
    db = tmp_path / "restart.sqlite"
    with AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"]) as s:
        rid = s.add(Rule(**{**_fields(SPREAD_RULE), "channels": ("webhook", "dashboard")})).id
        rules_before = s.conn.execute("SELECT * FROM alert_rules").fetchall()

    async def run(duration: float) -> AlertEngine:
        col = _collector(db, duration)
        chans = {"webhook": WebhookChannel(url=http_server.url + "/hook")}
        eng = AlertEngine.attach(col, channels=chans, policy=FAST, poll_interval=0.1)
        await _run_collector(col, eng)
        return eng

    first = asyncio.run(run(300.0))
    with AlertStore(db) as s:
        ev1 = s.events(rule=rid, limit=None).sort_values("ts")
    sent1 = len(http_server.requests)
    assert len(ev1) >= 1 and sent1 == len(ev1)
    # the same market again, longer: the first 300 s are already stored (the feed resumes
    # after them) and the engine warms up from them
    second = asyncio.run(run(600.0))
    with AlertStore(db) as s, Store(db) as st:
        ev2 = s.events(rule=rid, limit=None).sort_values("ts")
        assert s.conn.execute("SELECT * FROM alert_rules").fetchall() == rules_before
        hist = rule_history(st, SPREAD_RULE, exchange="local")
    # history intact, nothing fired twice, nothing re-delivered
    cols = ["id", "ts", "value", "message"]
    assert (
        ev2.iloc[: len(ev1)][cols].reset_index(drop=True).equals(ev1[cols].reset_index(drop=True))
    )
    assert ev2["ts"].is_unique
    assert second.stats.duplicates == 0 and first.stats.duplicates == 0
    new = ev2.iloc[len(ev1) :]
    assert len(new) >= 1 and (new["ts"] > ev1["ts"].max()).all()
    keys = [(r.json()["event"]["rule_id"], r.json()["event"]["ts"]) for r in http_server.requests]
    assert set(keys) == {(rid, int(t)) for t in ev2["ts"]}
    # delivery is at least once: a key arrives again only as a retry of an attempt that timed
    # out on a loaded machine, never from the restart (counted against the recorded attempts)
    for (_, ts), n in collections.Counter(keys).items():
        [d] = ev2.loc[ev2["ts"] == ts, "delivery"].tolist()
        assert n <= d["webhook"]["attempts"], (ts, n, d)
    sent_keys = {
        {h.lower(): v for h, v in r.headers.items()}.get("idempotency-key")
        for r in http_server.requests
    }
    assert None not in sent_keys and len(sent_keys) == len(set(keys)), sent_keys
    # and the restarted engine (warmed up from stored bars) fired exactly where an
    # uninterrupted evaluation of the stored history fires
    assert ev2["ts"].tolist() == hist.firings["ts"].tolist()[: len(ev2)]


def _fields(rule: Rule) -> dict:
    return {f: getattr(rule, f) for f in rule.__struct_fields__}


# -- engine without a collector -------------------------------------------------------------
def _trade(sym: str, i: int, price: float, ts: int) -> Trade:
    return Trade(symbol=sym, trade_id=i, price=price, qty=1.0, ts=ts, event_ts=ts,
                 is_buyer_maker=False, recv_ts=time.time_ns() // 1000)  # fmt: skip


async def _engine(db: Path, **kw) -> tuple[AlertEngine, Writer]:
    w = Writer(db)

    async def riw(fn):
        return await asyncio.to_thread(fn, w)

    eng = AlertEngine(db=db, run_in_writer=riw, poll_interval=0.05, warmup=False, **kw)
    eng.start()
    await eng.wait_ready()
    return eng, w


def test_rules_added_edited_or_disabled_while_running_are_picked_up(tmp_path):
    db = tmp_path / "reload.sqlite"
    AlertStore(db).close()

    async def go() -> list[tuple[str, float]]:
        eng, w = await _engine(db)
        fired: list[tuple[str, float]] = []
        eng.subscribe(lambda e: fired.append((e.rule.name, e.value)))
        s = AlertStore(db, known_symbols=["BTCUSDT"])
        s.add(Rule(name="hi", metric="price", symbol="BTCUSDT", threshold=100.0, sample=0.0))
        await asyncio.sleep(0.3)  # > poll interval
        eng.feed([_trade("BTCUSDT", 1, 101.0, T0)])
        await eng.flush()
        s.update("hi", Rule(name="hi", metric="price", symbol="BTCUSDT", threshold=200.0,
                            sample=0.0))  # fmt: skip
        await asyncio.sleep(0.3)
        eng.feed([_trade("BTCUSDT", 2, 150.0, T0 + S), _trade("BTCUSDT", 3, 201.0, T0 + 2 * S)])
        await eng.flush()
        s.set_enabled("hi", False)
        await asyncio.sleep(0.3)
        eng.feed([_trade("BTCUSDT", 4, 50.0, T0 + 3 * S), _trade("BTCUSDT", 5, 300.0, T0 + 4 * S)])
        await eng.flush()
        s.close()
        await eng.stop()
        w.close()
        return fired

    assert asyncio.run(go()) == [("hi", 101.0), ("hi", 201.0)]


def test_a_condition_that_already_holds_fires_on_the_next_sample_once(tmp_path):
    """Warm-up never fires, but it must not swallow an alert nobody got: a rule present at
    start-up whose condition held before the collector ran, and a rule added while it runs
    whose condition already holds, each fire once on the next live sample, then stay quiet
    (disarmed) while the price stays up."""
    from lq.store import Batch

    db = tmp_path / "holds.sqlite"
    with Writer(db) as w:  # two minutes of history at 150 (1 s bars are written with them)
        w.write_batch(Batch(trades=[_trade("BTCUSDT", i, 150.0, T0 + i * S) for i in range(120)]))
    with AlertStore(db, known_symbols=["BTCUSDT"]) as s:
        s.add(Rule(name="at-start", metric="price", symbol="BTCUSDT", threshold=100.0))

    async def go(add: bool) -> list[tuple[str, float, int]]:
        w = Writer(db)

        async def riw(fn):
            return await asyncio.to_thread(fn, w)

        eng = AlertEngine(db=db, run_in_writer=riw, poll_interval=0.05, warmup=True)
        fired: list[tuple[str, float, int]] = []
        eng.subscribe(lambda e: fired.append((e.rule.name, e.value, e.ts)))
        eng.start()
        await eng.wait_ready()
        assert fired == []  # warm-up fires nothing
        if add:
            with AlertStore(db, known_symbols=["BTCUSDT"]) as s:
                s.add(Rule(name="added", metric="price", symbol="BTCUSDT", threshold=120.0))
            await asyncio.sleep(0.3)  # > poll interval: the engine has the new rule
        eng.feed([_trade("BTCUSDT", 120 + k, 151.0 + k, T0 + (121 + k) * S) for k in range(3)])
        await eng.flush()
        await eng.stop()
        w.close()
        return fired

    fired = asyncio.run(go(add=True))
    # the first live sample is the 1 s bar [121 s, 122 s), stamped at its close
    assert sorted(fired) == [("added", 151.0, T0 + 122 * S), ("at-start", 151.0, T0 + 122 * S)]
    # and a restart that warms up over those firings does not fire them again
    assert asyncio.run(go(add=False)) == []


def test_same_events_after_a_restart_are_not_stored_or_delivered_twice(tmp_path):
    db = tmp_path / "dup.sqlite"
    with AlertStore(db) as s:
        s.add(Rule(name="up", metric="price", symbol="BTCUSDT", condition="crosses_above",
                   threshold=100.0, sample=0.0))  # fmt: skip
    trades = [
        _trade("BTCUSDT", i, p, T0 + i * S) for i, p in enumerate([99, 101, 99, 102, 98, 103])
    ]

    async def once() -> tuple[int, int, list]:
        eng, w = await _engine(db)
        got: list = []
        eng.subscribe(got.append)
        eng.feed(trades)  # a restart that sees the same trades again (e.g. a replay)
        await eng.flush()
        await eng.stop()
        w.close()
        return eng.stats.stored, eng.stats.duplicates, got

    assert asyncio.run(once())[:2] == (3, 0)
    stored, dups, got = asyncio.run(once())
    # the restarted engine knows the last firing time and never fires at or before it
    assert (stored, dups, got) == (0, 0, [])
    with AlertStore(db) as s:
        assert len(s.events()) == 3


def test_unfilled_gap_and_staleness_rules_fire(tmp_path):
    db = tmp_path / "gap.sqlite"
    with AlertStore(db) as s:
        s.add(Rule(name="gap", metric="unfilled_gap", symbol="BTCUSDT", threshold=10.0))
        s.add(Rule(name="stale", metric="staleness", symbol="ETHUSDT", threshold=0.2))

    async def go() -> list:
        eng, w = await _engine(db)
        got: list = []
        eng.subscribe(got.append)
        gap = dict(symbol="BTCUSDT", kind="trade", status="unfilled", detected_ts=T0)
        eng.feed([
            Gap(first_missing=100, last_missing=104, **gap),  # 5 missing: below threshold
            Gap(first_missing=200, last_missing=249, **{**gap, "detected_ts": T0 + S}),
            Gap(first_missing=300, last_missing=399, **{**gap, "detected_ts": T0 + 2 * S}),
        ])  # fmt: skip
        await asyncio.sleep(0.6)  # ETHUSDT never trades: stale after 0.2 s
        await eng.flush()
        await eng.stop()
        w.close()
        return got

    got = asyncio.run(go())
    gaps = [(e.value, e.ts) for e in got if e.rule.name == "gap"]
    assert gaps == [(50.0, T0 + S), (100.0, T0 + 2 * S)]
    stale = [e for e in got if e.rule.name == "stale"]
    assert len(stale) == 1 and stale[0].value > 0.2


def test_delivery_status_is_stored_per_channel(tmp_path, http_server, refused_url):
    db = tmp_path / "status.sqlite"
    with AlertStore(db) as s:
        s.add(Rule(name="up", metric="price", symbol="BTCUSDT", threshold=100.0, sample=0.0,
                   channels=("webhook", "telegram", "dashboard")))  # fmt: skip

    async def go() -> None:
        from lq.alerts.channels import TelegramChannel
        from lq.alerts.delivery import Delivery

        eng, w = await _engine(db)
        eng.delivery = Delivery(
            {"webhook": WebhookChannel(url=http_server.url),
             "telegram": TelegramChannel(token="t0k", chat_id="1", base_url=refused_url)},
            record=eng.record_delivery, policy=FAST,
        )  # fmt: skip
        eng.delivery.start()
        eng.feed([_trade("BTCUSDT", 1, 101.0, T0)])
        await eng.flush()
        await eng.delivery.drain()
        await eng.stop()
        w.close()

    asyncio.run(go())
    with AlertStore(db) as s:
        (d,) = s.events()["delivery"]
    assert d["webhook"]["status"] == "sent" and d["webhook"]["attempts"] == 1
    assert d["telegram"]["status"] == "failed" and d["telegram"]["attempts"] == 3
    assert "ConnectError" in d["telegram"]["error"]
    assert d["dashboard"] == {"status": "stored", "attempts": 0}
    raw = sqlite3.connect(db).execute("SELECT delivery FROM alert_events").fetchone()[0]
    assert json.loads(raw) == d
