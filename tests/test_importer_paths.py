"""Data paths a user expects to work (issue 11): OHLC and klines imports reach bars (1 m and
coarser), ``lq export bars``, ``Store.symbols()``, backtests and the dashboard; re-importing
reports 0 new; the upload asks for a missing symbol; lq's own ``--record`` files are
recognised. Real files through the real CLI (``lq.cli.main`` or a process)."""

from __future__ import annotations

import io
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lq.cli import main
from lq.store import Store, Writer
from lq.store.provenance import imported_ranges

T0 = pd.Timestamp("2024-08-01", tz="UTC")


def _ohlc(
    n: int, seed: int, *, base: float = 100.0, noise: np.ndarray | None = None
) -> pd.DataFrame:
    """1 m OHLCV bars of a random walk, values with 4 decimals (exact through CSV text)."""
    rng = np.random.default_rng(seed)
    close = base * np.exp(np.cumsum(rng.normal(0, 0.001, n)) + (0 if noise is None else noise))
    open_ = np.r_[base, close[:-1]]
    df = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n)),
            "close": close,
            "volume": rng.uniform(1, 10, n),
        },
        index=pd.date_range(T0, periods=n, freq="1min", name="time"),
    ).round(4)
    df["high"] = df[["open", "high", "close"]].max(axis=1)
    df["low"] = df[["open", "low", "close"]].min(axis=1)
    return df


