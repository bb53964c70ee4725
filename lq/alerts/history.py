"""A rule over the past: how often it would have fired, and what followed.

The samples are read from the store exactly as the live sampler builds them
(:mod:`lq.alerts.metrics`): for ``sample = k`` seconds, the close of each stored ``k``-second
bar, stamped with the bar's end; for a pair, both legs' closes outer-joined on time and
carried forward; for ``sample = 0``, every stored trade. The same metric classes and the same
:func:`lq.alerts.evaluate.step` then run over them, so a rule fires on the same samples
here as it would have live (tested: live engine vs history on a real recording).

Forward returns are log returns of the first symbol (``Y`` of a pair) from the last trade
at or before the firing time to the last trade at or before ``firing + horizon``, from the
stored 1 s bars; NaN when the data ends first. GARCH volatility rules refit every ``refit``
samples here too (inline), and are evaluated at each refit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lq.alerts.evaluate import Firing, RuleState, step
from lq.alerts.metrics import GarchVolMetric, make_metric
from lq.alerts.rules import EVENT_METRICS, VENUE_METRICS, Rule, symbol_legs, venue_legs
from lq.analytics.bars import interval_us
from lq.analytics.reliability import forward_caveat, per_day_caveat
from lq.errors import RuleError
from lq.store.reader import Store, TimeLike, to_us_range

__all__ = [
    "HistoryResult",
    "evaluate_samples",
    "forward_returns",
    "load_samples",
    "rule_history",
    "warmup_samples",
]

Float64Array = np.ndarray


def warmup_samples(rule: Rule) -> int:
    """How many past samples warm a rule's metric up (enough for its windows, capped)."""
    w = rule.window
    need = 3 * w + rule.effective_lookback + 10
    if rule.metric in ("rsi",):
        need = 10 * w + 10  # Wilder smoothing has a long memory
    return min(need, 50_000)


def _bars_close(
    store: Store,
    symbol: str,
    sample_s: int,
    start: int | None,
    end: int | None,
    exchange: str | None,
) -> pd.Series:
    bars = store.bars(symbol, f"{sample_s}s", start, end, exchange=exchange)
    ts = bars["ts"].to_numpy(dtype=np.int64) + sample_s * 1_000_000
    return pd.Series(bars["close"].to_numpy(dtype=np.float64), index=ts, name=symbol)


def _last_start(
    store: Store, symbols: Sequence[str], n: int, sample_us: int, exchange: str | None
) -> int | None:
    table = "bars_1s" if sample_us else "ticks"
    latest = None
    for s in symbols:
        q = f"SELECT ts FROM {table} WHERE symbol = ?"
        params: list[Any] = [s]
        if exchange is not None:
            q += " AND exchange = ?"
            params.append(exchange)
        if sample_us:
            row = store.conn.execute(q + " ORDER BY ts DESC LIMIT 1", params).fetchone()
            if row is None:
                continue
            cand = int(row[0]) - n * sample_us
        else:
            row = store.conn.execute(
                q + " ORDER BY ts DESC LIMIT 1 OFFSET ?", [*params, n]
            ).fetchone()
            if row is None:
                return None  # fewer than n ticks: read them all
            cand = int(row[0])
        latest = cand if latest is None else min(latest, cand)
    return latest


