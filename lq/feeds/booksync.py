"""Keeping a local book in step with Binance's diff stream: the sync state machine, sans-I/O.

:class:`BookSync` owns an :class:`~lq.feeds.book.L2Book`. Feed it every
:class:`~lq.feeds.events.DepthUpdate` of its symbol (:meth:`BookSync.on_update`) and the
snapshots the transport fetched (:meth:`BookSync.on_snapshot`); it never does I/O itself.
When it needs a snapshot, :attr:`BookSync.needs_snapshot` says so, why, and how new the
snapshot must be; the transport fetches one (obeying the REST weights) and hands it back.

The procedure is Binance's (``shared/reference/binance-protocol.md`` §1.6, revised
2025-11-12; USD-M §4.1), with every branch named:

::

    waiting ──snapshot S──► drop buffered events with u <= S.lastUpdateId (spot)
      ▲  │                        (USD-M: u < S.lastUpdateId)
      │  │ events are buffered    first remaining event must hold
      │  │ (a buffered event that    spot:  U <= S+1 <= u      USD-M: U <= S <= u
      │  │  does not follow the   ── it does not (U too high): the snapshot is OLDER than
      │  │  previous one restarts    the events: "snapshot_older_than_events", keep the
      │  │  the buffer)              buffer, fetch again (Binance: "if lastUpdateId < U,
      │  │                           fetch again")
      │  ▼
      │ synced ──each event──► u <= book id: a duplicate / replayed event, dropped (counted)
      │                        spot:  U == previous u + 1     USD-M: pu == previous u
      │                        else ──► resync "gap" (the event opens the new buffer)
      │                        after the whole event: best bid >= best ask
      └──────── resync ◄────── ──► resync "crossed" / "locked" (the buffer starts afresh)

A snapshot that arrives while synced, or one whose ``lastUpdateId`` is below the book's or
below one already used (a late or cached REST answer), is **stale**: it is never loaded (it
would rewind the book), only counted in :attr:`BookSync.stale_snapshots`. Every resync is
recorded as a :class:`Resync` (reason, time, ids) in :attr:`BookSync.resyncs` (the last
``ledger`` of them) and counted per reason in :attr:`BookSync.resync_counts`; a resync
clears the book, so nothing reads a book that is known to be wrong (:attr:`BookSync.synced`
is ``False`` until a new snapshot joins the stream).

One deliberate reading of the spot procedure: Binance's step 2 says "if the snapshot's
``lastUpdateId`` is less than the first buffered ``U``, fetch again", while step 4 accepts a
first event with ``U <= lastUpdateId + 1``. At ``lastUpdateId == U - 1`` the two disagree;
the event then continues the snapshot exactly, so :class:`BookSync` follows step 4 and loads
it (a refetch would be wasted weight).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Literal

import msgspec

from lq.feeds.book import L2Book
from lq.feeds.events import BookResync, DepthSnapshot, DepthUpdate, ResyncReason

__all__ = [
    "BookMarket",
    "BookSync",
    "Outcome",
    "Resync",
    "ResyncReason",
    "SnapshotRequest",
]

BookMarket = Literal["spot", "usdm"]
Outcome = Literal["applied", "buffered", "dropped", "resync"]
"""What :meth:`BookSync.on_update` did with an event: applied to the synced book; buffered
while waiting for a snapshot; dropped (already in the book: a duplicate, or covered by the
snapshot); or it broke the sequence / crossed the book and a resync began."""


Resync = BookResync
"""One resync of the book (:class:`lq.feeds.events.BookResync`, kept under this name)."""


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Fetch a snapshot for ``symbol``: its ``lastUpdateId`` must be at least ``min_update_id``
    (from the first buffered event; ``None``: no event buffered yet, any snapshot will do
    for now)."""

    symbol: str
    reason: ResyncReason
    min_update_id: int | None


