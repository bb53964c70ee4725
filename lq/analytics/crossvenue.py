"""One asset on several venues: price dislocation, share of volume, data quality per venue.

Pure functions over each venue's trades or quotes (a Series indexed by UTC time, a frame with
``ts`` and ``price`` / ``bid`` and ``ask`` columns as ``Store.ticks`` / ``Store.book_tickers``
return, or ``(ts µs, values)`` arrays); no I/O. Lead-lag is in :mod:`lq.analytics.leadlag`.

**Quote currencies are never hidden.** ``BTC-USD@coinbase`` and ``BTC-USDT@okx`` are different
prices: every function that compares or adds prices across venues takes each venue's quote
currency, says in its result which quotes were compared, and converts only with a rate the
caller supplies (``rates={"USDT/USD": series_or_constant}``, "USD per 1 USDT"), keeping the
unconverted numbers beside the converted ones.

Dislocation of venue ``v`` against the reference venue ``r`` at time ``t``, in basis points::

    simple:  bps = (p_v(t) / p_r(t) - 1) · 1e4        log:  bps = ln(p_v(t) / p_r(t)) · 1e4

where ``p(t)`` is the venue's last price at or before ``t`` (previous tick), and only if it is
at most ``max_age`` old (a stale price would report a dislocation that is only a lack of
trading). Positive: ``v`` is priced above ``r``.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from lq.errors import ValidationError
from lq.venues.instrument import Instrument, canonical_asset

from ._common import check_choice, check_positive_prices
from ._ticks import (
    Ticks,
    as_ticks,
    as_venue_ticks,
    asof,
    check_names,
    frame_column,
    frame_ts,
    time_index,
    time_us,
)
from ._typing import Float64Array, PriceSource, ReturnKind, VolumeBy
from .bars import interval_us

__all__ = [
    "QUALITY_COLUMNS",
    "QUOTE_SUFFIXES",
    "USD_QUOTES",
    "Dislocation",
    "VolumeShare",
    "data_quality",
    "dislocation",
    "instrument_of",
    "volume_share",
]

_PAIR_RE = re.compile(r"^\s*([A-Za-z0-9]+)\s*/\s*([A-Za-z0-9]+)\s*$")


# -- quote currencies and conversion rates ------------------------------------------------------


def _quotes(names: list[str], quotes: Any) -> dict[str, str]:
    if not isinstance(quotes, Mapping):
        raise ValidationError(
            "quotes", quotes, "expected a mapping venue -> quote currency, e.g. {'okx': 'USDT'}"
        )
    out = {}
    for n in names:
        q = quotes.get(n)
        if not isinstance(q, str) or not q.strip():
            example = ", ".join(f"{k!r}: 'USD'" for k in names)
            raise ValidationError(
                "quotes", dict(quotes), f"no quote currency for {n!r}: pass quotes={{{example}}}"
            )
        out[n] = q.strip().upper()
    return out


class _Rate:
    """A conversion rate ``BASE/QUOTE`` (QUOTE per 1 BASE): a constant or a time series."""

    __slots__ = ("base", "constant", "label", "quote", "ticks")

    def __init__(self, label: str, value: Any) -> None:
        m = _PAIR_RE.match(label) if isinstance(label, str) else None
        if m is None:
            raise ValidationError("rates", label, "keys are 'BASE/QUOTE', e.g. 'USDT/USD'")
        self.base, self.quote = m.group(1).upper(), m.group(2).upper()
        self.label = f"{self.base}/{self.quote}"
        self.constant: float | None = None
        self.ticks: Ticks | None = None
        if isinstance(value, int | float | np.floating | np.integer) and not isinstance(
            value, bool
        ):
            if not np.isfinite(value) or value <= 0:
                raise ValidationError(f"rates[{label!r}]", value, "a rate must be finite and > 0")
            self.constant = float(value)
        else:
            self.ticks = as_ticks(value, f"rates[{label!r}]")
            if not len(self.ticks):
                raise ValidationError(f"rates[{label!r}]", 0, "the rate series is empty")
            check_positive_prices(self.ticks.values, f"rates[{label!r}]")

    def at(self, times: np.ndarray, max_age: int | None = None) -> Float64Array:
        if self.constant is not None:
            return np.full(times.size, self.constant)
        assert self.ticks is not None
        return asof(self.ticks, times, max_age)

    def describe(self) -> str:
        if self.constant is not None:
            return f"{self.label} = {self.constant:g} (constant)"
        return f"{self.label} series"


def _rates(rates: Any) -> list[_Rate]:
    if rates is None:
        return []
    if not isinstance(rates, Mapping):
        raise ValidationError("rates", type(rates).__name__, "expected {'USDT/USD': series}")
    return [_Rate(k, v) for k, v in rates.items()]


def _conversion(src: str, dst: str, rates: list[_Rate]) -> tuple[_Rate, bool] | None:
    """The rate that turns a ``src`` price into ``dst`` and whether to multiply (src/dst) or
    divide (dst/src); ``None`` if no supplied rate does."""
    for r in rates:
        if (r.base, r.quote) == (src, dst):
            return r, True
    for r in rates:
        if (r.base, r.quote) == (dst, src):
            return r, False
    return None


def _duration(value: Any, field: str) -> int | None:
    if value is None:
        return None
    from .leadlag import duration_us

    us = duration_us(value, field)
    if us < 0:
        raise ValidationError(field, value, "must be >= 0")
    return us


# -- dislocation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dislocation:
    """Price dislocation of each venue against a reference venue, raw and quote-adjusted.

    Attributes
    ----------
    reference : str
        The venue every other venue is measured against.
    quotes : dict
        Venue -> quote currency, as compared (``{"coinbase": "USD", "okx": "USDT"}``).
    prices : DataFrame
        The sampled prices (one column per venue, in its own quote currency; NaN where the
        venue had no price yet or its last one was older than ``max_age_us``).
    bps : DataFrame
        Raw dislocation in bps, one column per non-reference venue, each in its own quote
        (USDT prices against USD prices when the quotes differ: the summary says so).
    adjusted : DataFrame
        The same with each venue's price converted into the reference's quote currency with
        the supplied rate; equal to ``bps`` where the quotes agree; all NaN for a venue whose
        quote no supplied rate converts (``conversion`` says which).
    conversion : dict
        Venue -> how its adjusted price was obtained, e.g. ``"USDT -> USD via USDT/USD series"``,
        ``"same quote (USD)"``, ``"not converted: no USDT/USD rate"``.
    summary : DataFrame
        Index ``(venue, basis)`` with basis ``"raw"``/``"adjusted"``; columns ``compared``
        (which quotes), ``n`` (valid points), ``coverage`` (n / rows), ``mean_bps``,
        ``median_bps``, ``std_bps`` (ddof=1), ``p95_abs_bps``, ``max_abs_bps``,
        ``share_above`` (fraction of valid points with ``|bps| > threshold_bps``: on a
        regular grid, the share of time; with ``interval=None``, of observation times).
    """

    reference: str
    quotes: dict[str, str]
    prices: pd.DataFrame
    bps: pd.DataFrame
    adjusted: pd.DataFrame
    conversion: dict[str, str]
    summary: pd.DataFrame
    price: str
    kind: str
    interval_us: int | None
    max_age_us: int | None
    threshold_bps: float


SUMMARY_COLUMNS = (
    "compared",
    "n",
    "coverage",
    "mean_bps",
    "median_bps",
    "std_bps",
    "p95_abs_bps",
    "max_abs_bps",
    "share_above",
)


def _stats(x: Float64Array, rows: int, threshold: float) -> dict[str, float]:
    v = x[np.isfinite(x)]
    n = int(v.size)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "coverage": 0.0 if rows else nan, "mean_bps": nan, "median_bps": nan,
                "std_bps": nan, "p95_abs_bps": nan, "max_abs_bps": nan, "share_above": nan}  # fmt: skip
    a = np.abs(v)
    return {
        "n": n,
        "coverage": n / rows,
        "mean_bps": float(v.mean()),
        "median_bps": float(np.median(v)),
        "std_bps": float(v.std(ddof=1)) if n > 1 else float("nan"),
        "p95_abs_bps": float(np.percentile(a, 95)),
        "max_abs_bps": float(a.max()),
        "share_above": float((a > threshold).mean()),
    }


def _bps(p: Float64Array, ref: Float64Array, kind: str) -> Float64Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "log":
            return np.log(p / ref) * 1e4
        return (p / ref - 1.0) * 1e4


def dislocation(
    prices: Mapping[str, Any],
    *,
    quotes: Mapping[str, str],
    reference: str | None = None,
    interval: int | str | pd.Timedelta | None = "1s",
    max_age: int | str | pd.Timedelta | Literal["interval"] | None = "interval",
    price: PriceSource = "last",
    kind: ReturnKind = "simple",
    rates: Mapping[str, Any] | None = None,
    rate_max_age: int | str | pd.Timedelta | None = None,
    threshold_bps: float = 10.0,
    symbols: Mapping[str, str | Instrument] | None = None,
) -> Dislocation:
    """Dislocation in bps of each venue's price against a reference venue, on a time grid.

    Parameters
    ----------
    prices : mapping venue -> Series, DataFrame or (ts, price) tuple
        Each venue's trades (``price="last"``: a Series or a ``price`` column) or quotes
        (``price="mid"``: ``bid``/``ask`` columns, or a Series of mids). Two or more venues.
    quotes : mapping venue -> str
        The quote currency of every venue (``"USD"``, ``"USDT"``...). Required: the result
        states which quotes it compared.
    reference : str, optional
        The venue the others are measured against (default: the first key of ``prices``).
    interval : duration or None
        Grid step: prices are sampled at every multiple of ``interval`` (epoch-aligned) from
        the first to the last observation of any venue. ``None``: one row at every distinct
        observation time of any input (what :class:`~lq.analytics.streaming.DislocationBps`
        reports after each update).
    max_age : duration, "interval" or None
        A venue's last price counts at ``t`` only if it is at most this old (``t - ts <=
        max_age``). ``"interval"`` (default): one grid step (no limit when ``interval=None``);
        ``None``: carried forward without limit. Never back-filled.
    price : {"last", "mid"}
        Last trade or mid quote (the result records which).
    kind : {"simple", "log"}
        ``(p/p_ref - 1)·1e4`` or ``ln(p/p_ref)·1e4``.
    rates : mapping "BASE/QUOTE" -> Series, tuple or float, optional
        Conversion rates for the adjusted view, e.g. ``{"USDT/USD": usdt_usd}`` (USD per USDT;
        as-of the grid time, like prices; a float is a stated constant). Either direction is
        used (``USDT/USD`` also converts USD prices into USDT).
    rate_max_age : duration, optional
        Staleness limit for rates (default: carried forward without limit).
    threshold_bps : float
        For ``share_above`` in the summary.
    symbols : mapping venue -> symbol or Instrument, optional
        What each venue's prices are (``{"coinbase": "BTC-USD", "binance": "BTCUSDT"}``):
        checked to be one asset (the same base; the quotes may differ and must agree with
        ``quotes``), so BTC on one venue is never measured against ETH on another.

    Returns
    -------
    Dislocation

    Examples
    --------
    >>> t0 = 1_700_000_000_000_000
    >>> cb = pd.Series([100.0, 101.0], index=pd.to_datetime([t0, t0 + 1_000_000], unit="us", utc=True))
    >>> okx = pd.Series([100.2, 101.3], index=cb.index)
    >>> d = dislocation({"coinbase": cb, "okx": okx}, quotes={"coinbase": "USD", "okx": "USDT"},
    ...                 rates={"USDT/USD": 0.999})
    >>> d.bps["okx"].round(2).tolist()                      # USDT price vs USD price
    [20.0, 29.7]
    >>> d.adjusted["okx"].round(2).tolist()                 # USDT converted at 0.999 USD
    [9.98, 19.67]
    >>> d.summary.loc[("okx", "adjusted"), "compared"]
    'okx (USDT -> USD via USDT/USD = 0.999 (constant)) vs coinbase (USD)'
    """
    names = check_names(prices, "prices")
    q = _quotes(names, quotes)
    extra = sorted(str(k) for k in quotes if str(k) not in names)
    if extra:
        raise ValidationError(
            "quotes", extra, f"not one of the venues priced: {names} (a misspelt label?)"
        )
    if symbols is not None:
        _check_one_asset(names, q, symbols)
    ref = names[0] if reference is None else str(reference)
    if ref not in names:
        raise ValidationError("reference", reference, f"not one of the venues {names}")
    check_choice(kind, "kind", ("simple", "log"))
    check_choice(price, "price", ("last", "mid"))
    ticks = {n: as_venue_ticks(prices[n], f"prices[{n!r}]", price) for n in names}
    for n, t in ticks.items():
        check_positive_prices(t.values, f"prices[{n!r}]")
    rate_list = _rates(rates)
    step = None if interval is None else interval_us(interval)
    age = step if max_age == "interval" else _duration(max_age, "max_age")
    rage = _duration(rate_max_age, "rate_max_age")

    # the time axis
    if step is None:
        parts = [t.ts for t in ticks.values()]
        parts += [r.ticks.ts for r in rate_list if r.ticks is not None]
        times = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    else:
        nonempty = [t for t in ticks.values() if len(t)]
        if nonempty:
            lo = min(int(t.ts[0]) for t in nonempty)
            hi = max(int(t.ts[-1]) for t in nonempty)
            times = np.arange(-(-lo // step) * step, hi // step * step + 1, step, dtype=np.int64)
        else:
            times = np.empty(0, np.int64)
    index = time_index(times)
    sampled = {n: asof(t, times, age) for n, t in ticks.items()}
    others = [n for n in names if n != ref]
    pr = sampled[ref]
    raw = {n: _bps(sampled[n], pr, kind) for n in others}
    adj: dict[str, Float64Array] = {}
    conversion: dict[str, str] = {}
    for n in others:
        if q[n] == q[ref]:
            adj[n] = raw[n]
            conversion[n] = f"same quote ({q[n]})"
            continue
        conv = _conversion(q[n], q[ref], rate_list)
        if conv is None:
            adj[n] = np.full(times.size, np.nan)
            conversion[n] = f"not converted: no {q[n]}/{q[ref]} rate"
            continue
        rate, multiply = conv
        r = rate.at(times, rage)
        converted = sampled[n] * r if multiply else sampled[n] / r
        adj[n] = _bps(converted, pr, kind)
        conversion[n] = f"{q[n]} -> {q[ref]} via {rate.describe()}"

    rows = []
    keys = []
    for n in others:
        for basis, values in (("raw", raw[n]), ("adjusted", adj[n])):
            if basis == "raw":
                compared = f"{n} ({q[n]}) vs {ref} ({q[ref]})"
            elif conversion[n].startswith("same quote"):
                compared = f"{n} ({q[n]}) vs {ref} ({q[ref]}): same quote, as raw"
            elif conversion[n].startswith("not converted"):
                compared = f"{n} ({q[n]}) vs {ref} ({q[ref]}): {conversion[n]}"
            else:
                compared = f"{n} ({conversion[n]}) vs {ref} ({q[ref]})"
            rows.append({"compared": compared, **_stats(values, times.size, threshold_bps)})
            keys.append((n, basis))
    summary = pd.DataFrame(
        rows,
        index=pd.MultiIndex.from_tuples(keys, names=["venue", "basis"]),
        columns=list(SUMMARY_COLUMNS),
    )
    summary["n"] = summary["n"].astype(np.int64)

    def frame(d: Mapping[str, Float64Array], cols: list[str]) -> pd.DataFrame:
        return pd.DataFrame({c: d[c] for c in cols}, index=index, columns=cols)

    return Dislocation(
        reference=ref,
        quotes=q,
        prices=frame(sampled, names),
        bps=frame(raw, others),
        adjusted=frame(adj, others),
        conversion=conversion,
        summary=summary,
        price=price,
        kind=kind,
        interval_us=step,
        max_age_us=age,
        threshold_bps=float(threshold_bps),
    )


def _check_one_asset(
    names: list[str], quotes: Mapping[str, str], symbols: Mapping[str, str | Instrument]
) -> None:
    if not isinstance(symbols, Mapping):
        raise ValidationError("symbols", symbols, "expected a mapping venue -> symbol")
    unknown = sorted(str(k) for k in symbols if str(k) not in names)
    if unknown:
        raise ValidationError("symbols", unknown, f"not one of the venues priced: {names}")
    insts: dict[str, Instrument] = {}
    for n in names:
        given = symbols.get(n)
        if given is None:
            raise ValidationError("symbols", dict(symbols), f"no symbol for {n!r}")
        inst = given if isinstance(given, Instrument) else instrument_of(n, str(given))
        if inst is None:
            raise ValidationError(
                "symbols", {n: given}, "not a spot BASE/QUOTE instrument (e.g. BTC-USD, BTCUSDT)"
            )
        insts[n] = inst
        if inst.quote != quotes[n]:
            raise ValidationError(
                "quotes", {n: quotes[n]}, f"{given} on {n} is quoted in {inst.quote}"
            )
    bases = {n: i.base for n, i in insts.items()}
    if len(set(bases.values())) > 1:
        listed = ", ".join(f"{b} on {n}" for n, b in bases.items())
        raise ValidationError(
            "symbols", {n: str(symbols[n]) for n in names},
            f"different assets ({listed}): dislocation compares one asset on several venues",
        )  # fmt: skip


# -- share of volume ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VolumeShare:
    """Each venue's share of traded volume, per time bucket and over the whole window.

    ``volume``: traded amount per bucket (rows: tz-aware UTC bucket open times named ``time``,
    only buckets in which some venue traded; columns: venues; 0 where a venue did not trade) in
    ``unit`` (``"base"`` quantity, or the quote currency of ``by="quote"``). ``share``: each
    row divided by its total. ``total`` / ``total_share``: the same over the window.
    ``conversion``: venue -> how its notional was brought into ``unit``.
    """

    by: str
    unit: str
    volume: pd.DataFrame
    share: pd.DataFrame
    total: pd.Series
    total_share: pd.Series
    conversion: dict[str, str]
    interval_us: int | None
    start_us: int | None
    end_us: int | None


def volume_share(
    trades: Mapping[str, Any],
    *,
    by: VolumeBy = "base",
    interval: int | str | pd.Timedelta | None = "1m",
    start: Any = None,
    end: Any = None,
    quotes: Mapping[str, str] | None = None,
    currency: str | None = None,
    rates: Mapping[str, Any] | None = None,
) -> VolumeShare:
    """Share of volume per venue, by base quantity or by quote notional.

    Parameters
    ----------
    trades : mapping venue -> DataFrame
        Each venue's trades with ``ts`` (µs), ``qty`` and (for ``by="quote"``) ``price``
        columns, as ``Store.ticks`` returns them. Rows with a NaN quantity or price are skipped.
    by : {"base", "quote"}
        ``base``: sum of ``qty``. ``quote``: sum of ``price·qty`` per trade, in ``currency``.
    interval : duration or None
        Bucket length (epoch-aligned, like bars); ``None``: one bucket for the whole window.
    start, end : time, optional
        Keep trades with ``start <= ts < end`` (µs, or a time string/Timestamp; no zone = UTC).
    quotes : mapping venue -> str
        Quote currency per venue; required for ``by="quote"``.
    currency : str, optional
        The currency notional is summed in. Default: the common quote when all venues share
        one; required when they differ (USD and USDT are never added as if equal), with
        ``rates`` that convert every other quote into it (``{"USDT/USD": series or 1.0}``; a
        constant is taken as your statement of parity and shown as such).

    Returns
    -------
    VolumeShare

    Examples
    --------
    >>> cb = pd.DataFrame({"ts": [0, 30_000_000, 70_000_000], "price": [100.0, 100.0, 101.0],
    ...                    "qty": [1.0, 1.0, 2.0]})
    >>> okx = pd.DataFrame({"ts": [10_000_000], "price": [100.5], "qty": [6.0]})
    >>> vs = volume_share({"coinbase": cb, "okx": okx}, interval="1m")
    >>> vs.share.round(2).to_dict("list")
    {'coinbase': [0.25, 1.0], 'okx': [0.75, 0.0]}
    >>> vs.total_share.round(2).to_dict()
    {'coinbase': 0.4, 'okx': 0.6}
    >>> volume_share({"coinbase": cb, "okx": okx}, by="quote",
    ...              quotes={"coinbase": "USD", "okx": "USDT"})      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lq.errors.ValidationError: currency=None: quotes differ (coinbase USD, okx USDT): ...
    """
    names = check_names(trades, "trades", minimum=1)
    check_choice(by, "by", ("base", "quote"))
    step = None if interval is None else interval_us(interval)
    lo, hi = time_us(start, "start"), time_us(end, "end")
    conversion: dict[str, str] = {}
    rate_list = _rates(rates)
    if by == "quote":
        if quotes is None:
            raise ValidationError(
                "quotes", None, "by='quote' sums notional: pass quotes={venue: 'USD', ...}"
            )
        q = _quotes(names, quotes)
        distinct = sorted(set(q.values()))
        if currency is None:
            if len(distinct) > 1:
                listed = ", ".join(f"{n} {q[n]}" for n in names)
                raise ValidationError(
                    "currency",
                    None,
                    f"quotes differ ({listed}): pass currency='{distinct[0]}' and rates="
                    "{'USDT/USD': series or 1.0} to convert, or use by='base'",
                )
            unit = distinct[0]
        else:
            unit = currency.strip().upper()
    else:
        unit = "base"

    per_venue: list[tuple[np.ndarray, Float64Array]] = []  # (bucket times, sums) per venue
    for n in names:
        field = f"trades[{n!r}]"
        df = trades[n]
        if not isinstance(df, pd.DataFrame):
            raise ValidationError(field, type(df).__name__, "expected a DataFrame with ts, qty")
        t = _amounts(df, field, by)
        i0 = 0 if lo is None else int(np.searchsorted(t.ts, lo, side="left"))
        i1 = len(t) if hi is None else int(np.searchsorted(t.ts, hi, side="left"))
        ts, amt = t.ts[i0:i1], t.values[i0:i1]
        if by == "quote" and q[n] != unit:
            conv = _conversion(q[n], unit, rate_list)
            if conv is None:
                raise ValidationError(
                    "rates",
                    sorted(r.label for r in rate_list),
                    f"no {q[n]}/{unit} rate to convert {n}'s notional into {unit}",
                )
            rate, multiply = conv
            r = rate.at(ts)
            if ts.size and not np.isfinite(r).all():
                first = int(ts[np.flatnonzero(~np.isfinite(r))[0]])
                raise ValidationError(
                    f"rates[{rate.label!r}]",
                    first,
                    f"no rate at or before {n}'s trade at ts={first} µs: "
                    "supply a rate series that starts earlier, or a later start",
                )
            amt = amt * r if multiply else amt / r
            conversion[n] = f"{q[n]} -> {unit} via {rate.describe()}"
        elif by == "quote":
            conversion[n] = f"in {unit}"
        else:
            conversion[n] = "base quantity"
        if ts.size == 0:
            per_venue.append((np.empty(0, np.int64), np.empty(0)))
        elif step is None:
            per_venue.append((ts[:1], np.array([amt.sum()])))
        else:
            b = ts // step * step  # sorted: each bucket is one run
            starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
            per_venue.append((b[starts], np.add.reduceat(amt, starts)))

    ub = np.unique(np.concatenate([b for b, _ in per_venue]))
    if step is None and ub.size:
        ub = np.array([lo if lo is not None else int(ub[0])], dtype=np.int64)
    vol = np.zeros((ub.size, len(names)))
    for k, (b, sums) in enumerate(per_venue):
        if b.size and step is None:
            vol[0, k] = sums[0]
        elif b.size:
            vol[np.searchsorted(ub, b), k] = sums
    index = time_index(ub)
    volume = pd.DataFrame(vol, index=index, columns=names)
    row_tot = vol.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = pd.DataFrame(vol / row_tot, index=index, columns=names)
    total = pd.Series(vol.sum(axis=0), index=pd.Index(names, name="venue"), name="volume")
    grand = float(total.sum())
    total_share = (total / grand if grand > 0 else total * np.nan).rename("share")
    return VolumeShare(
        by=by,
        unit=unit,
        volume=volume,
        share=share,
        total=total,
        total_share=total_share,
        conversion=conversion,
        interval_us=step,
        start_us=lo,
        end_us=hi,
    )


def _amounts(df: pd.DataFrame, field: str, by: str) -> Ticks:
    """Per-trade base quantity or quote notional (price·qty), time-sorted, NaN rows skipped."""
    ts = frame_ts(df, field)
    qty = frame_column(df, "qty", field)
    if (qty < 0).any():
        i = int(np.flatnonzero(qty < 0)[0])
        raise ValidationError(field, float(qty[i]), f"negative quantity at row {i}")
    if by == "base":
        return as_ticks((ts, qty), field)
    px = frame_column(df, "price", field)
    check_positive_prices(px[np.isfinite(px)], field)
    return as_ticks((ts, px * qty), field)


# -- data quality -------------------------------------------------------------------------------

#: Columns of :func:`data_quality`'s result, in order.
QUALITY_COLUMNS = (
    "ids",
    "state",
    "holes",
    "ids_found",
    "ids_filled",
    "ids_pending",
    "ids_missing",
    "holes_missing",
    "missing",
    "reasons",
    "received",
    "dropped_by_venue",
    "rest_filled",
    "note",
)

_RANK = {"found": 0, "filled": 1, "unfilled": 2}


def _runs(segments: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge sorted inclusive id ranges that touch or overlap."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(segments):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _ledger(rows: pd.DataFrame) -> dict[str, Any]:
    """Per-id status of one stream's gap rows (see :func:`data_quality` for the rules)."""
    lo = rows["first_missing"].to_numpy(np.int64)
    hi = rows["last_missing"].to_numpy(np.int64)
    status = rows["status"].astype(str).to_numpy()
    if "updated_ts" in rows.columns:
        upd = rows["updated_ts"].to_numpy(np.int64)
    else:
        upd = np.arange(len(rows), dtype=np.int64)  # row order
    bad = [s for s in status if s not in _RANK]
    if bad:
        raise ValidationError("gaps.status", bad[0], "expected 'found', 'filled' or 'unfilled'")
    if (hi < lo).any():
        i = int(np.flatnonzero(hi < lo)[0])
        raise ValidationError("gaps", (int(lo[i]), int(hi[i])), "last_missing < first_missing")
    # sweep over elementary segments [p, q) between range boundaries
    events: list[tuple[int, int, int]] = []  # (position, +1 start / -1 end, row)
    for r in range(len(rows)):
        events.append((int(lo[r]), 1, r))
        events.append((int(hi[r]) + 1, -1, r))
    events.sort()
    active: set[int] = set()
    segs: list[tuple[int, int, int]] = []  # (p, q, best row)
    settled = np.zeros(len(rows), dtype=bool)
    heap: list[tuple[int, int, int]] = []
    i = 0
    while i < len(events):
        pos = events[i][0]
        while i < len(events) and events[i][0] == pos:
            _, d, r = events[i]
            if d == 1:
                active.add(r)
                heapq.heappush(heap, (-int(upd[r]), -_RANK[status[r]], r))
            else:
                active.discard(r)
            i += 1
        if not active:
            continue
        nxt = events[i][0] if i < len(events) else pos
        while heap[0][2] not in active:
            heapq.heappop(heap)
        best = heap[0][2]
        segs.append((pos, nxt, best))
        if len(active) > 1:
            outcome = [r for r in active if status[r] != "found"]
            for f in active:
                if status[f] == "found" and any(upd[o] >= upd[f] for o in outcome):
                    settled[f] = True
    per: dict[str, list[tuple[int, int]]] = {"filled": [], "unfilled": [], "found": []}
    reasons: dict[tuple[int, int], str] = {}
    for p, qq, r in segs:
        s = status[r]
        if s == "found" and settled[r]:
            s = "filled"
        per[s].append((p, qq - 1))
        if s == "unfilled" and "reason" in rows.columns:
            reasons[(p, qq - 1)] = str(rows["reason"].iloc[r])
    found = _runs([(p, qq - 1) for p, qq, _ in segs])
    missing = _runs(per["unfilled"])
    why: list[str] = []
    for key in sorted(reasons):
        if reasons[key] and reasons[key] not in why:
            why.append(reasons[key])

    def count(ranges: list[tuple[int, int]]) -> int:
        return int(sum(h - lo_ + 1 for lo_, h in ranges))

    return {
        "holes": len(found),
        "ids_found": count(found),
        "ids_filled": count(per["filled"]),
        "ids_pending": count(per["found"]),
        "ids_missing": count(missing),
        "holes_missing": len(missing),
        "missing": tuple(missing),
        "reasons": "; ".join(why),
    }


