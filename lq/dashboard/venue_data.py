"""What the Venues tab reads: one asset's instruments on every venue in the store, and its
cross-venue numbers (computed by :mod:`lq.analytics.crossvenue` / :mod:`lq.analytics.leadlag`).

Reading only; the numbers come from :mod:`lq.analytics`; each stored symbol is mapped to its
canonical instrument by :func:`lq.analytics.crossvenue.instrument_of` (the store keeps the
venue's own symbol and no instrument list). The parts:

* :func:`store_instruments` / :func:`asset_instruments`: the instruments with stored trades.
* :class:`VenueTicks` (incremental tick cache per instrument) and :func:`venue_quality`
  (the gap ledger, dead letters and each venue's id rule as one table).
* :func:`lead_lag_readings`: Hayashi-Yoshida lead-lag per venue with its sample size and notes.
"""

from __future__ import annotations

import importlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lq.analytics import data_quality
from lq.analytics.crossvenue import QUOTE_SUFFIXES, USD_QUOTES, instrument_of
from lq.errors import LqError
from lq.store import Store
from lq.venues.instrument import Instrument, canonical_asset

__all__ = [
    "MIN_LEADLAG_TICKS",
    "QUOTE_SUFFIXES",
    "USD_QUOTES",
    "LeadLagReading",
    "VenueTicks",
    "asset_instruments",
    "id_rule",
    "instrument_of",
    "label",
    "lead_lag_readings",
    "store_instruments",
    "venue_quality",
]

log = logging.getLogger(__name__)


def store_instruments(store: Store) -> list[Instrument]:
    """Every (exchange, symbol) with stored trades, as instruments (unmappable ones left out).

    Read from the 1-minute bar rollup (one row per venue, symbol and minute), not the ticks.
    """
    try:
        rows = store.conn.execute(
            "SELECT DISTINCT exchange, symbol FROM bars_1m ORDER BY symbol, exchange"
        ).fetchall()
    except sqlite3.OperationalError as exc:  # no tables yet
        log.debug("no bars yet: %s", exc)
        return []
    out = []
    for ex, sym in rows:
        inst = instrument_of(str(ex), str(sym))
        if inst is not None:
            out.append(inst)
    return out


def asset_instruments(
    instruments: Iterable[Instrument], asset: str, *, quotes: Iterable[str] = USD_QUOTES
) -> tuple[list[Instrument], list[Instrument]]:
    """``(compared, other)``: the asset's instruments quoted in ``quotes``, and the rest."""
    a = canonical_asset(asset)
    qs = {q.upper() for q in quotes}
    mine = [i for i in instruments if i.base == a]
    return [i for i in mine if i.quote in qs], [i for i in mine if i.quote not in qs]


def label(inst: Instrument) -> str:
    """``BTC-USD@coinbase``: the venue's own symbol and the exchange label (unique)."""
    return f"{inst.symbol}@{inst.venue}"


def id_rule(exchange: str, status: Mapping[str, Any] | None = None) -> str:
    """``"contiguous"`` or ``"none"``: whether the venue's trade ids can be checked.

    From the collector's published status (``ids`` / ``id_rule`` in its detail) if it says,
    else from the venue adapter (``lq.venues.<exchange>.protocol.ID_RULE``), else
    ``"contiguous"`` (Binance, and lq's behaviour before venues declared their rule).
    """
    if status:
        for k in ("ids", "id_rule"):
            v = status.get(k)
            if v in ("contiguous", "none"):
                return str(v)
    try:
        mod = importlib.import_module(f"lq.venues.{exchange}.protocol")
    except ImportError:  # not a venue name (a custom label), or no adapter
        return "contiguous"
    v = getattr(mod, "ID_RULE", "contiguous")
    return str(v) if v in ("contiguous", "none") else "contiguous"


# -- ticks --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cache:
    inst: Instrument
    ts: np.ndarray
    trade_id: np.ndarray
    price: np.ndarray
    qty: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ts": self.ts, "trade_id": self.trade_id, "price": self.price,
                             "qty": self.qty})  # fmt: skip


def _empty(inst: Instrument) -> _Cache:
    return _Cache(inst, np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0))


