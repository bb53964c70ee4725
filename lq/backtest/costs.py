"""Trading costs: fees in basis points of traded notional, and slippage.

Slippage moves every fill against the trader: a buy fills at ``open * (1 + s)``, a sell at
``open * (1 - s)``, where ``s`` is either a fixed number of basis points
(``slippage="fixed_bps"``) or half the recorded bid-ask spread relative to the mid price on the
fill (``slippage="half_spread"``: ``bid`` and ``ask`` columns, or a ``spread`` column in
price units, holding the quote at each bar's close; a fill at bar ``t``'s open pays half the
spread standing then, i.e. bar ``t - 1``'s closing quote).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd

from lq.backtest._config import Config, check_choice, check_number
from lq.errors import ValidationError

__all__ = ["Costs", "SlippageModel", "slippage_fraction"]

SlippageModel = Literal["fixed_bps", "half_spread"]
_SLIPPAGE_MODELS: tuple[str, ...] = ("fixed_bps", "half_spread")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Costs(Config):
    """Fees and slippage.

    Parameters
    ----------
    fee_bps
        Fee in basis points of the traded notional (``|quantity| * fill price``), charged on
        every fill. Binance spot taker is 10 bps (7.5 with BNB).
    slippage_bps
        Fixed slippage in basis points, used when ``slippage="fixed_bps"``.
    slippage
        ``"fixed_bps"`` or ``"half_spread"`` (half the recorded bid-ask spread standing at the
        fill, relative to the mid; ``slippage_bps`` must then be 0).
    """

    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    slippage: SlippageModel = "fixed_bps"

    def _validate(self) -> None:
        check_number("Costs", "fee_bps", self.fee_bps, minimum=0.0)
        check_number("Costs", "slippage_bps", self.slippage_bps, minimum=0.0)
        check_choice("Costs", "slippage", self.slippage, _SLIPPAGE_MODELS)
        if self.slippage == "half_spread" and self.slippage_bps != 0:
            raise ValidationError(
                "Costs.slippage_bps",
                self.slippage_bps,
                'must be 0 when slippage="half_spread" (the spread is the slippage)',
            )

    @property
    def fee_rate(self) -> float:
        """Fee as a fraction of notional."""
        return float(self.fee_bps) / 1e4


def _half_spread(bars: pd.DataFrame, symbol: str) -> np.ndarray:
    if "bid" in bars.columns and "ask" in bars.columns:
        bid = bars["bid"].to_numpy(dtype=float)
        ask = bars["ask"].to_numpy(dtype=float)
        mid = 0.5 * (bid + ask)
        return np.asarray(0.5 * (ask - bid) / mid, dtype=float)
    if "spread" in bars.columns:
        spread = bars["spread"].to_numpy(dtype=float)
        mid = bars["close"].to_numpy(dtype=float)
        return np.asarray(0.5 * spread / mid, dtype=float)
    raise ValidationError(
        f"data[{symbol!r}].columns",
        list(bars.columns),
        'slippage="half_spread" needs bid and ask columns, or a spread column (price units)',
    )


def slippage_fraction(costs: Costs, bars: pd.DataFrame, *, symbol: str = "data") -> np.ndarray:
    """Slippage per bar as a fraction of price, for fills at that bar's open.

    With ``"half_spread"``, the ``bid``/``ask`` (or ``spread``) columns are read as the quote
    standing at each bar's *close* (the last book ticker of the bar), so a fill at bar ``t``'s
    open pays half the spread of bar ``t - 1``: the quote in force at that instant, never a
    later one. A missing quote (NaN) repeats the last recorded one; before the first, 0.
    """
    n = len(bars)
    if costs.slippage == "fixed_bps":
        return np.full(n, float(costs.slippage_bps) / 1e4)
    half = _half_spread(bars, symbol)
    if np.any(half < 0):
        bad = float(half[np.nanargmin(half)])
        raise ValidationError(f"data[{symbol!r}].spread", bad, "bid-ask spread must be >= 0")
    known = pd.Series(half).ffill().fillna(0.0).to_numpy(dtype=float)
    # the quote standing at bar t's open is the last one of bar t - 1
    out = np.empty(n)
    out[1:] = known[:-1]
    out[:1] = known[:1]
    return out