def _venue_col(df: pd.DataFrame, field: str) -> str:
    for c in ("venue", "exchange"):
        if c in df.columns:
            return c
    raise ValidationError(field, list(map(str, df.columns)), "needs a 'venue' or 'exchange' column")


def data_quality(gaps: pd.DataFrame, streams: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per venue and symbol: holes found, filled, pending and still missing, from the gap ledger.

    Parameters
    ----------
    gaps : DataFrame
        Rows shaped like lq's ``gaps`` table (``Store.gaps()``): ``exchange`` (or ``venue``),
        ``symbol``, ``kind`` (optional, default ``"trade"``), ``first_missing``,
        ``last_missing`` (inclusive trade ids), ``status`` (``found``/``filled``/``unfilled``),
        ``updated_ts`` (optional; else row order is time order), ``reason`` (optional).
    streams : DataFrame, optional
        One row per followed stream: ``venue`` (or ``exchange``), ``symbol``, ``kind``
        (optional), ``ids`` (``"contiguous"`` or ``"none"``: a venue whose trade ids are not
        contiguous cannot be checked), and any of the counts ``received`` (trades stored),
        ``dropped_by_venue`` (trades the venue's stream did not send) and ``rest_filled``
        (trades REST backfill delivered). Streams with no ledger row appear as complete
        (contiguous) or not checkable; counts not given are ``<NA>``.

    Returns
    -------
    DataFrame
        Index ``(venue, symbol, kind)``; columns :data:`QUALITY_COLUMNS`. ``state`` is
        ``"not checkable"`` (ids ``"none"``: every id count is ``<NA>``, never 0),
        ``"unfilled holes"``, ``"backfill pending"``, ``"all holes filled"`` or ``"complete"``
        (no hole recorded), in that order of precedence. ``missing``: the id ranges still
        missing (merged, inclusive); ``reasons``: why, from the ledger.

    Notes
    -----
    Each id takes the status of the latest row covering it (``updated_ts``; at a tie
    ``unfilled`` > ``filled`` > ``found``: never claim more than is known). lq's sequencer
    settles a backfill by reporting only the ranges still missing, so a ``found`` row that a
    later ``filled``/``unfilled`` row overlaps was settled: its other ids count as filled.
    ``holes`` counts maximal runs of ids the ledger ever listed; the id counts are exact for
    the rows given (a ledger that has overwritten a row's range cannot show what it lost).

    Examples
    --------
    >>> gaps = pd.DataFrame({
    ...     "exchange": ["kraken", "kraken", "kraken"], "symbol": ["BTC/USD"] * 3,
    ...     "first_missing": [100, 150, 300], "last_missing": [200, 160, 309],
    ...     "status": ["found", "unfilled", "filled"], "updated_ts": [1, 2, 3],
    ...     "reason": ["", "REST returned nothing", ""]})
    >>> streams = pd.DataFrame({"venue": ["kraken", "bybit"], "symbol": ["BTC/USD", "BTCUSDT"],
    ...                         "ids": ["contiguous", "none"], "dropped_by_venue": [111, 0]})
    >>> q = data_quality(gaps, streams)
    >>> cols = ["state", "holes", "ids_found", "ids_filled", "ids_missing", "missing", "reasons"]
    >>> q.loc[("kraken", "BTC/USD", "trade"), cols].to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'state': 'unfilled holes', 'holes': 2, 'ids_found': 111, 'ids_filled': 100,
     'ids_missing': 11, 'missing': ((150, 160),), 'reasons': 'REST returned nothing'}
    >>> q.loc[("bybit", "BTCUSDT", "trade"), ["state", "ids_found"]].tolist()
    ['not checkable', <NA>]
    """
    if not isinstance(gaps, pd.DataFrame):
        raise ValidationError("gaps", type(gaps).__name__, "expected a DataFrame (Store.gaps())")
    keys = ["venue", "symbol", "kind"]
    ledger = gaps
    if len(ledger):
        need = {"symbol", "first_missing", "last_missing", "status"}
        if not need <= set(ledger.columns):
            raise ValidationError("gaps", sorted(need - set(ledger.columns)), "missing columns")
        ledger = ledger.rename(columns={_venue_col(ledger, "gaps"): "venue"})
        if "kind" not in ledger.columns:
            ledger = ledger.assign(kind="trade")
    info: dict[tuple[str, str, str], dict[str, Any]] = {}
    if streams is not None:
        if not isinstance(streams, pd.DataFrame):
            raise ValidationError("streams", type(streams).__name__, "expected a DataFrame")
        scol = _venue_col(streams, "streams")
        if "symbol" not in streams.columns:
            raise ValidationError("streams", list(streams.columns), "needs a 'symbol' column")
        for srow in streams.rename(columns={scol: "venue"}).to_dict("records"):
            skey = (
                str(srow["venue"]),
                str(srow["symbol"]),
                str(srow.get("kind", "trade") or "trade"),
            )
            ids = str(srow.get("ids", "contiguous") or "contiguous")
            check_choice(ids, "streams.ids", ("contiguous", "none"))
            info[skey] = {**srow, "ids": ids}
    groups: dict[tuple[str, str, str], pd.DataFrame] = {}
    if len(ledger):
        for gkey, grows in ledger.groupby(keys, sort=False):
            groups[(str(gkey[0]), str(gkey[1]), str(gkey[2]))] = grows
    out = []
    index = []
    na = pd.NA
    for key in sorted(set(groups) | set(info)):
        meta = info.get(key, {"ids": "contiguous"})
        rows = groups.get(key)
        rec: dict[str, Any] = {"ids": meta["ids"], "note": ""}
        for c in ("received", "dropped_by_venue", "rest_filled"):
            v = meta.get(c, na)
            rec[c] = na if v is None or (isinstance(v, float) and v != v) else v
        if meta["ids"] == "none":
            rec.update(state="not checkable", holes=na, ids_found=na, ids_filled=na,
                       ids_pending=na, ids_missing=na, holes_missing=na, missing=(), reasons="")  # fmt: skip
            if rows is not None:
                rec["note"] = (
                    f"{len(rows)} ledger rows ignored: the venue declares no contiguous ids"
                )
        elif rows is None:
            rec.update(state="complete", holes=0, ids_found=0, ids_filled=0, ids_pending=0,
                       ids_missing=0, holes_missing=0, missing=(), reasons="")  # fmt: skip
        else:
            rec.update(_ledger(rows))
            if rec["ids_missing"]:
                rec["state"] = "unfilled holes"
            elif rec["ids_pending"]:
                rec["state"] = "backfill pending"
            else:
                rec["state"] = "all holes filled"
        out.append(rec)
        index.append(key)
    result = pd.DataFrame(
        out, index=pd.MultiIndex.from_tuples(index, names=keys), columns=list(QUALITY_COLUMNS)
    )
    if not index:
        result.index = pd.MultiIndex.from_tuples([], names=keys)
    for c in ("holes", "ids_found", "ids_filled", "ids_pending", "ids_missing", "holes_missing",
              "received", "dropped_by_venue", "rest_filled"):  # fmt: skip
        result[c] = result[c].astype("Int64")
    return result


# -- instruments from stored symbols ------------------------------------------------------------
# The store keeps each venue's own symbol and no instrument list: grouping one asset across
# venues needs the canonical base/quote of a stored symbol. (Where a venue adapter's instrument
# list is at hand, prefer it: it knows tick and lot sizes; this knows only the name.)

#: Quote codes recognised at the end of a concatenated symbol (``BTCUSDT``), longest first.
QUOTE_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "FDUSD",
            "BUSD",
            "TUSD",
            "USDP",
            "DAI",
            "USD",
            "EUR",
            "GBP",
            "JPY",
            "TRY",
            "BRL",
            "AUD",
            "BTC",
            "ETH",
            "BNB",
            "ZUSD",
            "ZEUR",
        ),
        key=len,
        reverse=True,
    )
)
#: Quotes the Venues tab compares: the US dollar and dollar stablecoins. They are never taken
#: as equal (the tab shows USD vs USDT); other quotes (EUR, BTC...) are listed, not compared.
USD_QUOTES: frozenset[str] = frozenset(
    {"USD", "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI"}
)
_SEP = re.compile(r"[-/_]")


def instrument_of(exchange: str, symbol: str) -> Instrument | None:
    """The canonical instrument of a stored ``symbol`` of venue ``exchange``, or ``None``.

    Splits at the venue's separator (``-``, ``/``, ``_``: ``BTC-USD``, ``XBT/USD``) or, for
    a concatenated symbol (``BTCUSDT``), at the longest known quote suffix
    (:data:`QUOTE_SUFFIXES`), then maps both codes with
    :func:`~lq.venues.instrument.canonical_asset` (``XBT`` -> ``BTC``). Quotes stay as the
    venue quotes them: USD and USDT are different. A name of three parts (``BTC-USDT-SWAP``,
    ``BTC-USD-220527``) is a derivative, not the spot instrument: ``None``; so is a name with
    no known quote.

    Examples
    --------
    >>> instrument_of("kraken", "XBT/USD").key, instrument_of("binance", "BTCUSDT").key
    ('BTC-USD@kraken', 'BTC-USDT@binance')
    >>> instrument_of("okx", "BTC-USDT-SWAP") is None      # a swap, not the spot instrument
    True
    """
    sym = symbol.strip().upper()
    parts = _SEP.split(sym)
    if len(parts) == 2:
        base, quote = parts
    elif len(parts) == 1:
        for q in QUOTE_SUFFIXES:
            if sym.endswith(q) and len(sym) > len(q):
                base, quote = sym[: -len(q)], q
                break
        else:
            return None
    else:
        return None
    if not base or not quote:
        return None
    return Instrument(
        venue=exchange, symbol=symbol, base=canonical_asset(base), quote=canonical_asset(quote)
    )
