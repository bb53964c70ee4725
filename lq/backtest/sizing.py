"""Position sizing: fixed notional, or a volatility target estimated from past bars only.

A strategy says *which way and how much relative to one unit* (target weights, e.g. ``+1``,
or ``+0.5 / -0.5`` for the two legs of a pair). Sizing turns weights into quantities when a
position is opened: ``quantity_i = weight_i * notional / close_i`` at the signal bar, and the
quantities are then held unchanged until the target weights change (no daily rebalancing, so
no hidden turnover).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from lq.backtest._config import Config, check_choice, check_number
from lq.errors import ValidationError

__all__ = ["Sizing", "SizingMethod", "position_notional"]

SizingMethod = Literal["fixed_notional", "volatility_target"]
_METHODS: tuple[str, ...] = ("fixed_notional", "volatility_target")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sizing(Config):
    """How much to trade when a strategy opens or changes a position.

    Parameters
    ----------
    method
        ``"fixed_notional"``: every position is ``notional`` (quote currency) per unit of
        weight. ``"volatility_target"``: the notional is chosen so that the position's
        annualised volatility, estimated on the last ``vol_lookback`` bars *up to and including
        the signal bar*, equals ``target_volatility`` times the initial capital, capped at
        ``max_leverage`` times the initial capital. Until ``vol_lookback`` returns exist the
        notional is 0 (no trade: the size cannot be known honestly).
    notional
        Quote-currency notional per unit weight for ``"fixed_notional"``.
    target_volatility
        Annualised volatility target as a fraction (0.2 = 20 %), for ``"volatility_target"``.
    vol_lookback
        Number of past bar returns in the volatility estimate.
    max_leverage
        Cap on notional / initial capital for ``"volatility_target"``.
    """

    method: SizingMethod = "fixed_notional"
    notional: float = 10_000.0
    target_volatility: float = 0.2
    vol_lookback: int = 100
    max_leverage: float = 2.0

    def _validate(self) -> None:
        check_choice("Sizing", "method", self.method, _METHODS)
        check_number("Sizing", "notional", self.notional, minimum=0.0, exclusive=True)
        check_number(
            "Sizing", "target_volatility", self.target_volatility, minimum=0.0, exclusive=True
        )
        check_number("Sizing", "max_leverage", self.max_leverage, minimum=0.0, exclusive=True)
        if (
            isinstance(self.vol_lookback, bool)
            or not isinstance(self.vol_lookback, int)
            or self.vol_lookback < 2
        ):
            raise ValidationError("Sizing.vol_lookback", self.vol_lookback, "must be an int >= 2")


def _rolling_portfolio_var(
    returns: np.ndarray, weights: np.ndarray, lookback: int, rows: np.ndarray
) -> np.ndarray:
    """Sample variance (ddof=1) of ``returns[t-L+1..t] @ weights[t]`` for each ``t`` in ``rows``.

    NaN where the window is incomplete or holds a missing return. Computed directly on the
    gathered windows (in blocks, to bound memory), so it is exact, not a running-sum update.
    """
    out = np.full(rows.shape[0], np.nan)
    lag = np.arange(lookback - 1, -1, -1)
    block = max(1, 2_000_000 // max(1, lookback * returns.shape[1]))
    for lo in range(0, rows.shape[0], block):
        r_rows = rows[lo : lo + block]
        ok = r_rows - (lookback - 1) >= 0
        if not ok.any():
            continue
        sel = r_rows[ok]
        win = returns[sel[:, None] - lag[None, :]]  # (m, L, k)
        port = np.einsum("mlk,mk->ml", win, weights[sel])
        var = port.var(axis=1, ddof=1)
        res = np.full(r_rows.shape[0], np.nan)
        res[ok] = var
        out[lo : lo + block] = res
    return out


def position_notional(
    sizing: Sizing,
    *,
    close: np.ndarray,
    weights: np.ndarray,
    rows: np.ndarray,
    capital: float,
    periods_per_year: float,
) -> np.ndarray:
    """Notional per unit weight for positions opened at signal bars ``rows``.

    Parameters
    ----------
    sizing
        The sizing rule.
    close
        ``(n, k)`` close prices.
    weights
        ``(n, k)`` target weights.
    rows
        Signal-bar indices where positions are (re)opened.
    capital
        Initial capital in quote currency.
    periods_per_year
        Bars per 365-day year, to annualise the volatility.

    Returns
    -------
    numpy.ndarray
        Notional for each of ``rows`` (0 where a volatility estimate is not yet available).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if sizing.method == "fixed_notional":
        return np.full(rows.shape[0], float(sizing.notional))
    returns = np.full_like(close, np.nan, dtype=float)
    returns[1:] = close[1:] / close[:-1] - 1.0
    var = _rolling_portfolio_var(returns, weights, sizing.vol_lookback, rows)
    vol = np.sqrt(var * periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        lev = np.where(vol > 0, sizing.target_volatility / vol, np.inf)
    lev = np.minimum(lev, sizing.max_leverage)
    lev = np.where(np.isfinite(var), lev, 0.0)
    return np.asarray(capital * lev, dtype=float)
