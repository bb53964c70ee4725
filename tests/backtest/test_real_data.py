"""The BTCUSDT/ETHUSDT pair on the real recordings, with the recorded spread as slippage."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lq.backtest import Costs, check_lookahead, run_backtest


def second_bars(path: Path) -> pd.DataFrame:
    """1-second bars of trade prices plus the last bid/ask of each second (receive clock)."""
    trades, quotes = [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            head, _, raw = line.partition(" ")
            msg = json.loads(raw)
            stream = msg.get("stream", "")
            if stream.endswith("@trade"):
                trades.append((int(head), float(msg["data"]["p"]), float(msg["data"]["q"])))
            elif stream.endswith("@bookTicker"):
                quotes.append((int(head), float(msg["data"]["b"]), float(msg["data"]["a"])))
    t = pd.DataFrame(trades, columns=["ns", "price", "qty"])
    q = pd.DataFrame(quotes, columns=["ns", "bid", "ask"])
    t["sec"] = pd.to_datetime(t["ns"] // 10**9, unit="s", utc=True)
    q["sec"] = pd.to_datetime(q["ns"] // 10**9, unit="s", utc=True)
    g = t.groupby("sec")["price"]
    bars = pd.DataFrame(
        {
            "open": g.first(),
            "high": g.max(),
            "low": g.min(),
            "close": g.last(),
            "volume": t.groupby("sec")["qty"].sum(),
        }
    )
    idx = pd.date_range(bars.index[0], bars.index[-1], freq="1s")
    bars = bars.reindex(idx)
    bars["close"] = bars["close"].ffill()
    for col in ("open", "high", "low"):
        bars[col] = bars[col].fillna(bars["close"].shift(1)).fillna(bars["close"])
    bars["volume"] = bars["volume"].fillna(0.0)
    last_quote = q.groupby("sec")[["bid", "ask"]].last().reindex(idx).ffill()
    return bars.join(last_quote)


@pytest.fixture(scope="module")
def pair() -> dict[str, pd.DataFrame]:
    from ._data import DATA

    if not (DATA / "spot_btcusdt_20240808.gz").exists():
        pytest.skip(f"real recordings not found at {DATA} (the shared/ folder beside the repo)")
    eth = second_bars(DATA / "spot_ethusdt_20240808.gz")
    btc = second_bars(DATA / "spot_btcusdt_20240808.gz")
    return {"ETHUSDT": eth, "BTCUSDT": btc}


PARAMS = {"lookback": 30, "entry": 1.5, "exit": 0.25, "stop": 4.0, "hedge_lookback": 60}


def test_pair_backtest_fills_at_half_the_recorded_spread(pair):
    res = run_backtest(
        pair,
        "pairs_zscore",
        PARAMS,
        costs=Costs(fee_bps=7.5, slippage="half_spread"),
        at_end="close",
    )
    assert res.metrics.bars > 300 and res.metrics.number_of_trades >= 3
    # independent check of every entry and exit price: the bar's open moved by half of the
    # spread standing then, the last recorded quote of the previous second (relative to
    # mid); tolerance 1e-12 relative
    aligned = {s: f.loc[res.equity.index] for s, f in pair.items()}
    for tr in res.trades.itertuples():
        for sym, f in aligned.items():
            qty = getattr(tr, f"qty_{sym}")
            for when, price, sign in (
                (tr.entry_time, getattr(tr, f"entry_price_{sym}"), 1),
                (tr.exit_time, getattr(tr, f"exit_price_{sym}"), -1),
            ):
                bar = f.loc[when]
                quote = f.iloc[f.index.get_loc(when) - 1]
                half = (quote["ask"] - quote["bid"]) / (quote["ask"] + quote["bid"])
                want = bar["open"] * (1 + np.sign(qty) * sign * half)
                assert price == pytest.approx(want, rel=1e-12)
    # trades add up to the account's PnL once flat (tolerance 1e-8 on a 1e4 account)
    assert res.trades["pnl"].sum() == pytest.approx(res.equity.iloc[-1] - 10_000, abs=1e-8)
    # fees: 7.5 bps of the traded notional
    assert res.metrics.fees_paid == pytest.approx(res.traded_notional.sum() * 7.5e-4, rel=1e-12)


def test_pair_strategy_passes_the_lookahead_check_on_real_data(pair):
    report = check_lookahead(
        pair, "pairs_zscore", PARAMS, cuts=3, costs=Costs(fee_bps=7.5, slippage="half_spread")
    )
    assert report.passed, report.details
