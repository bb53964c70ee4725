"""Live scoring: bars built from trades as they arrive, scored the moment they close.

:class:`LiveScorer` is pure (no I/O, no clock): it is fed trades (and, for book or pair
features, quotes and the other leg's trades) in exchange time. A bar closes when the first
trade of a later bar arrives; the closed bar goes through :class:`FeatureState` (the O(1)
twin of :func:`build_features`) and the model's one-row predictor, giving a
:class:`ForecastPoint`. When a forecast's horizon has passed, the scorer computes what
happened (the same target definition as :func:`make_target`), the model's and the
baseline's loss, and keeps a running out-of-sample score over the last ``window``
resolved forecasts: :attr:`LiveScorer.edge` (baseline loss minus model loss: positive
while the model beats its baseline).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from lq.forecast.features import FeatureState
from lq.forecast.points import MIN_RESOLVED, ForecastPoint, Resolved, point_loss
from lq.forecast.trained import TrainedModel

__all__ = ["MIN_RESOLVED", "ForecastPoint", "LiveScorer", "Resolved", "point_loss"]


class _Bar:
    __slots__ = ("buy", "close", "high", "low", "open", "sell", "trades", "ts", "volume")

    def __init__(self, ts: int, price: float) -> None:
        self.ts = ts
        self.open = self.high = self.low = self.close = price
        self.volume = self.buy = self.sell = 0.0
        self.trades = 0


class LiveScorer:
    """Scores one :class:`TrainedModel` on a live trade stream (see the module docstring).

    Parameters
    ----------
    model
        The trained model.
    window
        Resolved forecasts in the running score.
    """

    def __init__(self, model: TrainedModel, *, window: int = 500) -> None:
        self.model = model
        self.window = int(window)
        self.step = int(model.interval_us)
        self.kind = model.target.kind
        self.h_bars = model.target.horizon if isinstance(model.target.horizon, int) else None
        self.h_us = model.target.horizon_us
        self.state = FeatureState(model.features, model.params)
        self._predict = model.estimator.row_predictor()
        self._baseline = model.baseline_estimator.row_predictor()
        self._bar: _Bar | None = None
        self._quote = (math.nan, math.nan, math.nan, math.nan)  # bid, ask, bid_qty, ask_qty
        self._pair_last = math.nan  # the pair's last price before the open bar's end
        self._pair_pending: deque[tuple[int, float]] = deque()
        self._quote_pending: deque[tuple[int, tuple[float, float, float, float]]] = deque()
        self._k = 0  # bars closed
        self._hist: deque[tuple[int, int, float, float]] = deque()  # (k, ts, close, r^2)
        self._pending: deque[tuple[int, int, float, float, float]] = deque()
        self._scores: deque[tuple[float, float, float, float]] = deque(maxlen=self.window)
        self._sums = [0.0, 0.0, 0.0, 0.0]
        self.bars_closed = 0
        self.late_trades = 0
        self.resolved_total = 0

    # -- inputs ---------------------------------------------------------------------------
    def on_quote(self, ts: int, bid: float, bid_qty: float, ask: float, ask_qty: float) -> None:
        """A best bid/ask update. One stamped at or after the open bar's end is held back
        until that bar has closed (the bar's features use the quote standing at its end)."""
        q = (bid, ask, bid_qty, ask_qty)
        bar = self._bar
        if bar is None or ts < bar.ts + self.step:
            self._quote = q
        else:
            self._quote_pending.append((ts, q))

    def on_pair_trade(self, ts: int, price: float) -> None:
        """A trade of the pair's other leg (``spread_z``)."""
        bar = self._bar
        if bar is None or ts < bar.ts + self.step:
            self._pair_last = price
        else:  # belongs after the open bar: hold it back until that bar has closed
            self._pair_pending.append((ts, price))

    def on_trade(self, ts: int, price: float, qty: float, is_buyer_maker: bool) -> list[Any]:
        """A trade of the model's symbol; returns the points (forecasts and resolutions)
        produced by the bar it closes, if any."""
        b = ts // self.step * self.step
        bar = self._bar
        out: list[Any] = []
        if bar is not None and b != bar.ts:
            if b < bar.ts:
                self.late_trades += 1
                return out
            out = self._close()
        if self._bar is None:
            self._bar = bar = _Bar(b, price)
        else:
            bar = self._bar
        if price > bar.high:
            bar.high = price
        if price < bar.low:
            bar.low = price
        bar.close = price
        bar.volume += qty
        bar.trades += 1
        if is_buyer_maker:
            bar.sell += qty
        else:
            bar.buy += qty
        return out

    # -- bars -----------------------------------------------------------------------------
    def _close(self) -> list[Any]:
        bar = self._bar
        assert bar is not None
        self._bar = None
        end = bar.ts + self.step
        while self._pair_pending and self._pair_pending[0][0] < end:
            self._pair_last = self._pair_pending.popleft()[1]
        while self._quote_pending and self._quote_pending[0][0] < end:
            self._quote = self._quote_pending.popleft()[1]
        bid, ask, bq, aq = self._quote
        out = self.close_bar(
            bar.ts,
            bar.close,
            trades=float(bar.trades),
            buy_volume=bar.buy,
            sell_volume=bar.sell,
            bid=bid,
            ask=ask,
            bid_qty=bq,
            ask_qty=aq,
            pair_close=self._pair_last,
        )
        while self._pair_pending:  # the rest belong to later bars
            self._pair_last = self._pair_pending.popleft()[1]
        while self._quote_pending:
            self._quote = self._quote_pending.popleft()[1]
        return out

    def close_bar(self, ts: int, close: float, *, emit: bool = True, **inputs: float) -> list[Any]:
        """Score one closed bar (open time ``ts``); returns ``[Resolved..., ForecastPoint]``."""
        row = self.state.update(close, **inputs)
        self.bars_closed += 1
        k = self._k
        self._k += 1
        prev = self._hist[-1][2] if self._hist else math.nan
        r2 = math.log(close / prev) ** 2 if prev == prev else 0.0
        self._hist.append((k, ts, close, r2))
        resolved = self._resolve(k, ts)
        out: list[Any] = resolved if emit else []
        ok = bool(np.isfinite(row).all())
        f = self._predict(row) if ok else math.nan
        b = self._baseline(row) if ok else math.nan
        if ok:
            self._pending.append((k, ts, close, f, b))
        self._trim()
        if emit:
            out.append(
                ForecastPoint(
                    self.model.name,
                    self.model.symbol,
                    ts,
                    ts + self.step,
                    f,
                    b,
                    self.edge,
                    len(self._scores),
                )
            )
        return out

    def _trim(self) -> None:
        hist = self._hist
        oldest = self._pending[0][0] if self._pending else hist[-1][0]
        while len(hist) > 1 and hist[0][0] < oldest:
            hist.popleft()

    def _realised(self, i_ts: int, i_close: float, end_close: float, sq: float) -> float:
        if self.kind == "return":
            return math.log(end_close / i_close)
        if self.kind == "sign":
            r = math.log(end_close / i_close)
            if r > 0:
                return 1.0
            if r < 0:
                return 0.0
            return math.nan if self.model.target.zero == "drop" else 0.0
        return math.sqrt(max(sq, 0.0))

    def _resolve(self, k: int, ts: int) -> list[Any]:
        out: list[Any] = []
        pend = self._pending
        while pend:
            i, i_ts, i_close, f, b = pend[0]
            if self.h_bars is not None:
                if k < i + self.h_bars:
                    break
                end_k = i + self.h_bars
            else:
                assert self.h_us is not None
                if ts < i_ts + self.h_us:
                    break
                end_k = k if ts == i_ts + self.h_us else k - 1
            pend.popleft()
            sq = 0.0
            end_close = i_close
            for hk, _hts, hc, hr2 in self._hist:
                if i < hk <= end_k:
                    sq += hr2
                if hk == end_k:
                    end_close = hc
            y = self._realised(i_ts, i_close, end_close, sq)
            if y != y:
                continue
            lm = point_loss(self.kind, y, f)
            lb = point_loss(self.kind, y, b)
            if self.kind == "sign":
                hm = float((f > 0.5) == (y > 0.5))
                hb = float((b > 0.5) == (y > 0.5))
            elif self.kind == "return":
                hm = float(math.copysign(1, f) == math.copysign(1, y)) if f and y else math.nan
                hb = math.nan
            else:
                hm = hb = math.nan
            self._score(lm, lb, hm, hb)
            out.append(Resolved(self.model.name, i_ts, y, lm, lb, hm, hb))
        return out

    def _score(self, lm: float, lb: float, hm: float, hb: float) -> None:
        s = self._scores
        if len(s) == s.maxlen:
            o = s[0]
            for j in range(4):
                if o[j] == o[j]:
                    self._sums[j] -= o[j]
        s.append((lm, lb, hm, hb))
        for j, v in enumerate((lm, lb, hm, hb)):
            if v == v:
                self._sums[j] += v
        self.resolved_total += 1
        if self.resolved_total % 4096 == 0:  # re-sum exactly now and then (no drift)
            self._sums = [math.fsum(t[j] for t in s if t[j] == t[j]) for j in range(4)]

    # -- running score --------------------------------------------------------------------
    @property
    def n_resolved(self) -> int:
        """Resolved forecasts in the running window."""
        return len(self._scores)

    @property
    def edge(self) -> float:
        """Mean baseline loss minus mean model loss over the window (> 0: model better)."""
        n = len(self._scores)
        return (self._sums[1] - self._sums[0]) / n if n else math.nan

    def live_score(self) -> dict[str, float]:
        """The running out-of-sample score: losses, hit rates and the edge."""
        n = len(self._scores)
        if not n:
            return {"n": 0.0, "loss": math.nan, "baseline_loss": math.nan, "edge": math.nan}
        hits = [t for t in self._scores if t[2] == t[2]]
        return {
            "n": float(n),
            "loss": self._sums[0] / n,
            "baseline_loss": self._sums[1] / n,
            "edge": self.edge,
            "hit_rate": math.fsum(t[2] for t in hits) / len(hits) if hits else math.nan,
        }

    # -- warm-up --------------------------------------------------------------------------
    def warm_up(self, bars: pd.DataFrame, pair_bars: pd.DataFrame | None = None) -> int:
        """Feed stored bars (oldest first) through the features and the running score, as
        if they had closed live, without emitting points; returns the bars used."""
        from lq.forecast._common import bar_times_us
        from lq.forecast.features import align_pair

        if bars.empty:
            return 0
        ts = bar_times_us(bars)
        cols = {
            c: bars[c].to_numpy(dtype=np.float64)
            for c in self.model.features.columns
            if c in bars.columns
        }
        px = align_pair(bars, pair_bars) if pair_bars is not None else None
        close = cols["close"]
        names = [c for c in cols if c != "close"]
        for i in range(ts.size):
            kw = {c: float(cols[c][i]) for c in names}
            if px is not None:
                kw["pair_close"] = float(px[i])
            self.close_bar(int(ts[i]), float(close[i]), emit=False, **kw)
        if pair_bars is not None and len(pair_bars):
            self._pair_last = float(pair_bars["close"].iloc[-1])
        return int(ts.size)