def _write_ohlc(df: pd.DataFrame, path: Path) -> Path:
    out = df.reset_index()
    out["time"] = out["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
    return path


def _pandas_bars(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The independent reference: pandas' own OHLC resampling."""
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return df.resample(rule).agg(agg).dropna()


def test_an_ohlc_csv_reaches_bars_symbols_and_export_and_reimports_as_nothing_new(tmp_path, capsys):
    db = tmp_path / "lq.sqlite"
    src = _ohlc(2 * 1440, seed=1)
    f = _write_ohlc(src, tmp_path / "mydata.csv")
    assert main(["import", "--db", str(db), "--symbol", "solusdt", "--no-progress", str(f)]) == 0
    assert "ohlc SOLUSDT: 2,880 rows, 2,880 new, 0 already stored" in capsys.readouterr().out
    assert main(["import", "--db", str(db), "--symbol", "SOLUSDT", "--no-progress", str(f)]) == 0
    assert "2,880 rows, 0 new, 2,880 already stored" in capsys.readouterr().out
    with Store(db) as s:
        assert s.symbols() == ["SOLUSDT"]
        m1 = s.bars("SOLUSDT", "1m")
        h1 = s.bars("SOLUSDT", "1h", start="2024-08-01 05:30", end="2024-08-01 12:00")
        assert s.bars("SOLUSDT", "1s").empty  # 1 m klines give no 1 s bars
        assert s.newest_bar_ts("SOLUSDT") == int(src.index[-1].value // 1000)
    assert (m1.index == src.index).all()
    for c in ("open", "high", "low", "close", "volume"):
        assert m1[c].tolist() == src[c].tolist()  # exact: the file's own numbers
    # what an OHLC file does not say is not made up: NaN, not 0
    assert m1[["quote_volume", "trades", "vwap"]].isna().all().all()
    ref = _pandas_bars(src, "1h").loc["2024-08-01 05:00":"2024-08-01 11:00"]
    assert (h1.index == ref.index).all()  # whole bars: 05:00 holds 05:30
    np.testing.assert_array_equal(
        h1[["open", "high", "low", "close"]], ref[["open", "high", "low", "close"]]
    )
    np.testing.assert_allclose(h1["volume"], ref["volume"], rtol=1e-12)
    out = tmp_path / "bars.csv"
    assert main(["export", "--db", str(db), "bars", "SOLUSDT", str(out), "--interval", "15m"]) == 0
    got = pd.read_csv(out)
    ref15 = _pandas_bars(src, "15min")
    assert len(got) == len(ref15) == 192 and got["close"].tolist() == ref15["close"].tolist()
    # lq status lists the klines (per symbol and interval), the 1 m bars and the imported ranges
    capsys.readouterr()
    assert (
        main(["status", "--db", str(db)]) == 1
    )  # no collector is storing: exit 1 (the listing is what is checked)
    status = capsys.readouterr().out
    assert "klines:              2,880" in status
    assert "bars_1m:                 0" in status  # klines are not copied into bars_1m
    assert "  klines SOLUSDT 1m: 2,880 from 2024-08-01 00:00 to 2024-08-02 23:59" in status
    assert "imported: 1 ranges, kept by retention" in status
    # and it is imported history: kept by retention (a range per contiguous run of minutes)
    with Writer(db) as w:
        (r,) = imported_ranges(w.conn, "klines")
    assert (r.interval, r.first_ts, r.last_ts) == (
        "1m",
        src.index[0].value // 1000,
        src.index[-1].value // 1000,
    )


def _klines_rows(df: pd.DataFrame, rng: np.random.Generator) -> tuple[list[str], pd.DataFrame]:
    """Binance's 12-column klines (µs, as shipped since 2025), with quote volume and counts."""
    qv = (df["volume"] * df["close"]).round(6)
    n = rng.integers(1, 500, len(df))
    rows = []
    for (t, r), q, k in zip(df.iterrows(), qv, n, strict=True):
        ot = t.value // 1000
        rows.append(
            f"{ot},{r.open},{r.high},{r.low},{r.close},{r.volume},{ot + 59_999_999},{q},{k},"
            f"{r.volume / 2},{q / 2},0"
        )
    return rows, df.assign(quote_volume=qv, trades=n)


def test_a_binance_klines_zip_gives_coarser_bars_with_their_quote_volume_and_counts(tmp_path):
    src = _ohlc(600, seed=2)
    rows, ref = _klines_rows(src, np.random.default_rng(3))
    f = tmp_path / "ETHUSDT-1m-2024-08-01.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("ETHUSDT-1m-2024-08-01.csv", "\n".join(rows) + "\n")
    db = tmp_path / "lq.sqlite"
    assert main(["import", "--db", str(db), "--no-progress", str(f)]) == 0
    with Store(db) as s:
        b = s.bars("ETHUSDT", "15m")
    agg = ref.resample("15min").agg({"quote_volume": "sum", "trades": "sum", "volume": "sum"})
    np.testing.assert_allclose(b["quote_volume"], agg["quote_volume"], rtol=1e-12)
    assert b["trades"].tolist() == agg["trades"].tolist()
    np.testing.assert_allclose(b["vwap"], agg["quote_volume"] / agg["volume"], rtol=1e-12)


def test_each_stretch_of_time_has_one_source_and_coarse_bars_are_their_fine_bars(tmp_path):
    """Collected trades for 10:00-10:09, imported 1 m klines for 10:00-10:59 (at another price
    level, to tell them apart) and a 1 h kline for 11:00: 1 m bars take trades where there
    are any, and the 10:00 hour is exactly its 1 m bars, the 11:00 hour the 1 h kline."""
    from lq.feeds.events import Kline, Trade

    hour = pd.Timestamp("2024-08-01 10:00", tz="UTC").value // 1000
    trades = [
        Trade(symbol="BTCUSDT", trade_id=i + 1, price=50_000.0 + i, qty=0.5, ts=hour + i * 6_000_000,
              event_ts=hour + i * 6_000_000, is_buyer_maker=False)
        for i in range(100)
    ]  # fmt: skip

    def kline(t: int, interval: str, step: int, price: float) -> Kline:
        return Kline(
            symbol="BTCUSDT", interval=interval, open_time=t, close_time=t + step - 1,
            open=price, high=price + 5, low=price - 5, close=price + 1, volume=2.0,
            quote_volume=2 * price, trades=4, taker_buy_volume=1.0, taker_buy_quote_volume=price,
            first_id=-1, last_id=-1, closed=True, event_ts=t + step - 1,
        )  # fmt: skip

    from lq.store import Batch

    db = tmp_path / "lq.sqlite"
    with Writer(db) as w:
        w.write_trades(trades)
        w.write_batch(
            Batch(
                klines=[
                    kline(hour + m * 60_000_000, "1m", 60_000_000, 60_000.0 + m) for m in range(60)
                ]
                + [kline(hour + 3_600_000_000, "1h", 3_600_000_000, 70_000.0)]
            )
        )
    with Store(db) as s:
        m1 = s.bars("BTCUSDT", "1m")
        h1 = s.bars("BTCUSDT", "1h")
        ticks = s.ticks("BTCUSDT")
    assert len(m1) == 60  # the 1 h kline is not a 1 m bar
    tick_bars = (
        pd.DataFrame(
            {"price": ticks["price"].to_numpy()},
            index=pd.to_datetime(ticks["ts"], unit="us", utc=True),
        )["price"]
        .resample("1min")
        .ohlc()
    )
    np.testing.assert_array_equal(m1.iloc[:10][["open", "high", "low", "close"]], tick_bars)
    assert m1.iloc[10:]["open"].tolist() == [60_000.0 + m for m in range(10, 60)]
    ref = _pandas_bars(m1[["open", "high", "low", "close", "volume"]], "1h")
    np.testing.assert_array_equal(
        h1.iloc[:1][["open", "high", "low", "close"]], ref[["open", "high", "low", "close"]]
    )
    assert h1["volume"].iloc[0] == pytest.approx(ref["volume"].iloc[0], rel=1e-12)
    assert h1["trades"].iloc[0] == 100 + 50 * 4
    assert (h1.iloc[1]["open"], h1.iloc[1]["close"], h1.iloc[1]["trades"]) == (
        70_000.0,
        70_001.0,
        4,
    )


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_lq_backtest_runs_on_a_database_holding_only_imported_ohlc(tmp_path):
    import json
    import sqlite3

    n = 3 * 1440
    btc = _ohlc(n, seed=4, base=60_000.0)
    rng = np.random.default_rng(5)
    eth = _ohlc(
        n,
        seed=6,
        base=3_000.0,
        noise=0.8 * np.log(btc["close"].to_numpy() / 60_000.0) + rng.normal(0, 0.0005, n),
    )
    db = tmp_path / "lq.sqlite"
    for sym, df in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        f = _write_ohlc(df, tmp_path / f"{sym.lower()}.csv")
        assert main(["import", "--db", str(db), "--symbol", sym, "--no-progress", str(f)]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "lq.cli", "backtest", "--db", str(db), "-p", "interval", "1m",
         "-p", "lookback", "60", "-p", "lookahead_cuts", "2", "--out", "runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    conn = sqlite3.connect(db)
    [(strategy, metrics)] = conn.execute("SELECT strategy, metrics FROM backtest_runs").fetchall()
    conn.close()
    assert strategy == "pairs_zscore"
    m = json.loads(metrics)
    assert m["lookahead_passed"] is True
    from lq.backtest.runs import load_bars

    frames = load_bars(db, ["BTCUSDT", "ETHUSDT"], interval="1m")
    assert [len(f) for f in frames.values()] == [n, n]


# -- the dashboard -------------------------------------------------------------------------------
def test_the_upload_asks_for_the_symbol_and_the_market_tab_shows_the_imported_bars(tmp_path):
    from lq.dashboard.data import DataPanel
    from lq.dashboard.feed import BarFeed
    from lq.dashboard.market import MarketPanel

    db = tmp_path / "lq.sqlite"
    src = _ohlc(300, seed=7)
    data = _write_ohlc(src, tmp_path / "x.csv").read_bytes()
    Writer(db).close()
    with Store(db) as store:
        p = DataPanel(store, db=db, symbols=["BTCUSDT"])
        asked = p.import_file("my-ohlc.csv", data)
        assert "does not say which symbol it holds" in asked
        assert p.upload_ask.layout.display == "flex"  # the symbol box is shown
        assert store.count("klines") == 0  # nothing imported yet
        p.upload_symbol.value = "<b>bad"
        assert "expected 2-30 letters" in p.import_pending()
        p.upload_symbol.value = "solusdt"
        done = p.import_pending()
        assert "imported ohlc of SOLUSDT: 300 rows, 300 new" in done
        assert p.upload_ask.layout.display == "none"
        assert store.symbols() == ["SOLUSDT"]
        # the Data tab downloads its bars
        p.symbol.options = ["SOLUSDT"]
        p.symbol.value, p.kind.value, p.interval.value, p.range.value = (
            "SOLUSDT",
            "bars",
            "1m",
            "everything",
        )
        assert "(300 rows" in p.make_download()
        # the market tab draws them at their own interval, and says why 1 s is empty
        feed = BarFeed(store, ["SOLUSDT"])
        assert feed.update() == 300 and feed.base_interval("SOLUSDT") == "1m"
        five = feed.bars("SOLUSDT", "5m")
        assert five["close"].tolist() == _pandas_bars(src, "5min")["close"].tolist()
        m = MarketPanel(feed, symbols=["SOLUSDT"], interval="1m")
        m.refresh()
        assert "from imported 1m klines" in m.header.value and "300 bars (1m" in m.header.value
        assert len(m.fig.data[0].x) == 300
        m.interval.value = "1s"
        m.refresh()
        assert "has 1m bars only" in m.header.value


# -- lq's own recordings ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["session.txt", "session.gz"])
def test_lq_import_recognises_its_own_record_files_without_kind(tmp_path, name):
    """``lq collect --record`` as a real process, then ``lq import`` (no --kind) and the
    dashboard's upload of the same file: every collected trade, nothing else."""
    from lq.dashboard.data import DataPanel

    rec = tmp_path / name
    db = tmp_path / "c.sqlite"
    # stopped with SIGTERM once it has stored trades and book tickers (a fixed --duration of
    # 4 s stored nothing once on a loaded machine: the start-up took it all)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "collect", "--db", str(db), "--source",
         "local", "--symbols", "BTCUSDT", "--channels", "trade,bookTicker", "--rate", "50",
         "--record", str(rec), "--no-alerts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def stored() -> tuple[int, int]:
        try:
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                return (
                    c.execute("SELECT count(*) FROM ticks").fetchone()[0],
                    c.execute("SELECT count(*) FROM book_tickers").fetchone()[0],
                )
            finally:
                c.close()
        except sqlite3.Error:
            return 0, 0

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        n, b = stored()
        if n >= 30 and b >= 5:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    with Store(tmp_path / "c.sqlite") as s:
        collected = s.ticks("BTCUSDT")["trade_id"].tolist()
        books = s.count("book_tickers")
    assert collected and books
    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    try:
        assert (
            main(
                [
                    "import",
                    "--db",
                    str(tmp_path / "i.sqlite"),
                    "--exchange-label",
                    "local",
                    str(rec),
                ]
            )
            == 0
        )
    finally:
        sys.stdout = sys_stdout
    assert f"{name}: frames *:" in out.getvalue()
    with Store(tmp_path / "i.sqlite") as s:
        assert s.ticks("BTCUSDT")["trade_id"].tolist() == collected
        assert s.count("book_tickers") == books
    Writer(tmp_path / "u.sqlite").close()
    with Store(tmp_path / "u.sqlite") as store:
        shown = DataPanel(store, db=tmp_path / "u.sqlite", symbols=["BTCUSDT"]).import_file(
            name, rec.read_bytes()
        )
        assert "imported frames" in shown, shown
        assert store.count("ticks") == len(collected)