class VenueTicks:
    """The last ``window`` seconds of trades of a few instruments, read incrementally.

    Each :meth:`update` reads only trades with an id above the newest one held (per
    instrument). Trades that arrive *below* it (a hole filled later by REST backfill) are
    picked up by a full re-read of the window, done whenever the gap ledger changes and at
    least every ``reload_s`` seconds of exchange time, so the numbers never keep missing
    trades that are stored.
    """

    def __init__(
        self, store: Store, instruments: Iterable[Instrument], *, window: float,
        reload_s: float = 60.0,
    ) -> None:  # fmt: skip
        self.store = store
        self.instruments = list(instruments)
        self.window_us = int(window * 1_000_000)
        self.reload_us = int(reload_s * 1_000_000)
        self.version = 0
        self.reloads = 0
        self._c: dict[str, _Cache] = {}
        self._ledger: tuple[Any, ...] | None = None
        self._loaded_at = -(2**62)

    def _ledger_key(self) -> tuple[Any, ...]:
        row = self.store.conn.execute("SELECT count(*), max(updated_ts) FROM gaps").fetchone()
        return tuple(row)

    def newest_ts(self) -> int | None:
        ts = [int(c.ts[-1]) for c in self._c.values() if c.ts.size]
        return max(ts) if ts else None

    def update(self) -> int:
        """Read what is new; returns the number of trades read."""
        try:
            ledger = self._ledger_key()
            newest = self.newest_ts()
            if (
                ledger != self._ledger
                or len(self._c) != len(self.instruments)
                or (newest is not None and newest - self._loaded_at > self.reload_us)
            ):
                self._ledger = ledger
                return self._reload()
            n = 0
            for inst in self.instruments:
                c = self._c[label(inst)]
                after = int(c.trade_id.max()) if c.trade_id.size else -1
                df = self.store.ticks_since(inst.symbol, after, exchange=inst.venue)
                if df.empty:
                    continue
                n += len(df)
                self._c[label(inst)] = _Cache(
                    inst,
                    np.concatenate([c.ts, df["ts"].to_numpy(np.int64)]),
                    np.concatenate([c.trade_id, df["trade_id"].to_numpy(np.int64)]),
                    np.concatenate([c.price, df["price"].to_numpy(np.float64)]),
                    np.concatenate([c.qty, df["qty"].to_numpy(np.float64)]),
                )
            if n:
                self._trim()
                self.version += 1
            return n
        except (sqlite3.OperationalError, LqError) as exc:
            log.debug("venue ticks update failed: %s", exc)
            return 0

    def _reload(self) -> int:
        newest = None
        for inst in self.instruments:
            row = self.store.conn.execute(
                "SELECT max(ts) FROM bars_1s WHERE symbol = ? AND exchange = ?",
                (inst.symbol.upper(), inst.venue),
            ).fetchone()
            if row and row[0] is not None:
                newest = max(newest or 0, int(row[0]) + 1_000_000)
        n = 0
        for inst in self.instruments:
            if newest is None:
                self._c[label(inst)] = _empty(inst)
                continue
            df = self.store.ticks(inst.symbol, newest - self.window_us, exchange=inst.venue)
            n += len(df)
            self._c[label(inst)] = _Cache(
                inst, df["ts"].to_numpy(np.int64), df["trade_id"].to_numpy(np.int64),
                df["price"].to_numpy(np.float64), df["qty"].to_numpy(np.float64),
            )  # fmt: skip
        self._trim()
        self._loaded_at = self.newest_ts() or -(2**62)
        self.reloads += 1
        self.version += 1
        return n

    def _trim(self) -> None:
        newest = self.newest_ts()
        if newest is None:
            return
        cutoff = newest - self.window_us
        for k, c in self._c.items():
            if c.ts.size and int(c.ts.min()) < cutoff:
                keep = c.ts >= cutoff
                self._c[k] = _Cache(
                    c.inst, c.ts[keep], c.trade_id[keep], c.price[keep], c.qty[keep]
                )

    def frames(self) -> dict[str, pd.DataFrame]:
        """Label -> trades (``ts``, ``trade_id``, ``price``, ``qty``), sorted by time."""
        out = {}
        for inst in self.instruments:
            c = self._c.get(label(inst)) or _empty(inst)
            df = c.frame()
            out[label(inst)] = df.sort_values(["ts", "trade_id"], kind="stable").reset_index(
                drop=True
            )
        return out


# -- data quality -------------------------------------------------------------------------------