def load_samples(
    store: Store,
    rule: Rule,
    *,
    start: TimeLike = None,
    end: TimeLike = None,
    last: int | None = None,
    exchange: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The samples a rule sees: ``(ts int64 µs [n], prices float64 [n, legs])``.

    ``last`` reads roughly the latest ``last`` samples (warm-up) instead of ``start``.
    Venue metrics (legs ``symbol@exchange``) read each leg from its own exchange label
    (``exchange`` is not used) and return ``[n, 4]``: both closes, then the open time of each
    leg's latest bar (what :class:`~lq.alerts.metrics.VenueSampler` emits live).
    """
    if rule.metric in EVENT_METRICS:
        raise RuleError(
            "metric",
            rule.metric,
            "staleness/gap rules have no price history; forecast rules fire on the collector's "
            "live forecasts (their history is in the forecasts table and the Forecast tab)",
        )
    if rule.metric in VENUE_METRICS:
        return _venue_samples(store, rule, *to_us_range(start, end), last)
    lo, hi = to_us_range(start, end)  # a start at or after the end: one line, not "no samples"
    legs = [_leg(rule, i, exchange) for i in range(len(rule.symbols))]
    if last is None:
        check_labels(store, rule)
    sample_us = rule.sample_us
    if last is not None:
        starts = [_last_start(store, [s], last, sample_us, ex) for s, ex in legs]
        known = [x for x in starts if x is not None]
        if sample_us:
            lo = min(known) if known else None
        else:  # fewer than n ticks on a leg: read them all
            lo = None if len(known) < len(starts) else min(known)
    if sample_us:
        sample_s = sample_us // 1_000_000
        cols = [_bars_close(store, s, sample_s, lo, hi, ex) for s, ex in legs]
        if len(cols) == 1:
            s = cols[0]
            return s.index.to_numpy(dtype=np.int64), s.to_numpy()[:, None]
        df = pd.concat(cols, axis=1, join="outer").sort_index().ffill().dropna()
        return df.index.to_numpy(dtype=np.int64), df.to_numpy(dtype=np.float64)
    ticks = [store.ticks(s, lo, hi, exchange=ex) for s, ex in legs]
    if len(ticks) == 1:
        t = ticks[0]
        return t["ts"].to_numpy(dtype=np.int64), t["price"].to_numpy(dtype=np.float64)[:, None]
    parts = []
    for leg, t in enumerate(ticks):
        parts.append(
            pd.DataFrame({"ts": t["ts"], "leg": leg, "tid": t["trade_id"], "p": t["price"]})
        )
    allt = pd.concat(parts).sort_values(["ts", "leg", "tid"], kind="stable")
    wide = np.full((len(allt), 2), np.nan)
    legs = allt["leg"].to_numpy()
    p = allt["p"].to_numpy()
    last_p = [math.nan, math.nan]
    for i in range(len(allt)):
        last_p[legs[i]] = p[i]
        wide[i] = last_p
    ok = ~np.isnan(wide).any(axis=1)
    return allt["ts"].to_numpy(dtype=np.int64)[ok], wide[ok]


def _venue_samples(
    store: Store, rule: Rule, lo: int | None, hi: int | None, last: int | None
) -> tuple[np.ndarray, np.ndarray]:
    legs = venue_legs(rule.symbol)
    assert legs is not None
    us = rule.sample_us
    if last is None:
        check_labels(store, rule)
    if last is not None:
        starts = [_last_start(store, [s], last, us, ex) for s, ex in legs]
        known = [x for x in starts if x is not None]
        lo = min(known) if known else None
    cols = []
    for k, (sym, ex) in enumerate(legs):
        bars = store.bars(sym, f"{us // 1_000_000}s", lo, hi, exchange=ex)
        opened = bars["ts"].to_numpy(dtype=np.int64)
        idx = opened + us  # stamped with the bucket's end, as the live sampler does
        cols.append(pd.Series(bars["close"].to_numpy(dtype=np.float64), index=idx, name=f"p{k}"))
        cols.append(pd.Series(opened.astype(np.float64), index=idx, name=f"b{k}"))
    df = pd.concat(cols, axis=1, join="outer").sort_index().ffill().dropna()
    df = df[["p0", "p1", "b0", "b1"]]
    return df.index.to_numpy(dtype=np.int64), df.to_numpy(dtype=np.float64)


def _leg(rule: Rule, i: int, exchange: str | None) -> tuple[str, str | None]:
    """The symbol and exchange label of leg ``i`` (a labelled leg, ``BTC-USD@coinbase``,
    names its own exchange; a plain one reads ``exchange``)."""
    legs = symbol_legs(rule.symbol)
    if legs is not None:
        sym, ex = legs[i]
        return sym, ex if ex is not None else exchange
    return rule.symbols[i], exchange


def check_labels(store: Store, rule: Rule) -> None:
    """Every labelled leg (``BTC-USD@coinbase``) has rows under its label, or RuleError
    naming the labels stored (for that symbol, and in all)."""
    for sym, ex in symbol_legs(rule.symbol) or ():
        if ex is None:
            continue
        q = "SELECT 1 FROM {t} WHERE symbol = ? AND exchange = ? LIMIT 1"
        if any(
            store.conn.execute(q.format(t=t), (sym, ex)).fetchone() for t in ("ticks", "bars_1s")
        ):
            continue
        rows = store.conn.execute(
            "SELECT DISTINCT exchange, symbol FROM ticks UNION SELECT DISTINCT exchange, symbol "
            "FROM bars_1s"
        ).fetchall()
        mine = sorted({e for e, s in rows if s == sym})
        every = sorted({e for e, _ in rows})
        where = f"{sym} is stored under {', '.join(mine)}" if mine else f"no {sym} rows stored"
        raise RuleError(
            "symbol", rule.symbol, f"no {sym} rows under exchange label {ex!r} ({where}; "
            f"stored labels: {', '.join(every) or 'none'})",
        )  # fmt: skip


def evaluate_samples(
    rule: Rule,
    ts: np.ndarray,
    prices: np.ndarray,
    *,
    rule_id: int = 0,
    hedge_ratios: list[float] | None = None,
) -> tuple[list[Firing], np.ndarray]:
    """Run the rule's metric and evaluation over samples (pure); returns (firings, values).

    ``hedge_ratios``, if given, receives the pair metric's hedge ratio at each firing (NaN for
    metrics without one)."""
    m = make_metric(rule)
    state: RuleState | None = None
    firings: list[Firing] = []
    values = np.full(len(ts), np.nan)
    garch = isinstance(m, GarchVolMetric)
    for i in range(len(ts)):
        t = int(ts[i])
        m.update(t, tuple(float(p) for p in prices[i]))
        if garch:
            assert isinstance(m, GarchVolMetric)
            if not m.due:
                values[i] = m.value
                continue
            fts, rets = m.take()
            m.set_value(fts, m.fit(rets))
        v = m.value
        values[i] = v
        f, state = step(rule_id, rule, v, t, state)
        if f is not None:
            firings.append(f)
            if hedge_ratios is not None:
                hedge_ratios.append(float(getattr(m, "hedge_ratio", math.nan)))
    return firings, values


def forward_returns(
    store: Store,
    symbol: str,
    times: Sequence[int],
    horizons: Sequence[str],
    *,
    exchange: str | None = None,
) -> pd.DataFrame:
    """Log return of ``symbol`` from each time to time + horizon (1 s bar closes, as-of)."""
    cols = {f"fwd_{h}": np.full(len(times), np.nan) for h in horizons}
    if not len(times):
        return pd.DataFrame(cols)
    bars = store.bars(symbol, "1s", exchange=exchange)
    if bars.empty:
        return pd.DataFrame(cols)
    end_ts = (
        bars["ts"].to_numpy(dtype=np.int64) + 1_000_000
    )  # a 1 s bar's close is known at its end
    lp = np.log(bars["close"].to_numpy(dtype=np.float64))
    last_end = int(end_ts[-1])
    t = np.asarray(times, dtype=np.int64)
    i0 = np.searchsorted(end_ts, t, side="right") - 1
    for h in horizons:
        hu = interval_us(h)
        i1 = np.searchsorted(end_ts, t + hu, side="right") - 1
        ok = (i0 >= 0) & (t + hu <= last_end)
        out = np.full(len(t), np.nan)
        out[ok] = lp[i1[ok]] - lp[i0[ok]]
        cols[f"fwd_{h}"] = out
    return pd.DataFrame(cols)


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """What a rule would have done over stored data.

    ``firings``: one row per firing (``time``, ``ts``, ``value``, ``fwd_<h>`` log returns of
    the first symbol). Pair rules add ``fwd_x_<h>`` (the second leg) and, for a spread
    z-score, ``beta`` (the hedge ratio at the firing) and ``fwd_spread_<h>`` = ``fwd_<h> -
    beta * fwd_x_<h>``: the change of the hedged log spread, which a z-score rule expects to
    move back toward its mean.
    ``summary``: per horizon (and per series for pairs: ``y``, ``x``, ``spread``) the count
    with data, mean, median, share > 0, and for the spread ``reverted``: the share of firings
    after which the spread moved against the sign of the z-score that fired.
    """

    rule: Rule
    start: int | None
    end: int | None
    samples: int
    firings: pd.DataFrame
    summary: pd.DataFrame

    @property
    def count(self) -> int:
        return len(self.firings)

    @property
    def span_seconds(self) -> float:
        """Seconds from the first to the last sample (NaN without samples)."""
        if self.start is None or self.end is None:
            return math.nan
        return (self.end - self.start) / 1e6

    @property
    def per_day(self) -> float:
        """Firings per day of sampled data, as computed (NaN without a span).

        Raw: from less than a day of data this extrapolates; :attr:`per_day_caveat` says
        so, and every display greys it (:mod:`lq.analytics.reliability`).
        """
        span = self.span_seconds
        if not span > 0:
            return math.nan
        return self.count / (span / 86_400)

    @property
    def per_day_caveat(self) -> str | None:
        """Why :attr:`per_day` means little (under a day of data), or None."""
        return per_day_caveat(span_seconds=self.span_seconds)

    @property
    def forward_caveat(self) -> str | None:
        """Why the forward returns in :attr:`summary` mean little (under 30 firings), or
        None; the raw figures stay in ``summary`` and ``firings``."""
        return forward_caveat(firings=self.count)


def rule_history(
    store: Store,
    rule: Rule,
    *,
    start: TimeLike = None,
    end: TimeLike = None,
    horizons: Sequence[str] = ("1m", "5m", "15m"),
    exchange: str | None = None,
) -> HistoryResult:
    """Evaluate ``rule`` over stored history: its firings and forward returns after them.

    Examples
    --------
    >>> res = rule_history(Store("lq.sqlite"), rule)                   # doctest: +SKIP
    >>> res.count, res.summary                                         # doctest: +SKIP
    """
    ts, prices = load_samples(store, rule, start=start, end=end, exchange=exchange)
    betas: list[float] = []
    firings, _ = evaluate_samples(rule, ts, prices, hedge_ratios=betas)
    times = [f.ts for f in firings]
    value = np.array([f.value for f in firings], dtype=np.float64)
    pair = len(rule.symbols) == 2
    spread = pair and rule.metric == "spread_zscore"
    y_sym, y_ex = _leg(rule, 0, exchange)
    fr = forward_returns(store, y_sym, times, horizons, exchange=y_ex)
    parts = [
        pd.DataFrame(
            {
                "time": pd.to_datetime(np.asarray(times, dtype=np.int64), unit="us", utc=True),
                "ts": np.asarray(times, dtype=np.int64),
                "value": value,
            }
        ),
        fr,
    ]
    series: list[tuple[str, str, np.ndarray]] = [
        ("y" if pair else rule.symbols[0], h, fr[f"fwd_{h}"].to_numpy()) for h in horizons
    ]
    if pair:
        x_sym, x_ex = _leg(rule, 1, exchange)
        fx = forward_returns(store, x_sym, times, horizons, exchange=x_ex)
        fx.columns = [f"fwd_x_{h}" for h in horizons]
        parts.append(fx)
        series += [("x", h, fx[f"fwd_x_{h}"].to_numpy()) for h in horizons]
    if spread:
        beta = np.asarray(betas, dtype=np.float64)
        fs = pd.DataFrame(
            {
                f"fwd_spread_{h}": fr[f"fwd_{h}"].to_numpy() - beta * fx[f"fwd_x_{h}"].to_numpy()
                for h in horizons
            }
        )
        parts += [pd.DataFrame({"beta": beta}), fs]
        series += [("spread", h, fs[f"fwd_spread_{h}"].to_numpy()) for h in horizons]
    df = pd.concat(parts, axis=1)
    rows = []
    for name, h, v in series:
        ok = np.isfinite(v)
        x = v[ok]
        row = {
            "series": name,
            "horizon": h,
            "n": int(x.size),
            "mean": float(x.mean()) if x.size else math.nan,
            "median": float(np.median(x)) if x.size else math.nan,
            "hit_rate": float((x > 0).mean()) if x.size else math.nan,
        }
        if spread:
            row["reverted"] = (
                float((np.sign(x) == -np.sign(value[ok])).mean())
                if name == "spread" and x.size
                else math.nan
            )
        rows.append(row)
    cols = ["series", "horizon", "n", "mean", "median", "hit_rate"] + (
        ["reverted"] if spread else []
    )
    return HistoryResult(
        rule=rule,
        start=int(ts[0]) if len(ts) else None,
        end=int(ts[-1]) if len(ts) else None,
        samples=len(ts),
        firings=df,
        summary=pd.DataFrame(rows, columns=cols),
    )
