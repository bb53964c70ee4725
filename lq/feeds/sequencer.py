"""Pure gap and duplicate logic for trade streams: ids in, verdicts and requests out.

Per ``(symbol, kind)`` the :class:`Sequencer` keeps the highest id delivered and the holes
below it that are still missing. Rules (``shared/reference/binance-protocol.md`` §5.3.6-7):

* ``@trade``: the next id is ``t == last + 1``. A larger id opens a hole ``last+1 .. t-1``:
  the trade is delivered, a ``Gap(status="found")`` is returned, and a
  :class:`BackfillRequest` asks the transport to fetch the hole.
* ``@aggTrade``: ``a == last + 1`` and ``f == last l + 1``. A jump in ``a`` is a hole in
  aggregate ids (backfillable); a jump in ``f`` alone means the trade-id ranges of two
  consecutive aggregates do not touch (real in futures dumps) and is reported as an unfilled
  gap over *trade* ids, since no aggregate is missing.
* An id at or below ``last`` is delivered only if it lies in a hole (late, overlapping or
  backfilled trades), and then exactly once; otherwise it is a duplicate and dropped.
  Never deduplicate on time.

The sequencer does no I/O and never waits: the transport performs the requests and reports
back with :meth:`Sequencer.settle`. Holes that backfill could not fill stay tracked, so a
straggler arriving later is still delivered once.

Holes are data (``docs/architecture.md``): :meth:`Sequencer.reopen` tracks ids again that were
delivered but never stored (a hole reloaded from the ``gaps`` table after a restart, events a
failing database could not keep) and returns the request that fetches them. :meth:`settle`
answers with a partition of the request's ids into ``filled`` and ``unfilled`` ranges, the
first starting at the request's first id, so the stored ``found`` row is always replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from lq.errors import ValidationError
from lq.feeds.events import AggTrade, Gap, Trade

__all__ = [
    "MAX_ID_JUMP",
    "TRADE_IDS_NOT_AGGREGATES",
    "BackfillRequest",
    "Hole",
    "NullSequencer",
    "Sequencer",
    "Step",
    "StreamKind",
]

log = logging.getLogger(__name__)

StreamKind = Literal["trade", "aggTrade"]


class BackfillRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Fetch ids ``first_id..last_id`` (inclusive) of one symbol's stream over REST."""

    symbol: str
    kind: StreamKind
    first_id: int
    last_id: int

    @property
    def size(self) -> int:
        return self.last_id - self.first_id + 1


class Hole(msgspec.Struct, frozen=True, kw_only=True):
    """Ids ``first_id..last_id`` of a stream that were seen missing (a ``found`` or ``unfilled``
    gap row) and must be fetched; ``missing`` narrows them to the sub-ranges still not stored."""

    symbol: str
    kind: StreamKind
    first_id: int
    last_id: int
    missing: tuple[tuple[int, int], ...] | None = None
    #: ``False``: only track the ids (a straggler is delivered once), ask no backfill (a hole
    #: given up as too large to fetch)
    fetch: bool = True


class Step(msgspec.Struct, frozen=True):
    """The verdict on one trade: deliver it or not, plus gaps found and requests to make."""

    deliver: bool
    gaps: tuple[Gap, ...] = ()
    requests: tuple[BackfillRequest, ...] = ()
    #: why the trade is not a trade of this stream (set aside as a dead letter, not counted
    #: as a duplicate); empty for a delivered trade or a duplicate
    rejected: str = ""


#: the largest forward jump of a stream's ids that can be real: a trillion trades between two
#: consecutive frames is more than any venue has published in its life. A larger jump is a
#: corrupt or hostile frame; trusted, it would raise the stream's last id for good (every later
#: trade dropped as a duplicate, after a restart too) and open a hole no backfill can fill.
MAX_ID_JUMP = 10**12

#: how the reason of an aggTrade gap over *trade* ids starts (aggregates whose trade-id ranges do
#: not touch): its range is not of aggregate ids, so nothing fills it and no backfill is asked
TRADE_IDS_NOT_AGGREGATES = "trade ids "

_DELIVER = Step(True)
_DROP = Step(False)


