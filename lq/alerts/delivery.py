"""Delivery: a queue per channel, retries with back-off, a per-channel rate limit.

Nothing here ever blocks the caller: :meth:`Delivery.submit` only puts the event on bounded
queues (a full queue records ``dropped``). One worker task per channel sends in order,
waits for the channel's rate limit, retries a failed send with exponential back-off (but
not a :class:`~lq.alerts.channels.PermanentDeliveryError`: a body that cannot be encoded,
an HTTP 4xx other than 408/425/429, an SMTP 5xx, which the same request would meet again)
and records the outcome (``sent`` or ``failed``, attempts, the last error with secrets masked)
through ``record(event_id, channel, status)``, which the engine maps to
:func:`lq.alerts.store.set_delivery`. HTTP channels are async with timeouts; SMTP runs on a
worker thread; every attempt is bounded by ``attempt_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from lq.alerts.channels import AlertChannel, PermanentDeliveryError, redact
from lq.alerts.store import AlertEvent
from lq.errors import ValidationError

__all__ = ["Delivery", "RetryPolicy"]

log = logging.getLogger(__name__)

Recorder = Callable[[int, str, dict[str, object]], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """``attempts`` tries, waiting ``initial * factor**k`` (capped at ``max_delay``) between.

    ``rate`` is the channel's sustained messages per second (token bucket of ``burst``);
    ``attempt_timeout`` bounds one send.
    """

    attempts: int = 4
    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    attempt_timeout: float = 10.0
    rate: float = 1.0
    burst: int = 5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValidationError("attempts", self.attempts, "must be >= 1")
        for name in ("initial", "max_delay", "attempt_timeout", "rate"):
            v = getattr(self, name)
            if not v > 0:
                raise ValidationError(name, v, "must be > 0")
        if self.burst < 1:
            raise ValidationError("burst", self.burst, "must be >= 1")

    def delays(self) -> list[float]:
        return [
            min(self.initial * self.factor**k, self.max_delay) for k in range(self.attempts - 1)
        ]


class _Bucket:
    """Token bucket: ``rate`` tokens/s, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.t = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self.tokens) / self.rate)


class Delivery:
    """Per-channel queues and workers on the running loop.

    Parameters
    ----------
    channels
        Channel name -> channel (see :func:`lq.alerts.channels.channels_from_settings`).
    record
        ``async record(event_id, channel, status)`` stores a delivery status.
    policy
        Retry/back-off/rate limit, the same for every channel unless ``policies`` overrides.
    queue_size
        Per channel; a full queue records ``dropped`` instead of waiting.
    """

    def __init__(
        self,
        channels: Mapping[str, AlertChannel],
        *,
        record: Recorder | None = None,
        policy: RetryPolicy | None = None,
        policies: Mapping[str, RetryPolicy] | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.channels = dict(channels)
        self._record = record
        self.policy = policy or RetryPolicy()
        self.policies = dict(policies or {})
        self._queues: dict[str, asyncio.Queue[AlertEvent]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending_records: set[asyncio.Task[None]] = set()
        self.queue_size = queue_size
        self.sent: dict[str, int] = {n: 0 for n in self.channels}
        self.failed: dict[str, int] = {n: 0 for n in self.channels}

    def start(self) -> None:
        """Start one worker per channel (call on the running loop)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        for name, ch in self.channels.items():
            q: asyncio.Queue[AlertEvent] = asyncio.Queue(self.queue_size)
            self._queues[name] = q
            pol = self.policies.get(name, self.policy)
            self._tasks.append(
                loop.create_task(self._worker(name, ch, q, pol), name=f"lq.alerts.{name}")
            )

    def submit(self, event: AlertEvent) -> None:
        """Queue ``event`` on each of its rule's channels; never waits."""
        for name in event.rule.channels:
            if name == "dashboard" and name not in self._queues:
                continue  # stored already: nothing to send
            q = self._queues.get(name)
            if q is None:
                self._note(event, name, {"status": "failed", "attempts": 0,
                                         "error": f"channel {name!r} is not configured"})  # fmt: skip
                continue
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self._note(event, name, {"status": "dropped", "attempts": 0, "error": "queue full"})

    def _note(self, event: AlertEvent, channel: str, status: dict[str, object]) -> None:
        if channel != "dashboard":
            log.warning("alert %s on %s: %s", event.fired_key, channel, status.get("error"))
        if self._record is None or event.id is None:
            return
        t = asyncio.get_running_loop().create_task(self._safe_record(event.id, channel, status))
        self._pending_records.add(t)
        t.add_done_callback(self._pending_records.discard)

    async def _safe_record(self, event_id: int, channel: str, status: dict[str, object]) -> None:
        try:
            assert self._record is not None
            await self._record(event_id, channel, status)
        except Exception:
            log.exception("could not record delivery status of event %s on %s", event_id, channel)

    async def _worker(
        self, name: str, ch: AlertChannel, q: asyncio.Queue[AlertEvent], pol: RetryPolicy
    ) -> None:
        bucket = _Bucket(pol.rate, pol.burst)
        delays = pol.delays()
        while True:
            ev = await q.get()
            try:
                await bucket.take()
                error = ""
                attempts, ok = 0, False
                for attempt in range(1, pol.attempts + 1):
                    attempts = attempt
                    try:
                        await asyncio.wait_for(ch.send(ev), pol.attempt_timeout)
                    except asyncio.CancelledError:
                        raise
                    except PermanentDeliveryError as exc:
                        error = redact(f"{type(exc).__name__}: {exc}")
                        break  # trying again would fail the same way
                    except Exception as exc:
                        error = redact(f"{type(exc).__name__}: {exc}".strip())
                        if isinstance(exc, TimeoutError) and not str(exc):
                            error = f"TimeoutError: no answer in {pol.attempt_timeout:g} s"
                        log.info("alert %s on %s: attempt %d failed: %s",
                                 ev.fired_key, name, attempt, error)  # fmt: skip
                        if attempt < pol.attempts:
                            await asyncio.sleep(delays[attempt - 1])
                        continue
                    ok = True
                    break
                if ok:
                    self.sent[name] += 1
                    await self._safe_record_now(ev, name, {
                        "status": "sent", "attempts": attempts, "ts": time.time_ns() // 1000,
                        **({"error": error} if error else {}),
                    })  # fmt: skip
                else:
                    self.failed[name] += 1
                    log.warning("alert %s on %s failed after %d attempts: %s",
                                ev.fired_key, name, attempts, error)  # fmt: skip
                    await self._safe_record_now(ev, name, {
                        "status": "failed", "attempts": attempts,
                        "ts": time.time_ns() // 1000, "error": error,
                    })  # fmt: skip
            finally:
                q.task_done()

    async def _safe_record_now(self, ev: AlertEvent, name: str, status: dict[str, object]) -> None:
        if self._record is not None and ev.id is not None:
            await self._safe_record(ev.id, name, status)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued event is sent or failed (and recorded)."""

        async def _all() -> None:
            for q in self._queues.values():
                await q.join()
            while self._pending_records:
                await asyncio.gather(*list(self._pending_records))

        await asyncio.wait_for(_all(), timeout)

    async def stop(self, *, drain_timeout: float = 5.0) -> None:
        """Give queued events ``drain_timeout`` seconds, then cancel the workers."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await self.drain(drain_timeout)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        for ch in self.channels.values():
            close = getattr(ch, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
