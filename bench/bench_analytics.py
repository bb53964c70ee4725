"""Benchmark of lq.analytics: each figure, its baseline from the same run, the ratio, the target.

Run: ``.venv/bin/python bench/bench_analytics.py``. Times are the best of several repeats
(the machine is shared); ratio = baseline time / our time (> 1 means faster than baseline).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import statsmodels.api as sm
from arch import arch_model
from statsmodels.regression.rolling import RollingOLS
from statsmodels.tsa.stattools import adfuller

import lq.analytics as A
from lq.analytics import streaming as S


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def row(
    name: str,
    ours: float,
    unit: str,
    base: float,
    base_name: str,
    target: str,
    ok: bool | None = None,
) -> None:
    verdict = "" if ok is None else (" OK" if ok else " MISSED")
    print(
        f"{name:<44} {ours:>10.2f} {unit:<3} | {base_name:<34} {base:>10.2f} {unit:<3}"
        f" | ratio {base / ours:>8.1f}x | target {target}{verdict}"
    )


def prices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.round(60_000 * np.exp(np.cumsum(1e-4 * rng.standard_normal(n))), 2)
    y = np.round(3_000 * np.exp(1.2 * np.log(x / 60_000) + 2e-4 * rng.standard_normal(n)), 2)
    return y, x


def bench_streaming() -> None:
    n, window = 20_000, 300
    y, x = prices(n, 0)
    ly, lx = y.tolist(), x.tolist()

    def run() -> None:
        a, b = S.SymbolIndicators(window=window), S.SymbolIndicators(window=window)
        p = S.PairIndicators(window=window)
        for i in range(n):
            a.update(ly[i])
            b.update(lx[i])
            p.update(ly[i], lx[i])

    per_step = best(run, 3) / n * 1e6

    def run_sym() -> None:
        a = S.SymbolIndicators(window=window)
        for v in ly:
            a.update(v)

    def run_pair() -> None:
        p = S.PairIndicators(window=window)
        for i in range(n):
            p.update(ly[i], lx[i])

    per_sym = best(run_sym, 3) / n * 1e6
    per_pair = best(run_pair, 3) / n * 1e6

    # baseline: recompute the same set with pandas over the trailing buffer on each tick
    buf = 2 * window
    sy, sx = pd.Series(y), pd.Series(x)

    def pandas_tick(i: int) -> None:
        for s in (sy.iloc[i - buf : i], sx.iloc[i - buf : i]):
            s.ewm(span=20, adjust=False).mean().iloc[-1]
            d = s.diff()
            g = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean().iloc[-1]
            lo = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean().iloc[-1]
            _ = 100 * g / (g + lo)
            r = s.rolling(window)
            m, sd = r.mean().iloc[-1], r.std().iloc[-1]
            _ = (s.iloc[-1] - m) / sd
        ay, ax = np.log(sy.iloc[i - buf : i]), np.log(sx.iloc[i - buf : i])
        _ = ay.rolling(window).cov(ax).iloc[-1] / ax.rolling(window).var().iloc[-1]
        _ = ay.rolling(window).corr(ax).iloc[-1]

    ticks = range(buf, buf + 200)
    base = best(lambda: [pandas_tick(i) for i in ticks], 2) / len(ticks) * 1e6
    row(
        "streaming set, 2 symbols + pair, per bar",
        per_step,
        "µs",
        base,
        "pandas recompute per bar",
        "<= 10 µs",
    )
    row(
        "streaming, one symbol's tick + pair",
        per_sym + per_pair,
        "µs",
        base,
        "pandas recompute per bar",
        "<= 10 µs",
    )
    row(
        "  of which one symbol (EMA, RSI, mean/std/z)",
        per_sym,
        "µs",
        base,
        "pandas recompute per bar",
        "-",
    )
    row(
        "  of which the pair (OLS, corr, Kalman, z)",
        per_pair,
        "µs",
        base,
        "pandas recompute per bar",
        "-",
    )


def bench_rolling_ols() -> None:
    n, w = 1_000_000, 500
    y, x = prices(n, 1)
    ours = best(lambda: A.rolling_hedge_ratio(y, x, w), 5) * 1e3
    base = best(lambda: RollingOLS(y, sm.add_constant(x), window=w).fit(params_only=True), 1) * 1e3
    row(
        "rolling OLS hedge ratio, w=500, 1M bars",
        ours,
        "ms",
        base,
        "statsmodels RollingOLS",
        "<= 100 ms",
    )


def bench_dashboard() -> None:
    n = 86_400
    y, x = prices(n, 2)
    t0 = 1_723_161_600 * 1_000_000
    idx = A.bars._time_index(t0 + np.arange(n, dtype=np.int64) * 1_000_000)
    ba, bb = pd.Series(y, index=idx), pd.Series(x, index=idx)
    ours = best(lambda: A.dashboard_snapshot(ba, bb), 5) * 1e3

    def naive() -> None:  # the same set with direct pandas/statsmodels calls, no policies
        for s in (ba, bb):
            r = np.log(s).diff()
            s.rolling(300).mean()
            s.ewm(span=60, adjust=False).mean()
            s.rolling(300).std(ddof=0)
            d = s.diff()
            d.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
            (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
            (s - s.rolling(300).mean()) / s.rolling(300).std()
            for w in (60, 300, 3600):
                np.sqrt((r**2).rolling(w).mean() * 31_536_000)
            np.sqrt((r**2).ewm(alpha=0.06, adjust=False).mean() * 31_536_000)
        df = pd.concat({"a": ba, "b": bb}, axis=1).ffill().dropna()
        la, lb = np.log(df["a"]), np.log(df["b"])
        fit = sm.OLS(la.to_numpy(), sm.add_constant(lb.to_numpy())).fit()
        spr = la - fit.params[0] - fit.params[1] * lb
        (spr - spr.rolling(300).mean()) / spr.rolling(300).std()
        adfuller(spr.to_numpy(), maxlag=1, autolag=None, result_object=False)
        sm.OLS(np.diff(spr.to_numpy()), sm.add_constant(spr.to_numpy()[:-1])).fit()
        la.diff().rolling(300).corr(lb.diff())

    base = best(naive, 3) * 1e3
    row(
        "dashboard_snapshot, 2 x 86,400 1 s bars",
        ours,
        "ms",
        base,
        "same set, direct pandas/statsmodels",
        "<= 200 ms",
    )


def bench_garch() -> None:
    rng = np.random.default_rng(3)
    am = arch_model(None, vol="GARCH", p=1, q=1)
    from arch.univariate import Normal

    am.distribution = Normal(seed=rng)
    r = am.simulate([0.0, 0.05, 0.08, 0.9], 2000)["data"].to_numpy() * 1e-4
    ours = best(lambda: A.garch_forecast(r, horizon=10), 5) * 1e3

    scaled = r * 1e4  # what garch_forecast hands to arch: the wrapper's cost is the difference

    def raw() -> None:
        res = arch_model(scaled, vol="GARCH", p=1, q=1, rescale=False).fit(
            disp="off", show_warning=False
        )
        res.forecast(horizon=10, reindex=False)

    base = best(raw, 5) * 1e3
    row(
        "GARCH(1,1) fit + 10-step forecast, 2,000 r",
        ours,
        "ms",
        base,
        "arch alone, same pre-scaled data",
        "<= 150 ms",
    )


def bench_resample() -> None:
    n = 86_400
    rng = np.random.default_rng(4)
    p = 60_000 + np.cumsum(rng.normal(0, 1, n))
    ts = 1_723_161_600 * 1_000_000 + np.arange(n, dtype=np.int64) * 1_000_000
    q = rng.uniform(0.1, 2, n)
    bars = pd.DataFrame(
        {"ts": ts, "open": p, "high": p + 1, "low": p - 1, "close": p, "volume": q,
         "quote_volume": p * q, "trades": np.ones(n, dtype=np.int64), "vwap": p}
    )  # fmt: skip
    ours = best(lambda: A.resample_bars(bars, "1m"), 7) * 1e3
    indexed = bars.set_index(pd.to_datetime(bars["ts"], unit="us", utc=True))
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
           "quote_volume": "sum", "trades": "sum"}  # fmt: skip
    base = best(lambda: indexed.resample("1min").agg(agg), 5) * 1e3
    row("resample_bars 86,400 x 1 s -> 1 m", ours, "ms", base, "pandas resample().agg", "<= 50 ms")


def ticks(n: int, seed: int, *, span_us: int = 86_400_000_000, level: float = 60_000.0):
    """``n`` trades at uniform random µs times over ``span_us``, a log random walk price."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, span_us, n)) + 1_723_161_600 * 1_000_000
    price = np.round(level * np.exp(np.cumsum(1e-5 * rng.standard_normal(n))), 2)
    return ts, price