@dataclass
class _State:
    last: int
    last_l: int | None = None  # aggTrade: last trade id of the last aggregate
    holes: list[list[int]] = field(default_factory=list)  # sorted, disjoint [lo, hi]
    forgotten: list[tuple[int, int]] = field(default_factory=list)  # evicted by max_holes


class Sequencer:
    """Gap detection and exactly-once delivery by trade id.

    Parameters
    ----------
    resume_ids
        ``{(symbol, kind): last_stored_id}``: the first live id after a restart is checked
        against these, so a gap since the last run is found and backfilled.
    max_backfill
        Largest number of ids one backfill request may cover. The part of a hole beyond it
        (the newest ids) is reported at once as an unfilled gap.
    max_holes
        Holes tracked per stream; beyond it the oldest is forgotten (logged).
    max_jump
        Largest forward jump of ids from the stream's last id that is believed; a trade
        beyond it is rejected (:attr:`Step.rejected`) and changes nothing.
    exchange
        Label put in :class:`~lq.feeds.events.Gap` events.
    agg_trade_ids_contiguous
        Whether consecutive aggTrades must cover contiguous trade ids; ``False`` on USD-M
        futures, whose aggregates leave non-market trades out (a jump in ``f`` is no hole).
    """

    def __init__(
        self,
        *,
        resume_ids: Mapping[tuple[str, StreamKind], int] | None = None,
        max_backfill: int = 100_000,
        max_holes: int = 10_000,
        max_jump: int = MAX_ID_JUMP,
        exchange: str = "binance",
        agg_trade_ids_contiguous: bool = True,
    ) -> None:
        if max_backfill < 0:
            raise ValidationError("max_backfill", max_backfill, "must be >= 0")
        if max_holes < 1:
            raise ValidationError("max_holes", max_holes, "must be >= 1")
        self.max_backfill = max_backfill
        self.max_holes = max_holes
        self.max_jump = max_jump
        self.exchange = exchange
        self.agg_trade_ids_contiguous = agg_trade_ids_contiguous
        self.duplicates = 0
        self._state: dict[tuple[str, str], _State] = {}
        for (symbol, kind), last in (resume_ids or {}).items():
            if kind not in ("trade", "aggTrade"):
                raise ValidationError(
                    "resume_ids", (symbol, kind), "kind must be trade or aggTrade"
                )
            self._state[(symbol.upper(), kind)] = _State(last=int(last))

    # -- queries ------------------------------------------------------------------------------

    def last_id(self, symbol: str, kind: StreamKind) -> int | None:
        """Highest id delivered (or resumed from) for this stream, ``None`` if none yet."""
        st = self._state.get((symbol, kind))
        return None if st is None else st.last

    def missing(
        self, symbol: str, kind: StreamKind, first: int, last: int
    ) -> list[tuple[int, int]]:
        """Sub-ranges of ``first..last`` that are still outstanding holes."""
        st = self._state.get((symbol, kind))
        if st is None:
            return []
        out = []
        for lo, hi in st.holes:
            a, b = max(lo, first), min(hi, last)
            if a <= b:
                out.append((a, b))
        return out

    def holes(self, symbol: str, kind: StreamKind) -> list[tuple[int, int]]:
        """All outstanding holes of a stream, oldest first."""
        st = self._state.get((symbol, kind))
        return [] if st is None else [(lo, hi) for lo, hi in st.holes]

    # -- the hot path -------------------------------------------------------------------------

    def on_trade(self, event: Trade | AggTrade, *, now: int) -> Step:
        """Judge one live or backfilled trade.

        Parameters
        ----------
        event
            A :class:`Trade` or :class:`AggTrade`.
        now
            Current time, µs (stamped on any :class:`Gap` found).
        """
        if type(event) is Trade:
            key = (event.symbol, "trade")
            i = event.trade_id
        else:
            key = (event.symbol, "aggTrade")
            i = event.agg_id  # type: ignore[union-attr]
        st = self._state.get(key)
        if key[1] == "aggTrade":
            why = self._agg_trade_ids(event, None if st is None else st.last_l)  # type: ignore[arg-type]
            if why:
                log.warning("%s aggTrade: %s", key[0], why)
                return Step(False, rejected=why)
        if st is None:
            if i >= self.max_jump:  # the first id of a stream is judged as a jump from 0
                return self._implausible(key, i, None)
            self._state[key] = _State(
                last=i,
                last_l=event.last_id if key[1] == "aggTrade" else None,  # type: ignore[union-attr]
            )
            return _DELIVER
        last = st.last
        if i == last + 1:
            st.last = i
            if key[1] == "aggTrade":
                return self._agg_contiguity(st, event, now)  # type: ignore[arg-type]
            return _DELIVER
        if i > last + 1:
            if i - last >= self.max_jump:
                return self._implausible(key, i, last)
            st.last = i
            if key[1] == "aggTrade":
                st.last_l = event.last_id  # type: ignore[union-attr]
            return self._open_hole(st, key, last + 1, i - 1, now)
        # i <= last: a straggler for a hole, or a duplicate
        if st.holes and self._take(st, i):
            return _DELIVER
        self.duplicates += 1
        return _DROP

    def on_marker(self, symbol: str, kind: StreamKind, i: int, *, now: int) -> Step:
        """Account for id ``i`` of a stream that is not a trade (a USD-M ``@trade`` entry with
        ``X`` other than ``MARKET``, an aggregate id Binance voided): it fills its slot of the
        id sequence, or opens the hole before it, and is never delivered."""
        key = (symbol, kind)
        st = self._state.get(key)
        if st is None:
            if i >= self.max_jump:
                return self._implausible(key, i, None)
            self._state[key] = _State(last=i)
            return _DROP
        last = st.last
        if i == last + 1:
            st.last = i
            return _DROP
        if i > last + 1:
            if i - last >= self.max_jump:
                return self._implausible(key, i, last)
            st.last = i
            step = self._open_hole(st, key, last + 1, i - 1, now)
            return Step(False, step.gaps, step.requests)
        if st.holes:
            self._take(st, i)
        return _DROP

    # -- backfill bookkeeping -----------------------------------------------------------------

    def settle(self, request: BackfillRequest, *, now: int, reason: str = "") -> tuple[Gap, ...]:
        """Report how a backfill request ended.

        Returns a partition of ``request.first_id..last_id`` into ``Gap(status="filled")``
        ranges (no id of them is missing any more) and ``Gap(status="unfilled")`` ranges
        (still missing, or forgotten beyond ``max_holes``) with ``reason``, in id order. The
        first range starts at ``request.first_id``: stored, it replaces the ``found`` row.
        Unfilled ranges stay tracked: a late trade in them is still delivered once.
        """
        lo, hi = request.first_id, request.last_id
        why = reason or "backfill returned no trades for these ids"
        out: list[tuple[int, int, str, str]] = []
        bad = [(a, b, why) for a, b in self.missing(request.symbol, request.kind, lo, hi)]
        st = self._state.get((request.symbol, request.kind))
        for a, b in st.forgotten if st is not None else ():
            a, b = max(a, lo), min(b, hi)
            if a <= b:
                bad.append((a, b, f"forgotten: more than max_holes={self.max_holes} open holes"))
        nxt = lo
        for a, b, r in sorted(bad):
            a = max(a, nxt)
            if a > b:
                continue
            if a > nxt:
                out.append((nxt, a - 1, "filled", ""))
            out.append((a, b, "unfilled", r))
            nxt = b + 1
        if nxt <= hi:
            out.append((nxt, hi, "filled", ""))
        return tuple(self._gap(request.symbol, request.kind, a, b, s, now, r) for a, b, s, r in out)

    def reopen(
        self,
        symbol: str,
        kind: StreamKind,
        first_id: int,
        last_id: int,
        missing: Sequence[tuple[int, int]] | None = None,
    ) -> BackfillRequest:
        """Track ids again that were delivered but are not stored, and return the request
        that fetches them (settled over the whole ``first_id..last_id``).

        ``missing`` narrows the ids tracked to these sub-ranges (the rest is stored already);
        by default all of ``first_id..last_id``. Used for a ``found`` gap reloaded after a
        restart, and for events a failing database lost. Ids above the stream's last id
        raise it, as if they had been seen.
        """
        if kind not in ("trade", "aggTrade"):
            raise ValidationError("kind", kind, "must be trade or aggTrade")
        if first_id > last_id:
            raise ValidationError("first_id", first_id, f"must be <= last_id={last_id}")
        key = (symbol.upper(), kind)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _State(last=last_id)
        elif last_id > st.last:
            st.last = last_id
            st.last_l = None
        for a, b in [(first_id, last_id)] if missing is None else missing:
            a, b = max(a, first_id), min(b, last_id)
            if a <= b:
                self._merge_hole(st, a, b)
        return BackfillRequest(
            symbol=key[0],
            kind=kind,
            first_id=first_id,
            last_id=last_id,
        )

    # -- internals ----------------------------------------------------------------------------

    def _implausible(self, key: tuple[str, str], i: int, last: int | None) -> Step:
        if last is None:  # the stream's first id: no venue has published that many trades
            why = (
                f"{key[1]} id {i} as the stream's first id is at least max_jump="
                f"{self.max_jump:,}: not a real id; the stream starts at the next id below it"
            )
        else:
            why = (
                f"{key[1]} id {i} is {i - last:,} ids past the stream's last id {last}, at least "
                f"max_jump={self.max_jump:,}: not a real id; the stream goes on from {last}"
            )
        log.warning("%s %s: %s", key[0], key[1], why)
        return Step(False, rejected=why)

    def _agg_trade_ids(self, ev: AggTrade, prev_l: int | None) -> str:
        """Why an aggregate's trade-id range ``f..l`` cannot be real ("" if it can): an
        aggregate of a trillion trades, or one starting that far past the last one."""
        f, last, big = ev.first_id, ev.last_id, self.max_jump
        if f < 0:  # USD-M: an aggregate without trade ids
            return ""
        if last - f >= big:
            return f"aggTrade {ev.agg_id}: trade ids {f}..{last} span at least max_jump={big:,}: not real"
        start = 0 if prev_l is None else prev_l
        if f - start >= big:
            return (
                f"aggTrade {ev.agg_id}: first trade id {f} is at least max_jump={big:,} past "
                f"{'0' if prev_l is None else f'the last aggregate trade id {prev_l}'}: not real"
            )
        return ""

    def _gap(
        self, symbol: str, kind: str, lo: int, hi: int, status: str, now: int, reason: str = ""
    ) -> Gap:
        return Gap(
            symbol=symbol,
            kind=kind,  # type: ignore[arg-type]
            first_missing=lo,
            last_missing=hi,
            status=status,  # type: ignore[arg-type]
            detected_ts=now,
            reason=reason,
            exchange=self.exchange,
        )

    def _agg_contiguity(self, st: _State, ev: AggTrade, now: int) -> Step:
        prev_l = st.last_l
        st.last_l = ev.last_id
        if prev_l is None or ev.first_id == prev_l + 1 or ev.first_id < 0:
            return _DELIVER
        if not self.agg_trade_ids_contiguous:
            return _DELIVER  # USD-M: non-market trades are not aggregated
        if ev.first_id > prev_l + 1:
            gap = self._gap(
                ev.symbol,
                "aggTrade",
                prev_l + 1,
                ev.first_id - 1,
                "unfilled",
                now,
                f"{TRADE_IDS_NOT_AGGREGATES}{prev_l + 1}..{ev.first_id - 1} (not aggregate ids) are skipped "
                f"between aggregates {ev.agg_id - 1} and {ev.agg_id}; no aggregate is missing, "
                "so there is nothing to backfill",
            )
            log.warning(
                "%s aggTrade %d: first trade id %d, expected %d",
                ev.symbol,
                ev.agg_id,
                ev.first_id,
                prev_l + 1,
            )
            return Step(True, (gap,))
        log.warning(
            "%s aggTrade %d: first trade id %d overlaps the previous aggregate (last %d)",
            ev.symbol,
            ev.agg_id,
            ev.first_id,
            prev_l,
        )
        return _DELIVER

    def _open_hole(self, st: _State, key: tuple[str, str], lo: int, hi: int, now: int) -> Step:
        symbol, kind = key
        gaps: list[Gap] = []
        old = self._add_hole(st, lo, hi)
        if old is not None:
            gaps.append(
                self._gap(
                    symbol,
                    kind,
                    old[0],
                    old[1],
                    "unfilled",
                    now,
                    f"forgotten: more than max_holes={self.max_holes} open holes",
                )
            )
        cap_hi = min(hi, lo + self.max_backfill - 1)
        reqs: list[BackfillRequest] = []
        if cap_hi >= lo:
            gaps.append(self._gap(symbol, kind, lo, cap_hi, "found", now))
            reqs.append(BackfillRequest(symbol=symbol, kind=kind, first_id=lo, last_id=cap_hi))  # type: ignore[arg-type]
        if cap_hi < hi:
            over = (cap_hi + 1, hi)
            why = (
                f"{hi - lo + 1} ids missing, more than max_backfill={self.max_backfill}; "
                f"ids {over[0]}..{over[1]} are not backfilled"
            )
            gaps.append(self._gap(symbol, kind, over[0], over[1], "found", now))
            gaps.append(self._gap(symbol, kind, over[0], over[1], "unfilled", now, why))
        log.info("%s %s: gap %d..%d (%d ids)", symbol, kind, lo, hi, hi - lo + 1)
        return Step(True, tuple(gaps), tuple(reqs))

    def _add_hole(self, st: _State, lo: int, hi: int) -> tuple[int, int] | None:
        """Track a new hole (above every existing one); returns the hole forgotten, if any."""
        st.holes.append([lo, hi])  # always above every existing hole: it starts at last + 1
        if len(st.holes) <= self.max_holes:
            return None
        a, b = st.holes.pop(0)
        log.warning("forgetting hole %d..%d: more than max_holes=%d", a, b, self.max_holes)
        st.forgotten.append((a, b))
        del st.forgotten[: -self.max_holes]
        return a, b

    @staticmethod
    def _merge_hole(st: _State, lo: int, hi: int) -> None:
        """Add ``lo..hi`` to the sorted, disjoint holes, merging what overlaps or touches."""
        keep: list[list[int]] = []
        for h in st.holes:  # sorted: a merge only ever widens towards later holes
            if h[1] < lo - 1 or h[0] > hi + 1:
                keep.append(h)
            else:
                lo, hi = min(lo, h[0]), max(hi, h[1])
        keep.append([lo, hi])
        keep.sort()
        st.holes[:] = keep
        st.forgotten[:] = [f for f in st.forgotten if f[1] < lo or f[0] > hi]

    @staticmethod
    def _take(st: _State, i: int) -> bool:
        holes = st.holes
        for k, h in enumerate(holes):
            lo, hi = h
            if i < lo:
                return False
            if i > hi:
                continue
            if lo == hi:
                del holes[k]
            elif i == lo:
                h[0] = lo + 1
            elif i == hi:
                h[1] = hi - 1
            else:
                holes[k : k + 1] = [[lo, i - 1], [i + 1, hi]]
            return True
        return False


