"""A frozen snapshot of a feed's health, read by the collector and the dashboard."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["FeedState", "FeedStatus"]

FeedState = Literal["idle", "connecting", "live", "reconnecting", "failed", "stopped"]


class FeedStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Health of a feed (:class:`~lq.feeds.connection.FeedClient`) at one instant.

    Attributes
    ----------
    state
        ``idle`` (not started), ``connecting`` (no connection yet), ``live`` (every connection
        group has an open connection), ``reconnecting``, ``failed`` (attempts exhausted) or
        ``stopped``.
    connections
        WebSocket connections open now (two per group during an overlap rotation).
    streams
        Streams subscribed.
    messages
        Frames received since start.
    messages_per_s
        Frames per second over the last 10 s.
    reconnects
        Connections that ended and were replaced (any close code, staleness).
    rotations
        Planned overlap rotations (age limit, ``serverShutdown``).
    connect_failures
        Connection attempts that failed.
    lag_p50_ms, lag_p99_ms
        Exchange event time to local receipt, over the last 2048 trades (includes clock skew).
    lag_min_ms
        The smallest of those lags: the clock offset (local minus exchange) plus the fastest
        transit. ``lag - lag_min`` is latency above the fastest message, free of the offset.
    id_rule
        ``"contiguous"`` (trade ids are checked for gaps) or ``"none"`` (the venue has no
        exact ids: gaps are not checkable).
    gaps_found, gaps_filled, gaps_unfilled
        :class:`~lq.feeds.events.Gap` events emitted by status; ``None`` when gaps are not
        checkable (``id_rule="none"``), never 0.
    backfilled
        Trades delivered from REST backfill.
    duplicates_dropped
        Trades dropped because their id was already delivered.
    rejected
        Frames the parser refused (sent to the sink as ``Rejected``).
    markers_skipped
        USD-M ``@trade`` entries that are not trades (``X`` other than ``MARKET``: ``NA``,
        ``INSURANCE_FUND``, ...): counted, their ids accounted for, never delivered.
    sink_errors
        Exceptions raised by the sink (logged, never fatal).
    last_message_age_s
        Seconds since the last frame on any connection (``None`` before the first).
    error
        Why the feed failed, if it did.
    books
        Order-book health per symbol when depth is collected (``None`` otherwise):
        ``synced``, ``update_id``, ``resyncs`` (and ``resync_reasons``), ``crossed`` (crossed
        or locked books found), ``last_break_ts``/``last_break_reason`` (the last resync's
        receive time and reason), ``snapshots`` loaded, ``stale_snapshots`` refused (older than
        one already used), ``duplicates`` dropped.
    """

    state: FeedState
    connections: int = 0
    streams: int = 0
    messages: int = 0
    messages_per_s: float = 0.0
    reconnects: int = 0
    rotations: int = 0
    connect_failures: int = 0
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_min_ms: float | None = None
    id_rule: str = "contiguous"
    gaps_found: int | None = 0
    gaps_filled: int | None = 0
    gaps_unfilled: int | None = 0
    backfilled: int = 0
    duplicates_dropped: int = 0
    rejected: int = 0
    markers_skipped: int = 0
    sink_errors: int = 0
    last_message_age_s: float | None = None
    error: str | None = None
    books: dict[str, dict[str, Any]] | None = None

    @property
    def gap_check(self) -> str:
        """``"checked"`` or ``"not checkable"`` (a venue without exact trade ids)."""
        return "checked" if self.id_rule == "contiguous" else "not checkable"