def naive_hy(ta: np.ndarray, pa: np.ndarray, tb: np.ndarray, pb: np.ndarray) -> float:
    """The O(n·m) definition, vectorised: the full interval-overlap matrix (numpy)."""
    dx, dy = np.diff(np.log(pa)), np.diff(np.log(pb))
    meets = (ta[:-1, None] < tb[None, 1:]) & (tb[None, :-1] < ta[1:, None])
    return float(dx @ (meets @ dy))


def bench_crossvenue() -> None:
    # Hayashi-Yoshida, 1M ticks per side (a day of the busiest venue's BTC trades). Target
    # <= 1 s: the HRY lead-lag scan evaluates HY once per lag (201 lags in the Venues tab), so
    # one evaluation on a day must stay around a second for a scan to finish in minutes, and an
    # hour (~50k ticks/side) in seconds. The naive O(n·m) overlap matrix cannot run at 1M
    # (10^12 pairs): it is timed on a subsample and scaled by (1M / n_sub)^2.
    n, n_sub = 1_000_000, 3_000
    ta, pa = ticks(n, 10)
    tb, pb = ticks(n, 11)
    ours = best(lambda: A.hayashi_yoshida((ta, pa), (tb, pb)), 3)
    sa, sb = ticks(n_sub, 12), ticks(n_sub, 13)
    naive_sub = best(lambda: naive_hy(*sa, *sb), 3)
    ours_sub = best(lambda: A.hayashi_yoshida(sa, sb), 5)
    assert abs(A.hayashi_yoshida(sa, sb).covariance - naive_hy(*sa, *sb)) < 1e-12
    scale = (n / n_sub) ** 2
    row(
        "Hayashi-Yoshida, 1M x 1M ticks",
        ours * 1e3,
        "ms",
        naive_sub * scale * 1e3,
        f"naive O(n·m), {n_sub:,}/side x{scale:,.0f}",
        "<= 1000 ms",
        ours <= 1.0,
    )
    row(
        f"Hayashi-Yoshida, {n_sub:,} x {n_sub:,} ticks",
        ours_sub * 1e3,
        "ms",
        naive_sub * 1e3,
        "naive O(n·m) overlap matrix, same",
        ">= 10x",
        naive_sub / ours_sub >= 10,
    )

    # HRY lead-lag scan: 201 lags (-1 s .. 1 s by 10 ms) over an hour, ~50k ticks per side
    m = 50_000
    la, lb = ticks(m, 14, span_us=3_600_000_000), ticks(m, 15, span_us=3_600_000_000)
    scan = best(lambda: A.lead_lag(la, lb, max_lag="1s", step="10ms"), 1)
    one = best(lambda: A.hayashi_yoshida(la, lb), 3)
    row(
        "HRY lead-lag scan, 201 lags, 50k x 50k",
        scan,
        "s",
        one * 201,
        "201 separate hayashi_yoshida calls",
        "<= 5 s",
        scan <= 5.0,
    )

    # dislocation of 3 venues on a 1 s grid over a day, vs pandas merge_asof for each venue
    venues = {
        "coinbase": ticks(1_000_000, 16),
        "okx": ticks(300_000, 17, level=60_020),
        "kraken": ticks(200_000, 18, level=59_990),
    }
    quotes = {"coinbase": "USD", "okx": "USDT", "kraken": "USD"}
    ours_d = best(lambda: A.dislocation(venues, quotes=quotes, interval="1s"), 3)
    frames = {
        k: pd.DataFrame({"ts": pd.to_datetime(t, unit="us", utc=True), "p": p})
        for k, (t, p) in venues.items()
    }

    def pandas_dislocation() -> None:
        lo = min(f["ts"].iloc[0] for f in frames.values()).ceil("1s")
        hi = max(f["ts"].iloc[-1] for f in frames.values()).floor("1s")
        grid = pd.DataFrame({"ts": pd.date_range(lo, hi, freq="1s")})
        tol = pd.Timedelta("1s")
        px = {k: pd.merge_asof(grid, f, on="ts", tolerance=tol)["p"] for k, f in frames.items()}
        for k in ("okx", "kraken"):
            b = (px[k] / px["coinbase"] - 1) * 1e4
            b.mean(), b.median(), b.abs().quantile(0.95), (b.abs() > 10).mean()

    base_d = best(pandas_dislocation, 3)
    row(
        "dislocation, 3 venues, 1.5M trades, 1 s grid",
        ours_d * 1e3,
        "ms",
        base_d * 1e3,
        "pandas merge_asof + stats",
        "<= 1000 ms",
        ours_d <= 1.0,
    )

    # streaming dislocation: one update + reading both values
    k = 200_000
    rng = np.random.default_rng(19)
    names = rng.choice(["okx", "coinbase", "USDT/USD"], k, p=[0.45, 0.45, 0.1]).tolist()
    prices = (60_000 + rng.standard_normal(k)).tolist()
    prices = [1.0 if nm == "USDT/USD" else p for nm, p in zip(names, prices, strict=True)]
    stamps = (np.arange(k) * 1000).tolist()

    def stream() -> None:
        d = S.DislocationBps("okx", "coinbase", quotes=quotes, rate="USDT/USD", max_age=1_000_000)
        for i in range(k):
            d.update(names[i], prices[i], stamps[i])
            _ = (d.value, d.adjusted)

    per = best(stream, 3) / k * 1e6
    buf = 100
    ev = {
        nm: (np.array([s for s, x in zip(stamps[:buf], names[:buf], strict=True) if x == nm]),
             np.array([p for p, x in zip(prices[:buf], names[:buf], strict=True) if x == nm]))
        for nm in ("okx", "coinbase", "USDT/USD")
    }  # fmt: skip

    def recompute() -> None:
        A.dislocation({"coinbase": ev["coinbase"], "okx": ev["okx"]}, quotes=quotes,
                      interval=None, rates={"USDT/USD": ev["USDT/USD"]})  # fmt: skip

    base_s = best(recompute, 5) * 1e6
    row(
        "DislocationBps, per update + read",
        per,
        "µs",
        base_s,
        "batch recompute, last 100 updates",
        "<= 5 µs",
        per <= 5.0,
    )

    # share of volume, 3 venues, a day of trades, 1 m buckets
    rng = np.random.default_rng(20)
    trades = {
        k: pd.DataFrame({"ts": t, "price": p, "qty": rng.exponential(0.05, t.size)})
        for k, (t, p) in venues.items()
    }
    ours_v = best(lambda: A.volume_share(trades, interval="1m"), 3)
    idx = {k: pd.to_datetime(f["ts"], unit="us", utc=True) for k, f in trades.items()}

    def pandas_share() -> None:
        vol = pd.DataFrame(
            {k: pd.Series(f["qty"].to_numpy(), index=idx[k]).resample("1min").sum()
             for k, f in trades.items()}
        ).fillna(0.0)  # fmt: skip
        vol.div(vol.sum(axis=1), axis=0)

    base_v = best(pandas_share, 3)
    row(
        "volume_share, 3 venues, 1.5M trades, 1 m",
        ours_v * 1e3,
        "ms",
        base_v * 1e3,
        "pandas resample().sum() + div",
        "<= 500 ms",
        ours_v <= 0.5,
    )


def main() -> None:
    # the baseline "arch alone, same pre-scaled data" warns (DataScaleWarning, ConvergenceWarning):
    # that is the point of garch_forecast's rescaling; keep the table readable
    warnings.simplefilter("ignore")
    print(f"lq.analytics benchmark (numpy {np.__version__}, pandas {pd.__version__})")
    bench_resample()
    bench_streaming()
    bench_rolling_ols()
    bench_dashboard()
    bench_garch()
    bench_crossvenue()


if __name__ == "__main__":
    main()
