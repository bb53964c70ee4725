"""Alert rules: frozen, keyword-only specs that validate at the door and round-trip to JSON.

A rule says *what* to watch (``metric`` on ``symbol`` with its parameters), *when* to fire
(``condition`` against ``threshold`` or ``band``, with a hysteresis re-arm level and a
cooldown) and *whom* to tell (``channels``, ``severity``).

Metrics (``symbol`` is ``"BTCUSDT"``, or ``"Y/X"`` such as ``"ETHUSDT/BTCUSDT"`` for a pair; a
leg on another venue names its exchange label: ``"BTC-USD@coinbase"``, ``"BTC/USD@kraken"``,
``"ETH-USD@coinbase/BTC-USD@coinbase"``, and is evaluated on that label's rows only):

================  ======  =====================================================================
metric            symbol  value
================  ======  =====================================================================
price             one     last trade price of each sample
return            one     log return over the last ``lookback`` samples (default ``window``)
zscore            one     z-score of the price over ``window`` samples (ddof=1)
rsi               one     Wilder's RSI over ``window`` price changes
volatility        one     annualised volatility of log returns: ``realized`` (rolling, zero
                          mean, ``window`` returns) or ``garch`` (GARCH(1,1) one-step forecast,
                          refitted every ``refit`` samples on the last ``window`` returns)
spread_zscore     pair    z-score over ``window`` of the log spread ``y - alpha - beta x``,
                          ``beta``/``alpha`` from ``hedge_method`` (rolling OLS or Kalman)
correlation       pair    rolling correlation of the two legs' log returns over ``window``
hedge_drift       pair    change of the hedge ratio over the last ``lookback`` samples
staleness         one     seconds since the last trade was received (local clock)
unfilled_gap      one     size (trade ids) of a gap the feed could not backfill
forecast          one     a deployed forecast model's (``model``) latest forecast of a closed
                          bar (``output="prediction"``: P(up), return or volatility) or its
                          running out-of-sample edge over its baseline (``output="edge"``:
                          baseline loss minus model loss; below 0 the model has stopped working)
dislocation_bps   venues  ``(p_a / p_b - 1) · 1e4`` between one asset's prices on two venues,
                          ``symbol="BTC-USD@coinbase/BTCUSDT@binance"`` (venue symbol @ exchange
                          label; the second leg is the reference); raw, each price in its own
                          quote (the description names both quotes: USD vs USDT is shown, not
                          hidden); a leg's price counts while it traded within the last
                          ``lookback`` samples (default 1: in the sample's own bucket)
================  ======  =====================================================================

Samples: prices are sampled on a clock of ``sample`` seconds of exchange time (the last trade
price of each bucket, stamped with the bucket's end), or on every trade with ``sample=0``.
A sampled pair uses both legs' last prices at the end of each bucket in which either traded.

Levels are checked against the range of the metric (:data:`METRIC_RANGES`): a threshold, band
or re-arm level outside it, or one at which the condition can never hold (RSI above 100,
correlation below -1, a price below 0), is refused with the range and the way out.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Literal, get_args

import msgspec

from lq.errors import RuleError

__all__ = [
    "CHANNELS",
    "CONDITIONS",
    "FORECAST_RANGES",
    "METRICS",
    "METRIC_RANGES",
    "PAIR_METRICS",
    "VENUE_METRICS",
    "Channel",
    "Condition",
    "Metric",
    "Rule",
    "Severity",
    "rule_from_dict",
    "rule_from_json",
    "rule_to_dict",
    "rule_to_json",
    "symbol_legs",
    "validate_forecast_levels",
    "validate_symbols",
    "venue_legs",
]

Metric = Literal[
    "price",
    "return",
    "zscore",
    "rsi",
    "volatility",
    "spread_zscore",
    "correlation",
    "hedge_drift",
    "staleness",
    "unfilled_gap",
    "forecast",
    "dislocation_bps",
]
Condition = Literal["above", "below", "crosses_above", "crosses_below", "outside"]
Severity = Literal["info", "warning", "critical"]
Channel = Literal["dashboard", "telegram", "email", "webhook"]
HedgeMethod = Literal["ols", "kalman"]
VolMethod = Literal["realized", "garch"]
ForecastOutput = Literal["prediction", "edge"]

METRICS: tuple[str, ...] = get_args(Metric)
CONDITIONS: tuple[str, ...] = get_args(Condition)
SEVERITIES: tuple[str, ...] = get_args(Severity)
CHANNELS: tuple[str, ...] = get_args(Channel)
PAIR_METRICS: frozenset[str] = frozenset({"spread_zscore", "correlation", "hedge_drift"})
EVENT_METRICS: frozenset[str] = frozenset({"staleness", "unfilled_gap", "forecast"})
#: Metrics whose legs are ``symbol@exchange`` (one asset on two venues).
VENUE_METRICS: frozenset[str] = frozenset({"dislocation_bps"})
MAX_WINDOW = 1_000_000
_UNBOUNDED = (-math.inf, math.inf)
#: The values each metric can take, ``(low, high)`` (inclusive; infinite: unbounded). Every
#: metric must have an entry (a test checks it): a new metric decides its range here.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "price": (0.0, math.inf),
    "return": (-math.inf, math.inf),
    "zscore": (-math.inf, math.inf),
    "rsi": (0.0, 100.0),
    "volatility": (0.0, math.inf),
    "spread_zscore": (-math.inf, math.inf),
    "correlation": (-1.0, 1.0),
    "hedge_drift": (-math.inf, math.inf),
    "staleness": (0.0, math.inf),
    "unfilled_gap": (0.0, math.inf),
    # a forecast is P(up), a return or a volatility, as the deployed model's target says, and
    # its edge is a difference of losses: the rule alone cannot bound it. AlertStore checks the
    # levels of a rule on a deployed model against FORECAST_RANGES (validate_forecast_levels).
    "forecast": _UNBOUNDED,
    "dislocation_bps": (-10_000.0, math.inf),  # p_a / p_b - 1 > -1 for positive prices
}
#: The values a forecast rule's ``output="prediction"`` can take, by the model's target kind
#: (:class:`lq.forecast.TargetSpec`); ``output="edge"`` is unbounded.
FORECAST_RANGES: dict[str, tuple[float, float]] = {
    "sign": (0.0, 1.0),  # the probability of an up move
    "return": _UNBOUNDED,
    "volatility": (0.0, math.inf),
}
_CHOICES = {
    "metric": METRICS,
    "condition": CONDITIONS,
    "severity": SEVERITIES,
    "channels": CHANNELS,
    "hedge_method": get_args(HedgeMethod),
    "vol_method": get_args(VolMethod),
}

# "BTC-USD@coinbase/BTCUSDT@binance": venue symbols may hold '-', '/', '_' or '.'
_VENUE_PAIR = re.compile(
    r"^([A-Z0-9][A-Z0-9\-/_.]{0,31})@([a-z0-9][a-z0-9_.\-]{0,39})/"
    r"([A-Z0-9][A-Z0-9\-/_.]{0,31})@([a-z0-9][a-z0-9_.\-]{0,39})$"
)


_LEG = re.compile(r"^([A-Z0-9][A-Z0-9\-/_.]{0,31})@([a-z0-9][a-z0-9_.\-]{0,39})$")
# a plain symbol of one venue: Binance's BTCUSDT, Coinbase's/OKX's BTC-USD (no '/': Y/X pairs)
_PLAIN = re.compile(r"^[A-Z0-9][A-Z0-9\-_.]{1,31}$")


def symbol_legs(symbol: str) -> tuple[tuple[str, str | None], ...] | None:
    """The legs of a rule's ``symbol``, each ``(venue symbol, exchange label or None)``:
    ``"BTCUSDT"`` -> ``(("BTCUSDT", None),)``; ``"ETHUSDT/BTCUSDT"`` -> two legs;
    ``"BTC/USD@kraken"`` -> ``(("BTC/USD", "kraken"),)``; ``"ETH-USD@coinbase/BTC-USD@coinbase"``
    -> two labelled legs. None if it is neither (a label on one leg only, a bad name).

    >>> symbol_legs("BTC/USD@kraken"), symbol_legs("ETHUSDT/BTCUSDT")
    ((('BTC/USD', 'kraken'),), (('ETHUSDT', None), ('BTCUSDT', None)))
    """
    if not isinstance(symbol, str):
        return None
    if "@" in symbol:
        two = venue_legs(symbol)
        if two is not None:
            return two
        m = _LEG.match(symbol)
        return ((m.group(1), m.group(2)),) if m else None
    parts = symbol.split("/")
    if len(parts) > 2 or not all(_PLAIN.match(p) for p in parts):
        return None
    return tuple((p, None) for p in parts)


def venue_legs(symbol: str) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """``"BTC-USD@coinbase/BTCUSDT@binance"`` -> ``(("BTC-USD", "coinbase"), ("BTCUSDT",
    "binance"))``; None if ``symbol`` is not two ``symbol@exchange`` legs."""
    m = _VENUE_PAIR.match(symbol) if isinstance(symbol, str) else None
    if m is None:
        return None
    return (m.group(1), m.group(2)), (m.group(3), m.group(4))


def _normalise_venue_pair(text: str) -> str:
    """Upper-case the symbols and lower-case the exchange labels of ``a@x/b@y``."""
    legs = re.match(r"^(.+?)@([^/@]+)/(.+?)@([^/@]+)$", text)
    if legs is None:
        one = re.match(r"^(.+?)@([^/@]+)$", text)
        return f"{one.group(1).upper()}@{one.group(2).lower()}" if one else text.upper()
    a, x, b, y = legs.groups()
    return f"{a.upper()}@{x.lower()}/{b.upper()}@{y.lower()}"


_NAME = re.compile(r"^[\w.\-: ]{1,80}$")


def _range_text(metric: str, rng: tuple[float, float] | None = None) -> str:
    lo, hi = METRIC_RANGES.get(metric, _UNBOUNDED) if rng is None else rng
    if math.isinf(hi):
        return f"{metric} is never below {lo:g}"
    return f"{metric} lies between {lo:g} and {hi:g}"


def _check_level(
    metric: str,
    field: str,
    v: float,
    condition: str | None = None,
    rng: tuple[float, float] | None = None,
) -> None:
    """Refuse a level outside the metric's range (or ``rng``, for the quantity named
    ``metric``), or where ``condition`` can never hold."""
    lo, hi = METRIC_RANGES.get(metric, _UNBOUNDED) if rng is None else rng
    text = _range_text(metric, (lo, hi))
    if not lo <= v <= hi:
        way = (
            f"choose one between {lo:g} and {hi:g}"
            if math.isfinite(hi)
            else f"choose one above {lo:g}"
        )
        raise RuleError(field, v, f"{text}, so {v:g} is never reached; {way}")
    if condition in ("above", "crosses_above") and v >= hi:
        raise RuleError(
            field, v, f"{text}, so {condition} {v:g} can never fire; choose a "
            f"threshold below {hi:g}"
        )  # fmt: skip
    if condition in ("below", "crosses_below") and v <= lo:
        raise RuleError(
            field, v, f"{text}, so {condition} {v:g} can never fire; choose a "
            f"threshold above {lo:g}"
        )  # fmt: skip


def _check_band(metric: str, band: tuple[float, float], rng: tuple[float, float] | None) -> None:
    lo, hi = band
    for v in (lo, hi):
        _check_level(metric, "band", v, rng=rng)
    m_lo, m_hi = METRIC_RANGES.get(metric, _UNBOUNDED) if rng is None else rng
    if lo <= m_lo and hi >= m_hi:
        raise RuleError(
            "band", band, f"{_range_text(metric, (m_lo, m_hi))}, so it is never outside "
            f"{lo:g}..{hi:g}; narrow the band"
        )  # fmt: skip


def validate_forecast_levels(rule: Rule, target_kind: str) -> None:
    """Refuse a forecast rule whose levels its model's forecasts can never reach (a sign
    model's P(up) lies in 0..1, a volatility is never negative). Called where the deployed
    model is known (``AlertStore.add``/``update``); ``output="edge"`` is unbounded."""
    if rule.metric != "forecast" or rule.output != "prediction":
        return
    rng = FORECAST_RANGES.get(target_kind, _UNBOUNDED)
    name = f"a {target_kind} forecast" if target_kind != "sign" else "a sign forecast (P(up))"
    if rule.condition == "outside" and rule.band is not None:
        _check_band(name, (float(rule.band[0]), float(rule.band[1])), rng)
    if rule.threshold is not None:
        _check_level(name, "threshold", float(rule.threshold), rule.condition, rng)
    if rule.rearm is not None:
        _check_level(name, "rearm", float(rule.rearm), rng=rng)


def _finite(field: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise RuleError(field, v, "expected a number")
    if not math.isfinite(v):
        raise RuleError(field, v, "must be a finite number (not NaN or inf)")
    return float(v)


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One alert rule (see the module docstring for metrics and sampling).

    Parameters
    ----------
    name
        Unique, human-readable (letters, digits, ``_ . - :`` and spaces; up to 80).
    metric, symbol
        What to watch; ``symbol`` is ``"Y/X"`` for pair metrics.
    condition
        ``above`` (value > threshold), ``below`` (value < threshold), ``crosses_above``
        (previous sample <= threshold < value), ``crosses_below``, ``outside``
        (value outside ``band = (low, high)``).
    threshold, band
        The level (single-threshold conditions) or the band (``outside``).
    rearm, rearm_band
        Hysteresis: after firing, the rule stays silent until the value goes past ``rearm``
        (below it for above/crosses_above, above it for below/crosses_below), or back inside
        ``rearm_band`` for ``outside``. Default: the threshold itself (or the band).
    window, lookback, sample, hedge_method, vol_method, refit
        Metric parameters: window in samples; lookback in samples (return, hedge_drift;
        default ``window``); sample clock in seconds (0 = every trade); hedge method for
        pair metrics; volatility method; GARCH refit cadence in samples.
    cooldown
        Seconds (exchange time) after a firing during which the rule stays silent.
    severity, channels
        How loud, and where to deliver (the dashboard always shows stored events).
    """

    name: str
    metric: Metric
    symbol: str
    condition: Condition = "above"
    threshold: float | None = None
    band: tuple[float, float] | None = None
    rearm: float | None = None
    rearm_band: tuple[float, float] | None = None
    window: int = 60
    lookback: int | None = None
    sample: float = 1.0
    hedge_method: HedgeMethod = "ols"
    vol_method: VolMethod = "realized"
    refit: int = 60
    cooldown: float = 0.0
    severity: Severity = "warning"
    channels: tuple[Channel, ...] = ("dashboard",)
    model: str | None = None
    output: ForecastOutput = "prediction"

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived --------------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        """``("Y", "X")`` for a pair, ``("S",)`` otherwise; ``("BTC-USD@coinbase",
        "BTCUSDT@binance")`` for a venue metric."""
        legs = symbol_legs(self.symbol)
        if legs is not None:
            return tuple(s if e is None else f"{s}@{e}" for s, e in legs)
        return tuple(self.symbol.split("/"))

    @property
    def max_age_samples(self) -> int:
        """Venue metrics: a leg counts while it traded within this many samples."""
        return self.lookback if self.lookback is not None else 1

    @property
    def is_pair(self) -> bool:
        return self.metric in PAIR_METRICS

    @property
    def sample_us(self) -> int:
        return round(self.sample * 1_000_000)

    @property
    def effective_lookback(self) -> int:
        return self.lookback if self.lookback is not None else self.window

    @property
    def content_hash(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON: same content, same id."""
        return hashlib.sha256(rule_to_json(self).encode()).hexdigest()[:16]

    @property
    def metric_key(self) -> tuple[Any, ...]:
        """Rules with the same key share one metric state in the engine."""
        m = self.metric
        key: tuple[Any, ...] = (m, self.symbol, self.sample_us)
        if m in ("zscore", "rsi", "correlation"):
            key += (self.window,)
        elif m == "return":
            key += (self.effective_lookback,)
        elif m == "volatility":
            key += (self.window, self.vol_method, self.refit if self.vol_method == "garch" else 0)
        elif m == "spread_zscore":
            key += (self.window, self.hedge_method)
        elif m == "hedge_drift":
            key += (self.window, self.hedge_method, self.effective_lookback)
        elif m in VENUE_METRICS:
            key += (self.max_age_samples,)
        return key

    def describe(self) -> str:
        """``"spread_zscore(ETHUSDT/BTCUSDT, w=300, ols) crosses_above 2"``."""
        params = {
            "price": "",
            "return": f", lookback={self.effective_lookback}",
            "zscore": f", w={self.window}",
            "rsi": f", w={self.window}",
            "volatility": f", w={self.window}, {self.vol_method}",
            "spread_zscore": f", w={self.window}, {self.hedge_method}",
            "correlation": f", w={self.window}",
            "hedge_drift": f", w={self.window}, {self.hedge_method}, lb={self.effective_lookback}",
            "staleness": "",
            "unfilled_gap": "",
            "forecast": f", model={self.model}, {self.output}",
            "dislocation_bps": f", max age {self.max_age_samples} sample(s)",
        }[self.metric]
        level = f"{self.band[0]:g}..{self.band[1]:g}" if self.band else f"{self.threshold:g}"
        if self.metric in VENUE_METRICS:
            return f"{self.metric}({_venue_text(self.symbol)}{params}) {self.condition} {level}"
        return f"{self.metric}({self.symbol}{params}) {self.condition} {level}"


def _venue_text(symbol: str) -> str:
    """``"BTC-USD@coinbase (USD) vs BTCUSDT@binance (USDT)"``: the quotes compared, named."""
    from lq.analytics.crossvenue import instrument_of

    legs = venue_legs(symbol)
    if legs is None:
        return symbol
    out = []
    for sym, ex in legs:
        inst = instrument_of(ex, sym)
        out.append(f"{sym}@{ex}" + (f" ({inst.quote})" if inst is not None else ""))
    return " vs ".join(out)


_LEG_HELP = (
    "a symbol such as 'BTCUSDT', or a venue symbol with its exchange label such as "
    "'BTC-USD@coinbase' or 'BTC/USD@kraken'"
)


def _check_legs(r: Rule) -> None:
    """One leg (``BTCUSDT``, ``BTC-USD@coinbase``) or, for pair metrics, two (``Y/X``, each
    leg labelled or neither)."""
    legs = symbol_legs(r.symbol)
    if r.metric in PAIR_METRICS:
        if legs is None or len(legs) != 2 or legs[0] == legs[1]:
            raise RuleError(
                "symbol", r.symbol, f"{r.metric} needs a pair 'Y/X' such as 'ETHUSDT/BTCUSDT' "
                "or 'ETH-USD@coinbase/BTC-USD@coinbase'",
            )  # fmt: skip
        return
    if legs is None or len(legs) != 1:
        raise RuleError("symbol", r.symbol, f"{r.metric} takes one symbol: {_LEG_HELP}")
    if legs[0][1] is not None and r.metric in EVENT_METRICS:
        raise RuleError(
            "symbol", r.symbol, f"{r.metric} takes the plain symbol (no '@exchange'), "
            f"e.g. {legs[0][0]}",
        )  # fmt: skip


def _check_one_asset(symbol: str, legs: tuple[tuple[str, str], tuple[str, str]]) -> None:
    """Both venue legs name one asset (quotes may differ: USD vs USDT is shown, not hidden)."""
    from lq.analytics.crossvenue import instrument_of

    insts = [instrument_of(ex, sym) for sym, ex in legs]
    for (sym, ex), inst in zip(legs, insts, strict=True):
        if inst is None:
            raise RuleError(
                "symbol", symbol, f"{sym}@{ex} is not a spot BASE/QUOTE instrument lq can "
                "compare (e.g. BTC-USD@coinbase, BTCUSDT@binance)",
            )  # fmt: skip
    a, b = insts
    assert a is not None and b is not None
    if a.base != b.base:
        raise RuleError(
            "symbol", symbol, f"the legs are different assets ({a.base} on {a.venue}, {b.base} "
            f"on {b.venue}): dislocation compares one asset on two venues, e.g. "
            f"'{a.base}-USD@coinbase/{a.base}USDT@binance'",
        )  # fmt: skip


def _validate(r: Rule) -> None:
    if not isinstance(r.name, str) or not _NAME.match(r.name) or r.name != r.name.strip():
        raise RuleError(
            "name", r.name, "1-80 letters, digits, spaces or _ . - : (no leading/trailing space)"
        )
    if r.metric not in METRICS:
        raise RuleError("metric", r.metric, f"unknown metric; expected one of {list(METRICS)}")
    if r.condition not in CONDITIONS:
        raise RuleError("condition", r.condition, f"expected one of {list(CONDITIONS)}")
    if r.metric in VENUE_METRICS:
        legs = venue_legs(r.symbol)
        if legs is None or legs[0] == legs[1]:
            raise RuleError(
                "symbol", r.symbol, f"{r.metric} needs two venues 'SYMBOL@exchange/SYMBOL@exchange' "
                "such as 'BTC-USD@coinbase/BTCUSDT@binance' (the second is the reference)"
            )  # fmt: skip
        _check_one_asset(r.symbol, legs)
    else:
        _check_legs(r)
    # levels
    if r.condition == "outside":
        if r.band is None:
            raise RuleError("band", None, "condition 'outside' needs band=(low, high)")
        lo, hi = (_finite("band", v) for v in r.band)
        if not lo < hi:
            raise RuleError("band", r.band, "low must be < high")
        _check_band(r.metric, (lo, hi), None)
        if r.threshold is not None:
            raise RuleError("threshold", r.threshold, "use band=(low, high) with 'outside'")
        if r.rearm is not None:
            raise RuleError("rearm", r.rearm, "use rearm_band=(low, high) with 'outside'")
        if r.rearm_band is not None:
            rlo, rhi = (_finite("rearm_band", v) for v in r.rearm_band)
            if not (lo <= rlo < rhi <= hi):
                raise RuleError("rearm_band", r.rearm_band, f"must lie inside band {r.band}")
    else:
        if r.threshold is None:
            raise RuleError("threshold", None, f"condition {r.condition!r} needs a threshold")
        t = _finite("threshold", r.threshold)
        _check_level(r.metric, "threshold", t, r.condition)
        if r.band is not None:
            raise RuleError("band", r.band, "band is only for condition 'outside'")
        if r.rearm_band is not None:
            raise RuleError("rearm_band", r.rearm_band, "only for condition 'outside'")
        if r.rearm is not None:
            a = _finite("rearm", r.rearm)
            _check_level(r.metric, "rearm", a)
            if r.condition in ("above", "crosses_above") and a > t:
                raise RuleError("rearm", a, f"must be <= threshold {t:g} for {r.condition}")
            if r.condition in ("below", "crosses_below") and a < t:
                raise RuleError("rearm", a, f"must be >= threshold {t:g} for {r.condition}")
    # windows and clocks
    if isinstance(r.window, bool) or not isinstance(r.window, int):
        raise RuleError("window", r.window, "expected an integer number of samples")
    min_w = 100 if (r.metric == "volatility" and r.vol_method == "garch") else 2
    if not min_w <= r.window <= MAX_WINDOW:
        raise RuleError("window", r.window, f"must be between {min_w} and {MAX_WINDOW:,} samples")
    if r.lookback is not None and (
        isinstance(r.lookback, bool)
        or not isinstance(r.lookback, int)
        or not 1 <= r.lookback <= MAX_WINDOW
    ):
        raise RuleError("lookback", r.lookback, f"must be an integer in 1..{MAX_WINDOW:,}")
    s = _finite("sample", r.sample)
    if s < 0 or (s != 0 and (s < 1 or s != int(s))) or s > 86_400:
        raise RuleError("sample", r.sample, "seconds: 0 (every trade) or a whole number 1..86400")
    if s == 0 and r.metric == "volatility":
        raise RuleError("sample", r.sample, "volatility needs a time clock (sample >= 1 s)")
    if s == 0 and r.metric in VENUE_METRICS:
        raise RuleError(
            "sample", r.sample, f"{r.metric} compares venues on a time clock (sample >= 1 s)"
        )
    if isinstance(r.refit, bool) or not isinstance(r.refit, int) or r.refit < 1:
        raise RuleError("refit", r.refit, "must be a positive integer number of samples")
    c = _finite("cooldown", r.cooldown)
    if c < 0:
        raise RuleError("cooldown", r.cooldown, "must be >= 0 seconds")
    if r.severity not in SEVERITIES:
        raise RuleError("severity", r.severity, f"expected one of {list(SEVERITIES)}")
    if not r.channels:
        raise RuleError("channels", r.channels, "at least one channel (e.g. 'dashboard')")
    if len(set(r.channels)) != len(r.channels):
        raise RuleError("channels", r.channels, "duplicate channel")
    for ch in r.channels:
        if ch not in CHANNELS:
            raise RuleError("channels", ch, f"unknown channel; expected one of {list(CHANNELS)}")
    if r.metric == "forecast":
        if not isinstance(r.model, str) or not r.model.strip():
            raise RuleError("model", r.model, "a forecast rule needs model=<a deployed model name>")
        if r.output not in ("prediction", "edge"):
            raise RuleError("output", r.output, "expected 'prediction' or 'edge'")
    elif r.model is not None:
        raise RuleError("model", r.model, "only forecast rules take a model")
    if r.metric == "unfilled_gap" and r.condition not in ("above",):
        raise RuleError("condition", r.condition, "unfilled_gap supports 'above' only")


def validate_symbols(rule: Rule, known: set[str] | frozenset[str] | None) -> None:
    """Refuse a rule whose symbols are not collected (``known`` None or empty: no check)."""
    if not known:
        return
    legs = symbol_legs(rule.symbol)
    for s, ex in legs if legs is not None else [(x, None) for x in rule.symbols]:
        if ex is not None and _venue_symbol_ok(rule, s, ex):
            continue  # a venue's own symbol under its label: checked by the venue's rule
        if s not in known:
            raise RuleError("symbol", rule.symbol, f"{s} is not collected; known: {sorted(known)}")


def _venue_symbol_ok(rule: Rule, symbol: str, label: str) -> bool:
    """True if ``label`` is a venue's (``coinbase``, ``local-coinbase``) and ``symbol`` is
    spelt by that venue's naming rule; RuleError naming the venue's form if it is not."""
    from lq.errors import ValidationError
    from lq.venues.registry import get_venue, venue_names

    name = label.removeprefix("local-")
    if name not in venue_names():
        return False
    try:
        good = get_venue(name).normalize_symbols([symbol])
    except ValidationError as exc:
        raise RuleError("symbol", rule.symbol, exc.reason) from None
    if good != [symbol]:
        raise RuleError("symbol", rule.symbol, f"{name} spells it {good[0]}: use {good[0]}@{label}")
    return True


_FIELDS = tuple(Rule.__struct_fields__)
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT = re.compile(r"at `\$\.(\w+)")


def rule_from_dict(data: dict[str, Any]) -> Rule:
    """Build a rule from plain data (JSON, CLI, widgets); every refusal is a RuleError."""
    if not isinstance(data, dict):
        raise RuleError("rule", data, "expected a mapping of field names to values")
    data = dict(data)
    if isinstance(data.get("symbol"), str):
        sym = data["symbol"].strip().replace(" ", "")
        data["symbol"] = _normalise_venue_pair(sym) if "@" in sym else sym.upper()
    for k in ("band", "rearm_band", "channels"):
        if isinstance(data.get(k), list):
            data[k] = tuple(data[k])
    for k in data:
        if k not in _FIELDS:
            raise RuleError(k, data[k], f"unknown field; expected one of {list(_FIELDS)}")
    try:
        return msgspec.convert(data, Rule, strict=False)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, RuleError):
            raise cause from None
        msg = str(exc)
        m = _UNKNOWN.search(msg) or _AT.search(msg)
        field = m.group(1) if m else "rule"
        if field in _CHOICES and "Invalid enum value" in msg:
            what = "channel" if field == "channels" else field.replace("_", " ")
            raise RuleError(
                field, data.get(field), f"unknown {what}; expected one of {list(_CHOICES[field])}"
            ) from None
        if "Object missing required field" in msg:
            missing = msg.split("`")[1] if "`" in msg else "?"
            raise RuleError(missing, None, "required field is missing") from None
        raise RuleError(field, data.get(field), msg) from None


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """Plain data (tuples become lists), every field present."""
    out = msgspec.to_builtins(rule)
    for k in ("band", "rearm_band", "channels"):
        if out.get(k) is not None:
            out[k] = list(out[k])
    return out


def rule_to_json(rule: Rule) -> str:
    """Canonical JSON (sorted keys, every field): stored in ``alert_rules.spec``."""
    return msgspec.json.encode(rule, order="sorted").decode()


def rule_from_json(text: str | bytes) -> Rule:
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise RuleError("spec", text, f"not valid JSON: {exc}") from None
    return rule_from_dict(data)