class NullSequencer(Sequencer):
    """The sequencer of a venue whose trade ids are not contiguous (``id_rule="none"``).

    It cannot tell a hole from a venue's normal numbering, so it never reports one: every
    trade is delivered, no :class:`~lq.feeds.events.Gap` and no backfill request is made.
    Exact duplicates (the same id again) are still dropped, since the store keys trades by
    id. The feed's status says the gaps are *not checkable* instead of showing 0.
    """

    def __init__(self, *, exchange: str = "binance") -> None:
        super().__init__(exchange=exchange)
        self._seen: dict[tuple[str, str], set[int]] = {}

    def on_trade(self, event: Trade | AggTrade, *, now: int) -> Step:
        if type(event) is Trade:
            key = (event.symbol, "trade")
            i = event.trade_id
        else:
            key = (event.symbol, "aggTrade")
            i = event.agg_id  # type: ignore[union-attr]
        seen = self._seen.setdefault(key, set())
        if i in seen:
            self.duplicates += 1
            return _DROP
        seen.add(i)
        if len(seen) > 200_000:  # bounded: the store's primary key is the final judge
            seen.clear()
            seen.add(i)
        st = self._state.get(key)
        if st is None:
            self._state[key] = _State(last=i)
        elif i > st.last:
            st.last = i
        return _DELIVER

    def on_marker(self, symbol: str, kind: StreamKind, i: int, *, now: int) -> Step:
        return _DROP
