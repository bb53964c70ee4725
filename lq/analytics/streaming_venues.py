"""O(1)-per-update cross-venue statistics for the live path (re-exported by ``streaming``).

:class:`DislocationBps` keeps the latest price of a venue, of its reference venue and
(optionally) of a conversion rate, and reads the dislocation in bps from them; it equals
:func:`lq.analytics.dislocation` with ``interval=None`` (one row per observation time) at
every step: tested with hypothesis, updates out of time order included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from lq.errors import ValidationError

__all__ = ["DislocationBps"]

_NAN = math.nan
_PAIR_RE = re.compile(r"^\s*([A-Za-z0-9]+)\s*/\s*([A-Za-z0-9]+)\s*$")


class DislocationBps:
    """Dislocation of ``venue`` against ``reference`` in bps, from the latest price of each.

    ``update(name, price, ts)`` with ``name`` one of ``venue``, ``reference`` or the rate's
    label (e.g. ``"USDT/USD"``); ``value`` is the raw bps (each price in its own quote),
    ``adjusted`` the bps with ``venue``'s price converted into the reference's quote by the
    latest rate (equal to ``value`` when the quotes agree; NaN until a rate has been seen).

    The clock is the latest ``ts`` of any valid update. A price counts only while
    ``clock - its ts <= max_age`` (``None``: no limit; the rate has ``rate_max_age``). An
    update older than the latest one of the same name is ignored (as-of semantics: the
    batch function sorts by time); equal times replace. NaN/inf and non-positive prices are
    skipped (``rejected`` counts the non-positive ones). ``kind``: ``"simple"``
    ``(p/p_ref - 1)·1e4`` or ``"log"`` ``ln(p/p_ref)·1e4``.

    Examples
    --------
    >>> d = DislocationBps("okx", "coinbase", quotes={"okx": "USDT", "coinbase": "USD"},
    ...                    rate="USDT/USD")
    >>> d.update("coinbase", 100.0, 1_000)
    >>> d.update("okx", 100.2, 2_000)
    >>> round(d.value, 6), d.adjusted                       # no USDT/USD rate seen yet
    (20.0, nan)
    >>> d.update("USDT/USD", 0.999, 3_000)
    >>> round(d.adjusted, 6)
    9.98
    >>> d.compared
    'okx (USDT) vs coinbase (USD)'
    """

    __slots__ = (
        "_age",
        "_clock",
        "_div",
        "_kind",
        "_log",
        "_names",
        "_p",
        "_rage",
        "_rate",
        "_same",
        "_t",
        "count",
        "quotes",
        "rate",
        "reference",
        "rejected",
        "venue",
    )

    def __init__(
        self,
        venue: str,
        reference: str,
        *,
        quotes: Mapping[str, str],
        kind: str = "simple",
        max_age: int | None = None,
        rate: str | None = None,
        rate_max_age: int | None = None,
    ) -> None:
        if venue == reference:
            raise ValidationError("reference", reference, "must differ from venue")
        qs = {}
        for n in (venue, reference):
            q = quotes.get(n) if isinstance(quotes, Mapping) else None
            if not isinstance(q, str) or not q.strip():
                raise ValidationError("quotes", quotes, f"no quote currency for {n!r}")
            qs[n] = q.strip().upper()
        if kind not in ("simple", "log"):
            raise ValidationError("kind", kind, "must be one of 'simple', 'log'")
        for field, v in (("max_age", max_age), ("rate_max_age", rate_max_age)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValidationError(field, v, "must be None or an int >= 0 (µs)")
        self.venue, self.reference, self.quotes = venue, reference, qs
        self._same = qs[venue] == qs[reference]
        self._div = False
        self.rate: str | None = None
        if rate is not None:
            m = _PAIR_RE.match(rate)
            pair = (m.group(1).upper(), m.group(2).upper()) if m else None
            if pair == (qs[venue], qs[reference]):
                self._div = False
            elif pair == (qs[reference], qs[venue]):
                self._div = True
            else:
                raise ValidationError(
                    "rate", rate, f"expected '{qs[venue]}/{qs[reference]}' for these quotes"
                )
            self.rate = f"{pair[0]}/{pair[1]}"
        self._names = {venue: 0, reference: 1, **({self.rate: 2} if self.rate else {})}
        if rate is not None and rate != self.rate:
            self._names[rate] = 2
        self._kind = kind
        self._log = kind == "log"
        self._age = max_age
        self._rage = rate_max_age
        self._p = [_NAN, _NAN, _NAN]
        self._t = [0, 0, 0]
        self._clock = -(2**62)
        self.count = 0
        self.rejected = 0

    def update(self, name: str, price: float, ts: int) -> None:
        """Add the latest price of ``name`` at exchange time ``ts`` (µs)."""
        i = self._names.get(name)
        if i is None:
            raise ValidationError("name", name, f"expected one of {sorted(self._names)}")
        if price - price != 0.0:
            return
        if price <= 0.0:
            self.rejected += 1
            return
        self.count += 1
        if ts > self._clock:
            self._clock = ts
        t = self._t
        if ts < t[i] and self._p[i] == self._p[i]:
            return  # older than what we hold: the batch (sorted by time) never uses it
        self._p[i] = price
        t[i] = ts

    @property
    def value(self) -> float:
        """Raw dislocation in bps (NaN until both have a live price)."""
        p, ref = self._p[0], self._p[1]
        age = self._age
        if age is not None:
            clock, t = self._clock, self._t
            if clock - t[0] > age or clock - t[1] > age:
                return _NAN
        if p != p or ref != ref:
            return _NAN
        if self._log:
            return math.log(p / ref) * 1e4
        return (p / ref - 1.0) * 1e4

    @property
    def adjusted(self) -> float:
        """Dislocation with ``venue`` converted into the reference's quote (NaN without rate)."""
        if self._same:
            return self.value
        if self.rate is None:
            return _NAN
        p, ref, r = self._p
        clock, t = self._clock, self._t
        age = self._age
        if age is not None and (clock - t[0] > age or clock - t[1] > age):
            return _NAN
        if self._rage is not None and clock - t[2] > self._rage:
            return _NAN
        p = p / r if self._div else p * r
        if p != p or ref != ref:
            return _NAN
        if self._log:
            return math.log(p / ref) * 1e4
        return (p / ref - 1.0) * 1e4

    @property
    def compared(self) -> str:
        """Which quotes the raw value compares, e.g. ``"okx (USDT) vs coinbase (USD)"``."""
        v, r = self.venue, self.reference
        return f"{v} ({self.quotes[v]}) vs {r} ({self.quotes[r]})"