def venue_quality(
    store: Store,
    instruments: Iterable[Instrument],
    *,
    id_rules: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per instrument: holes found/filled/unfillable (the gap ledger), trades stored, dead
    letters of its venue, and ``not checkable`` for a venue without exact trade ids.

    ``id_rules`` (exchange -> ``"contiguous"``/``"none"``) overrides :func:`id_rule`.
    Columns: those of :func:`lq.analytics.data_quality` plus ``dead_letters`` (counted per
    exchange label: a refused frame may not name a symbol) and ``instrument``.
    """
    insts = list(instruments)
    status: dict[str, dict[str, Any]] = {}
    try:
        for r in store.feed_status():
            status[str(r.get("exchange"))] = r
    except (sqlite3.OperationalError, LqError, json.JSONDecodeError) as exc:
        log.debug("no feed status: %s", exc)
    rules = dict(id_rules or {})
    streams = []
    for inst in insts:
        rule = rules.get(inst.venue) or id_rule(inst.venue, status.get(inst.venue))
        row = store.conn.execute(
            "SELECT sum(trades) FROM bars_1m WHERE symbol = ? AND exchange = ?",
            (inst.symbol.upper(), inst.venue),
        ).fetchone()
        streams.append({"venue": inst.venue, "symbol": inst.symbol, "kind": "trade",
                        "ids": rule, "received": int(row[0] or 0)})  # fmt: skip
    gaps = store.gaps()
    wanted = {(i.venue, i.symbol) for i in insts}
    if len(gaps):
        keep = [(e, s) in wanted for e, s in zip(gaps["exchange"], gaps["symbol"], strict=True)]
        gaps = gaps[keep]
    q = data_quality(gaps, pd.DataFrame(streams) if streams else None)
    dead = dict(
        store.conn.execute(
            "SELECT exchange, count(*) FROM dead_letters GROUP BY exchange"
        ).fetchall()
    )
    q["dead_letters"] = pd.array(
        [int(dead.get(v, 0)) for v in q.index.get_level_values("venue")], dtype="Int64"
    )
    q["instrument"] = [f"{s}@{v}" for v, s, _k in q.index]
    return q


# -- the tab's numbers ----------------------------------------------------------------------------

#: Lead-lag needs this many distinct trade times on each venue before it is shown as a reading.
MIN_LEADLAG_TICKS = 200


@dataclass(frozen=True, slots=True)
class LeadLagReading:
    """One venue against the reference: the estimate, its sample size, and what to make of it."""

    venue: str
    reference: str
    result: Any  # lq.analytics.LeadLag, or None when it could not be estimated
    nobs: tuple[int, int]
    note: str  # "" for a usable reading; else why it is not one

    @property
    def text(self) -> str:
        if self.result is None:
            return f"{self.venue} vs {self.reference}: {self.note}"
        n = f"n = {self.nobs[0]:,} / {self.nobs[1]:,} trade times"
        return f"{self.result.text}; {n}" + (f" · {self.note}" if self.note else "")


def lead_lag_readings(
    frames: Mapping[str, pd.DataFrame],
    reference: str,
    *,
    max_lag: str = "2s",
    step: str = "10ms",
    min_ticks: int = MIN_LEADLAG_TICKS,
) -> list[LeadLagReading]:
    """Hayashi-Yoshida lead-lag of every venue against ``reference`` on its raw trades.

    ``reference`` is the first series (positive lag: the reference leads). A pair with fewer
    than ``min_ticks`` distinct trade times on either side is reported with the estimate and
    the note ``too short a sample``; a peak inside ``±1.96/sqrt(n)`` (n the smaller count) is
    noted as indistinguishable from no correlation.
    """
    from lq.analytics import lead_lag
    from lq.errors import ValidationError

    out = []
    ref = frames[reference]
    for name, df in frames.items():
        if name == reference:
            continue
        na, nb = int(ref["ts"].nunique()), int(df["ts"].nunique())
        try:
            ll = lead_lag(ref, df, method="hayashi_yoshida", max_lag=max_lag, step=step,
                          names=(reference, name))  # fmt: skip
        except ValidationError as exc:
            out.append(LeadLagReading(name, reference, None, (na, nb),
                                      f"not enough trades to estimate ({exc})"))  # fmt: skip
            continue
        notes = []
        if min(na, nb) < min_ticks:
            notes.append(f"too short a sample (needs >= {min_ticks:,} trade times on each venue)")
        band = 1.96 / np.sqrt(max(min(na, nb), 1))
        if ll.peak == ll.peak and abs(ll.peak) < band:
            notes.append(f"|corr| < {band:.2f}: indistinguishable from no correlation")
        out.append(LeadLagReading(name, reference, ll, ll.nobs, "; ".join(notes)))
    return out