class BookSync:
    """The sync state machine for one symbol's diff stream (spot or USD-M).

    Parameters
    ----------
    symbol
        The exchange symbol; events of another symbol are refused with ``ValueError``.
    market
        ``"spot"`` (``U == previous u + 1``) or ``"usdm"`` (``pu == previous u``).
    max_buffer
        Events held while waiting for a snapshot; beyond it the oldest are dropped (which
        only raises the snapshot id needed, :attr:`SnapshotRequest.min_update_id`).
    ledger
        How many :class:`Resync` records :attr:`resyncs` keeps (counts are kept for all).

    Examples
    --------
    >>> from lq.feeds.events import BookResync, DepthSnapshot, DepthUpdate, ResyncReason
    >>> def diff(U, u, bids=(), asks=()):
    ...     return DepthUpdate(symbol="X", first_id=U, last_id=u, prev_last_id=None,
    ...                        bids=bids, asks=asks, ts=0, event_ts=0)
    >>> s = BookSync("X")
    >>> s.needs_snapshot.reason, s.on_update(diff(5, 9, bids=((10.0, 1.0),)))
    ('start', 'buffered')
    >>> s.on_snapshot(DepthSnapshot(symbol="X", last_update_id=7, bids=((9.0, 2.0),),
    ...                             asks=((11.0, 1.0),), ts=0))
    'synced'
    >>> s.book.best_bid, s.book.update_id, s.on_update(diff(11, 12))
    (10.0, 9, 'resync')
    >>> s.resyncs[-1].reason, s.needs_snapshot.min_update_id
    ('gap', 10)
    """

    def __init__(
        self,
        symbol: str,
        *,
        market: BookMarket = "spot",
        max_buffer: int = 10_000,
        ledger: int = 1_000,
    ) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market={market!r}: expected 'spot' or 'usdm'")
        if max_buffer < 1:
            raise ValueError(f"max_buffer={max_buffer}: expected at least 1")
        self.symbol = symbol
        self.market: BookMarket = market
        self.book = L2Book(symbol)
        self.max_buffer = max_buffer
        self._buffer: collections.deque[DepthUpdate] = collections.deque()
        self._synced = False
        self._joined = False  # synced, and an event has joined the snapshot
        self._reason: ResyncReason | None = "start"
        self._last_snapshot_id = -1
        self.resyncs: collections.deque[Resync] = collections.deque(maxlen=ledger)
        """The last ``ledger`` resyncs (the initial sync is not one)."""
        self.resync_counts: dict[ResyncReason, int] = {}
        """Resyncs per reason, since creation."""
        self.applied = 0
        """Events applied to the book."""
        self.duplicates = 0
        """Events dropped because the book already held them (``u <= book id`` while synced)."""
        self.covered = 0
        """Buffered events dropped because the snapshot already held them."""
        self.buffer_restarts = 0
        """Times a buffered event did not follow the previous one, so the buffer restarted."""
        self.buffer_dropped = 0
        """Oldest buffered events dropped beyond ``max_buffer``."""
        self.stale_snapshots = 0
        """Snapshots refused as stale (unrequested, or older than the book or a used one)."""
        self.snapshots_loaded = 0
        """Snapshots loaded into the book."""

    # -- state ----------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True when the book holds a snapshot and every event since, in sequence."""
        return self._synced

    @property
    def resync_total(self) -> int:
        """All resyncs since creation."""
        return sum(self.resync_counts.values())

    @property
    def buffered(self) -> int:
        """Events waiting for a snapshot."""
        return len(self._buffer)

    @property
    def needs_snapshot(self) -> SnapshotRequest | None:
        """What to fetch now, or ``None`` when synced."""
        if self._synced:
            return None
        first = self._buffer[0] if self._buffer else None
        need = None
        if first is not None:
            # spot: U <= S + 1; USD-M: U <= S
            need = first.first_id - 1 if self.market == "spot" else first.first_id
        return SnapshotRequest(
            symbol=self.symbol, reason=self._reason or "start", min_update_id=need
        )

    # -- input ----------------------------------------------------------------------------

    def on_update(self, ev: DepthUpdate) -> Outcome:
        """Take one diff event of this symbol; returns what was done with it."""
        if ev.symbol != self.symbol:
            raise ValueError(f"BookSync({self.symbol!r}) was given an event of {ev.symbol!r}")
        if self.market == "usdm" and ev.prev_last_id is None:
            raise ValueError(
                f"BookSync({self.symbol!r}, market='usdm') was given an event without pu: "
                "spot events need market='spot'"
            )
        if not self._synced:
            self._buffer_event(ev)
            return "buffered"
        book = self.book
        if not self._joined:  # the first event after the snapshot
            sid = book.update_id
            if self._covered_by_snapshot(ev, sid):
                self.covered += 1
                return "dropped"
            if not self._joins(ev, sid):
                self._resync(
                    "snapshot_older_than_events",
                    f"snapshot lastUpdateId {sid} is older than the first event after it "
                    f"(U={ev.first_id}); fetching again",
                    ev,
                    keep=ev,
                )
                return "resync"
            self._joined = True
            return self._apply(ev)
        if ev.last_id <= book.update_id:
            self.duplicates += 1
            return "dropped"
        if self.market == "spot":
            if ev.first_id != book.update_id + 1:
                self._resync(
                    "gap",
                    f"U={ev.first_id} does not follow the book's update id {book.update_id} "
                    f"(expected U={book.update_id + 1})",
                    ev,
                    keep=ev,
                )
                return "resync"
        elif ev.prev_last_id != book.update_id:
            self._resync(
                "gap",
                f"pu={ev.prev_last_id} is not the previous event's u={book.update_id}",
                ev,
                keep=ev,
            )
            return "resync"
        return self._apply(ev)

    def on_snapshot(self, snap: DepthSnapshot) -> Literal["synced", "waiting", "stale"]:
        """Take a snapshot (REST). Returns ``"synced"`` when the book is in step again,
        ``"waiting"`` when more is needed (a newer snapshot, or the event that joins it),
        ``"stale"`` when it was refused (see the module docstring)."""
        if snap.symbol != self.symbol:
            raise ValueError(f"BookSync({self.symbol!r}) was given a snapshot of {snap.symbol!r}")
        if snap.source != "rest":
            raise ValueError(
                f"BookSync({self.symbol!r}) was given a partial-book frame: it holds only the "
                "top levels, so it cannot start a full book; pass a REST snapshot"
            )
        sid = snap.last_update_id
        if self._synced or sid < self._last_snapshot_id:
            self.stale_snapshots += 1
            return "stale"
        first = self._buffer[0] if self._buffer else None
        # Binance step 2: the snapshot must reach the first buffered event
        if (
            first is not None
            and not self._covered_by_snapshot(first, sid)
            and not self._joins(first, sid)
        ):
            self._resync(
                "snapshot_older_than_events",
                f"snapshot lastUpdateId {sid} is older than the first buffered event "
                f"(U={first.first_id}); fetching again",
                None,
                snap=snap,
            )
            return "waiting"
        self._last_snapshot_id = sid
        self.book.load(bids=snap.bids, asks=snap.asks, update_id=sid)
        self.snapshots_loaded += 1
        self._synced = True
        self._joined = False
        self._reason = None
        pending = list(self._buffer)
        self._buffer.clear()
        for i, ev in enumerate(pending):
            if self.on_update(ev) == "resync":
                # the rest of the buffer follows the offending event, which opened a new one
                for later in pending[i + 1 :]:
                    self._buffer_event(later)
                break
        return "synced" if self._synced else "waiting"

    # -- internals ----------------------------------------------------------------------------

    def _covered_by_snapshot(self, ev: DepthUpdate, sid: int) -> bool:
        # spot drops u <= lastUpdateId; USD-M drops u < lastUpdateId
        return ev.last_id <= sid if self.market == "spot" else ev.last_id < sid

    def _joins(self, ev: DepthUpdate, sid: int) -> bool:
        if self.market == "spot":
            return ev.first_id <= sid + 1 <= ev.last_id
        return ev.first_id <= sid <= ev.last_id

    def _follows(self, prev: DepthUpdate, ev: DepthUpdate) -> bool:
        if self.market == "spot":
            return ev.first_id == prev.last_id + 1
        return ev.prev_last_id == prev.last_id

    def _buffer_event(self, ev: DepthUpdate) -> None:
        buf = self._buffer
        if buf:
            last = buf[-1]
            if ev.last_id <= last.last_id:
                self.duplicates += 1
                return
            if not self._follows(last, ev):
                self.buffer_restarts += 1
                buf.clear()
        buf.append(ev)
        if len(buf) > self.max_buffer:
            buf.popleft()
            self.buffer_dropped += 1

    def _apply(self, ev: DepthUpdate) -> Outcome:
        book = self.book
        book.apply(bids=ev.bids, asks=ev.asks, update_id=ev.last_id)
        self.applied += 1
        if book.best_bid >= book.best_ask:
            locked = book.best_bid == book.best_ask
            self._resync(
                "locked" if locked else "crossed",
                f"best bid {book.best_bid!r} {'==' if locked else '>'} best ask "
                f"{book.best_ask!r} after U={ev.first_id} u={ev.last_id}",
                ev,
                keep=None,
            )
            return "resync"
        return "applied"

    def _resync(
        self,
        reason: ResyncReason,
        detail: str,
        ev: DepthUpdate | None,
        *,
        keep: DepthUpdate | None = None,
        snap: DepthSnapshot | None = None,
    ) -> None:
        before = self.book.update_id if self._synced else -1
        if ev is not None:
            rec = Resync(
                symbol=self.symbol,
                reason=reason,
                detail=detail,
                ts=ev.ts,
                recv_ts=ev.recv_ts,
                book_update_id=before,
                first_id=ev.first_id,
                last_id=ev.last_id,
                prev_last_id=ev.prev_last_id,
                exchange=ev.exchange,
            )
        else:
            assert snap is not None
            rec = Resync(
                symbol=self.symbol,
                reason=reason,
                detail=detail,
                ts=snap.ts,
                recv_ts=snap.recv_ts,
                book_update_id=before,
                last_id=snap.last_update_id,
                exchange=snap.exchange,
            )
        self.resyncs.append(rec)
        self.resync_counts[reason] = self.resync_counts.get(reason, 0) + 1
        self._reason = reason
        if self._synced:
            self._synced = False
            self._joined = False
            self.book.clear()
            self._buffer.clear()
        if keep is not None:
            self._buffer_event(keep)

    def __iter__(self) -> Iterator[DepthUpdate]:
        """The buffered events, oldest first."""
        return iter(tuple(self._buffer))

    def __repr__(self) -> str:
        state = (
            "synced" if self._synced else f"waiting ({self._reason}, {len(self._buffer)} buffered)"
        )
        return f"BookSync({self.symbol!r}, {self.market}, {state}, resyncs={self.resync_total})"
