"""When a figure means something: the one short-sample rule for annualised and per-day numbers.

Annualising six minutes of bars gives "Sharpe -649" and "CAGR -100 %"; one alert firing in six
minutes reads as "249.7 per day". Such figures are arithmetic, not information. lq computes them
anyway (the raw values stay in every result object and API), but every place that *shows* them
asks this module first and greys them with the reason it returns.

The rule (one place; ``docs/backtest.md`` and ``docs/alerts.md`` describe it):

* **Annualised figures** (CAGR, Sharpe, Sortino, Calmar) need at least
  :data:`MIN_SPAN_ANNUALISED` (1 day) between the first and the last bar, and, for a strategy,
  at least :data:`MIN_TRADES` (30) trades. The standard error of an annualised Sharpe ratio is
  about ``sqrt(1 / years)`` whatever the bar size (Lo 2002, "The Statistics of Sharpe
  Ratios"): ~19 after one day, so even one day is a floor, not a guarantee. Position returns are
  correlated within a trade, so the number of independent bets is closer to the number of
  trades than to the number of bars; under 30 trades a Sharpe ratio mostly measures a few trades.
* **Significance figures** (PSR, DSR) follow the same rule as annualised ones (1 day of bars
  and 30 trades): a probability computed from a few correlated trades is as empty as the
  Sharpe ratio it is built on. **Forward returns** after an alert's firings need at least
  :data:`MIN_FIRINGS` (30) firings: a mean of a handful of overlapping returns is noise.
* **Per-day rates** (how often an alert fired) need at least :data:`MIN_SPAN_PER_DAY` (1 day)
  of sampled data: below that the rate is an extrapolation of a part of one day's cycle.

The functions return ``None`` when the figure may be shown as it is, else the reason as a short
phrase such as ``"annualised from 5.8 min of bars (under 1 day)"``.

>>> annualised_caveat(span_seconds=348.0, trades=3)
'annualised from 5.8 min of bars (under 1 day) and 3 trades (under 30)'
>>> annualised_caveat(span_seconds=3 * 86400.0, trades=45) is None
True
>>> sample_caveat("DSR", span_seconds=348.0, trades=3)
'DSR from 5.8 min of bars (under 1 day) and 3 trades (under 30)'
>>> forward_caveat(firings=1)
'forward returns from 1 firing (under 30)'
>>> per_day_caveat(span_seconds=348.0)
'per-day rate from 5.8 min of data (under 1 day)'
"""

from __future__ import annotations

import math

__all__ = [
    "ANNUALISED_METRICS",
    "MIN_FIRINGS",
    "MIN_SPAN_ANNUALISED",
    "MIN_SPAN_PER_DAY",
    "MIN_TRADES",
    "annualised_caveat",
    "format_span",
    "forward_caveat",
    "per_day_caveat",
    "sample_caveat",
]

#: Seconds between the first and last bar below which annualised figures are greyed (1 day).
MIN_SPAN_ANNUALISED = 86_400.0
#: Trades below which a strategy's annualised figures are greyed.
MIN_TRADES = 30
#: Alert firings below which the forward returns after them are greyed.
MIN_FIRINGS = 30
#: Seconds of sampled data below which per-day rates are greyed (1 day).
MIN_SPAN_PER_DAY = 86_400.0
#: The metrics of :class:`lq.backtest.Metrics` the annualisation rule applies to.
ANNUALISED_METRICS = ("cagr", "sharpe", "sortino", "calmar")


def format_span(seconds: float) -> str:
    """A duration for a reason text: ``"42 s"``, ``"5.8 min"``, ``"3.5 h"``, ``"2.0 d"``."""
    if not math.isfinite(seconds):
        return "an unknown span"
    s = max(float(seconds), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    if s < 86_400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86_400:.1f} d"


def _limit(seconds: float) -> str:
    return "1 day" if seconds == 86_400 else format_span(seconds)


def annualised_caveat(
    *,
    span_seconds: float,
    trades: int | None = None,
    min_span: float = MIN_SPAN_ANNUALISED,
    min_trades: int = MIN_TRADES,
) -> str | None:
    """Why annualised figures from this sample mean nothing, or ``None`` when they may.

    Parameters
    ----------
    span_seconds
        Time from the first to the last bar.
    trades
        Number of trades of a strategy; ``None`` (buy-and-hold, a plain return series) skips
        the trade-count part of the rule.
    """
    return sample_caveat(
        "annualised", span_seconds=span_seconds, trades=trades, min_span=min_span,
        min_trades=min_trades,
    )  # fmt: skip


def sample_caveat(
    figure: str,
    *,
    span_seconds: float,
    trades: int | None = None,
    min_span: float = MIN_SPAN_ANNUALISED,
    min_trades: int = MIN_TRADES,
) -> str | None:
    """The annualisation rule for any figure built on a Sharpe ratio (``"PSR"``, ``"DSR"``):
    ``"<figure> from 5.8 min of bars (under 1 day) ..."``, or ``None`` when it may be shown."""
    short = not (math.isfinite(span_seconds) and span_seconds >= min_span)
    few = trades is not None and trades < min_trades
    if not short and not few:
        return None
    parts = []
    if short:
        parts.append(f"{format_span(span_seconds)} of bars (under {_limit(min_span)})")
    if few:
        parts.append(f"{trades} trade{'s' if trades != 1 else ''} (under {min_trades})")
    return f"{figure} from " + " and ".join(parts)


def forward_caveat(*, firings: int, min_firings: int = MIN_FIRINGS) -> str | None:
    """Why the forward returns after ``firings`` alert firings mean nothing, or ``None``."""
    if firings >= min_firings:
        return None
    return (
        f"forward returns from {firings} firing{'s' if firings != 1 else ''} (under {min_firings})"
    )


def per_day_caveat(*, span_seconds: float, min_span: float = MIN_SPAN_PER_DAY) -> str | None:
    """Why a per-day rate from ``span_seconds`` of data means nothing, or ``None``."""
    if math.isfinite(span_seconds) and span_seconds >= min_span:
        return None
    return f"per-day rate from {format_span(span_seconds)} of data (under {_limit(min_span)})"
