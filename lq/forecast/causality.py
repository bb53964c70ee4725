"""The causality check: a feature (or a whole forecasting pipeline) may use the past only.

It is the look-ahead check of :func:`lq.backtest.check_lookahead`, applied to any function
of bars: compute ``fn(bars)``, then recompute it on copies whose bars after a cut follow a
different random future (prices by :mod:`lq.backtest.validation`'s perturbation, and every
other numeric column, such as taker volumes, trade counts and quote sizes, permuted and
rescaled). A causal function gives the same rows up to the cut (to the same 1e-9 relative
tolerance); any change at or before the cut means it read the future, and the report names
the columns that did.

This catches what most published notebooks get wrong: a centred rolling window, a feature
built from a future return, a scaler or a model fitted on all rows before splitting.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lq.backtest.validation import _PRICE_COLUMNS, _perturb_after, _same
from lq.errors import ValidationError
from lq.forecast._common import bar_times_us

__all__ = ["CausalityReport", "check_causality", "perturb_after"]

logger = logging.getLogger(__name__)

_SKIP = {"ts", "first_id", "last_id", "volume", *_PRICE_COLUMNS}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CausalityReport:
    """Outcome of :func:`check_causality`.

    Attributes
    ----------
    passed
        True when no output row at or before any cut changed.
    cuts
        The cut times checked (the last bar that was *not* perturbed).
    first_difference
        Earliest bar whose output changed, or None.
    leaky
        Output columns that changed at or before a cut (their names), sorted.
    details
        One row per cut: ``cut``, ``equal``, ``first_difference``, ``columns``.
    """

    passed: bool
    cuts: tuple[pd.Timestamp, ...]
    first_difference: pd.Timestamp | None
    leaky: tuple[str, ...]
    details: pd.DataFrame

    def __bool__(self) -> bool:
        return self.passed


def perturb_after(bars: pd.DataFrame, cut: int, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``bars`` whose rows after position ``cut`` are a different random future.

    Prices (open/high/low/close/bid/ask/vwap...) and volume move as in the backtests'
    look-ahead check; every other numeric column is permuted and rescaled after the cut.
    """
    out = _perturb_after({"x": bars}, cut, rng)["x"]
    n = len(out)
    if cut + 1 >= n:
        return out
    for col in out.columns:
        if col in _SKIP or not pd.api.types.is_numeric_dtype(out[col]):
            continue
        v = out[col].to_numpy(copy=True)
        tail = rng.permutation(v[cut + 1 :])
        if np.issubdtype(v.dtype, np.floating):
            tail = tail * rng.uniform(0.5, 2.0)
        else:
            tail = tail + rng.integers(1, 5, size=tail.size).astype(v.dtype)
        v[cut + 1 :] = tail
        out[col] = v
    return out


def _as_matrix(out: Any, n: int) -> tuple[np.ndarray, list[str]]:
    if isinstance(out, pd.DataFrame):
        return out.to_numpy(dtype=np.float64, na_value=np.nan), [str(c) for c in out.columns]
    if isinstance(out, pd.Series):
        return out.to_numpy(dtype=np.float64, na_value=np.nan)[:, None], [str(out.name)]
    a = np.asarray(out, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.shape[0] != n:
        raise ValidationError("fn", a.shape, f"must return one row per bar ({n})")
    return a, [str(i) for i in range(a.shape[1])]


def check_causality(
    fn: Callable[..., Any],
    bars: pd.DataFrame,
    *,
    pair_bars: pd.DataFrame | None = None,
    cuts: int = 5,
    seed: int = 0,
) -> CausalityReport:
    """Check that every output row of ``fn`` depends on bars up to its own only.

    Parameters
    ----------
    fn
        ``fn(bars)`` (or ``fn(bars, pair_bars)`` when ``pair_bars`` is given) returning a
        DataFrame, Series or array with one row per bar, e.g. ``lambda b:
        build_features(b, spec).X`` or a whole walk-forward returning its predictions.
    bars, pair_bars
        The bars (and the other leg's bars, perturbed after the same time).
    cuts
        Cut points, spread evenly between 20 % and 90 % of the bars.
    seed
        Seed of the random futures.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=200, freq="1s", tz="UTC")
    >>> bars = pd.DataFrame({"open": 1.0, "close": np.linspace(1, 2, 200)}, index=idx)
    >>> bool(check_causality(lambda b: b["close"].rolling(5).mean(), bars))
    True
    >>> check_causality(lambda b: b["close"].rolling(5, center=True).mean(), bars).passed
    False
    """
    if isinstance(cuts, bool) or not isinstance(cuts, int) or cuts < 1:
        raise ValidationError("cuts", cuts, "must be an int >= 1")
    n = len(bars)
    if n < 10:
        raise ValidationError("bars", n, "need at least 10 bars to check causality")
    rng = np.random.default_rng(seed)
    ts = bar_times_us(bars)
    pts = bar_times_us(pair_bars) if pair_bars is not None else None

    def call(b: pd.DataFrame, p: pd.DataFrame | None) -> Any:
        return fn(b) if p is None else fn(b, p)

    base, names = _as_matrix(call(bars, pair_bars), n)
    positions = sorted({int(p) for p in np.linspace(0.2 * n, 0.9 * n, cuts)})
    index = bars.index
    rows = []
    first: pd.Timestamp | None = None
    leaky: set[str] = set()
    for c in positions:
        pb = perturb_after(bars, c, rng)
        pp = None
        if pair_bars is not None and pts is not None:
            pc = int(np.searchsorted(pts, ts[c], side="right")) - 1
            pp = (
                perturb_after(pair_bars, max(pc, -1), rng) if pc + 1 < len(pair_bars) else pair_bars
            )
        pert, _ = _as_matrix(call(pb, pp), n)
        if pert.shape != base.shape:
            raise ValidationError("fn", pert.shape, f"returned {base.shape} on the real bars")
        eq = np.isclose(base[: c + 1], pert[: c + 1], rtol=1e-9, atol=1e-12, equal_nan=True)
        same_rows = eq.all(axis=1) & _same(base[: c + 1], pert[: c + 1])
        bad = np.flatnonzero(~same_rows)
        diff = index[int(bad[0])] if bad.size else None
        cols = [names[j] for j in np.flatnonzero(~eq.all(axis=0))]
        leaky.update(cols)
        if diff is not None and (first is None or diff < first):
            first = diff
        rows.append(
            {"cut": index[c], "equal": not bad.size, "first_difference": diff, "columns": cols}
        )
    details = pd.DataFrame(rows)
    passed = bool(details["equal"].all())
    if not passed:
        logger.warning(
            "causality check failed: %s read the future (first at %s)", sorted(leaky), first
        )
    return CausalityReport(
        passed=passed,
        cuts=tuple(index[c] for c in positions),
        first_difference=first,
        leaky=tuple(sorted(leaky)),
        details=details,
    )
