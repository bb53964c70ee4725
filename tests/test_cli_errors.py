"""Every refusal of the `lq` command is one line naming the problem and the way out, exit 2.

Real processes (``python -m lq.cli``), real files, a real local exchange on 127.0.0.1 for the
collector's checks; the read-only database is made read-only for real (as root, the command
runs as ``nobody``, since root ignores file modes).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lq.exchange import LocalExchange, SimulatorSource

sys.path.insert(0, str(Path(__file__).parent / "store"))
from trade_factory import make_trades


def lq(*args: str, user: int | None = None, timeout: float = 120, **env: str):
    """``python -m lq.cli ARGS``; ``user``: run it as that uid (via util-linux ``setpriv``)."""
    prefix = (
        [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    )
    return subprocess.run(
        [*prefix, sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        cwd=tempfile.gettempdir(),
    )


def one_line_error(r: subprocess.CompletedProcess[str], command: str) -> str:
    """The refusal: exit 2, nothing but one ``lq <command>: error: ...`` line on stderr."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"lq {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    from lq.store import Writer

    path = tmp_path / "a.sqlite"
    with Writer(path) as w:
        w.write_trades(make_trades(200))  # BTCUSDT
    return path


# ------------------------------------------------------------------------ read-only --db
@pytest.fixture
def readonly_db() -> Iterator[tuple[Path, int | None]]:
    """A database in a folder this test's `lq` process cannot write: ``(path, uid to run as)``."""
    from lq.store import Writer

    folder = Path(tempfile.mkdtemp(prefix="lq-ro-"))
    path = folder / "ro.sqlite"
    with Writer(path) as w:
        w.write_trades(make_trades(50))
    (folder / "ro.sqlite.writer.lock").unlink(missing_ok=True)
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    uid = 65534 if os.geteuid() == 0 else None  # root writes anywhere: run as nobody
    if uid is not None and shutil.which("setpriv") is None:
        pytest.skip("running as root without util-linux setpriv: cannot drop privileges")
    try:
        yield path, uid
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["collect", "--source", "local", "--duration", "1"],
        ["purge", "--older-than", "1d"],
        ["alerts", "list"],
    ],
)
def test_a_read_only_database_is_one_line_naming_the_path_and_the_fix(readonly_db, command):
    path, uid = readonly_db
    home = tempfile.mkdtemp(prefix="lq-home-")
    os.chmod(home, 0o777)
    Path(home, "config.toml").write_text("")  # readable by the other user (0o644)
    try:
        r = lq(*command, "--db", str(path), user=uid, HOME=home,
               LQ_CONFIG=f"{home}/config.toml", LQ_DB=str(path))  # fmt: skip
    finally:
        shutil.rmtree(home)
    line = one_line_error(r, command[0])
    assert str(path) in line
    assert "writable for this user, or choose another file with --db PATH" in line


# --------------------------------------------------------------------------- lq export
def test_export_of_an_unknown_symbol_lists_the_stored_ones_and_writes_nothing(db, tmp_path):
    out = tmp_path / "x.csv"
    line = one_line_error(lq("export", "--db", str(db), "ticks", "ETHUSDT", str(out)), "export")
    assert "symbol='ETHUSDT': no ticks of ETHUSDT in" in line and "stored: BTCUSDT" in line
    assert not out.exists()


def test_export_to_xlsx_is_refused_naming_csv_and_parquet(db, tmp_path):
    out = tmp_path / "x.xlsx"
    line = one_line_error(lq("export", "--db", str(db), "ticks", "BTCUSDT", str(out)), "export")
    assert "unknown file type '.xlsx'" in line and "CSV (.csv) or Parquet (.parquet, .pq)" in line
    assert not out.exists()
    line = one_line_error(
        lq("export", "--db", str(db), "ticks", "BTCUSDT", str(tmp_path / "x.csv"),
           "--format", "parquet"), "export"
    )  # fmt: skip
    assert "x.csv is a csv file name: use --format csv" in line


def test_export_writes_and_says_what(db, tmp_path):
    r = lq("export", "--db", str(db), "ticks", "btcusdt", str(tmp_path / "x.parquet"))
    assert r.returncode == 0, r.stderr
    assert "wrote 200 rows of ticks to" in r.stdout
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "x.parquet")) == 200


def test_enum_arguments_list_their_choices_on_one_line(db, tmp_path):
    line = one_line_error(lq("export", "--db", str(db), "tick", "BTCUSDT", "x.csv"), "export")
    assert "argument kind: invalid choice: 'tick' (choose from" in line
    assert all(c in line for c in ("ticks", "bars", "book_tickers"))
    line = one_line_error(
        lq("purge", "--db", str(db), "--older-than", "1d", "--what", "t"), "purge"
    )
    assert "argument --what: invalid choice: 't'" in line and "see `lq purge --help`" in line
    line = one_line_error(lq("collect", "--db", str(db), "--source", "lve"), "collect")
    assert "--source='lve': expected live, local or replay:FILE[,FILE]" in line
    line = one_line_error(lq("collect", "--db", str(db), "--endpoint", "spt"), "collect")
    assert "unknown preset; expected one of ['spot', 'spot-data', 'us', 'usdm']" in line


# --------------------------------------------------------------------------- lq collect
class ExchangeThread:
    """A simulating LocalExchange (BTCUSDT, ETHUSDT) on its own loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ex = LocalExchange(
            source=SimulatorSource(symbols=("BTCUSDT", "ETHUSDT"), seed=3, rate=50.0),
            host="127.0.0.1",
            port=0,
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.ex.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.ex.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def exchange() -> Iterator[LocalExchange]:
    ex = ExchangeThread()
    yield ex.ex
    ex.stop()


def test_a_misspelled_channel_is_refused_before_anything_starts(tmp_path):
    db = tmp_path / "c.sqlite"
    r = lq("collect", "--db", str(db), "--source", "local", "--channels", "trades,bookTicker")
    line = one_line_error(r, "collect")
    assert "--channels='trades': unknown stream; expected trade, aggTrade, bookTicker" in line
    assert "did you mean 'trade'?" in line
    assert "local exchange" not in r.stderr.lower()  # no exchange was started
    assert not db.exists()  # nothing was opened or created


def test_unknown_symbols_on_a_live_endpoint_are_checked_against_exchange_info(exchange, tmp_path):
    db = tmp_path / "c.sqlite"
    r = lq("collect", "--db", str(db), "--ws-url", exchange.ws_url, "--rest-url",
           exchange.rest_url, "--symbols", "BTCUSDT,BTCUSDX", "--duration", "5")  # fmt: skip
    line = one_line_error(r, "collect")
    assert "--symbols='BTCUSDX': not listed by" in line and "/api/v3/exchangeInfo" in line
    assert "BTCUSDX -> BTCUSDT?" in line and "it lists BTCUSDT, ETHUSDT" in line
    assert exchange.rest.calls.get("/api/v3/exchangeInfo", 0) >= 1  # it really asked
    assert not db.exists()


def _exchanges(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT DISTINCT exchange FROM ticks")}
    finally:
        conn.close()


@pytest.mark.slow
def test_rows_from_a_local_exchange_are_labelled_by_what_it_says_it_is(exchange, tmp_path):
    # only --ws-url: the collector asks the server, which says "local"; backfill goes to the
    # same server (not to api.binance.com)
    db = tmp_path / "c.sqlite"
    r = lq("collect", "--db", str(db), "--ws-url", exchange.ws_url, "--symbols", "BTCUSDT",
           "--duration", "3", timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _exchanges(db) == {"local"}
    from lq.store import Store

    with Store(db) as st:  # the dashboard's status bar reads this: not LIVE BINANCE
        assert {f["source_label"] for f in st.feed_status()} == {"LOCAL EXCHANGE"}
    # the user's own label wins
    db2 = tmp_path / "d.sqlite"
    r = lq("collect", "--db", str(db2), "--ws-url", exchange.ws_url, "--symbols", "BTCUSDT",
           "--exchange-label", "my-sim", "--duration", "3", timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _exchanges(db2) == {"my-sim"}


def test_the_local_exchange_says_what_it_is_and_binance_never_does(exchange):
    import httpx

    r = httpx.get(f"{exchange.rest_url}/api/v3/exchangeInfo", timeout=10)
    assert r.headers["X-LQ-Exchange"] == "local" and r.json()["lqExchange"] == "local"
    r = httpx.get(f"{exchange.rest_url}/api/v3/time", timeout=10)
    assert r.headers["X-LQ-Exchange"] == "local"


def test_an_endpoint_lq_cannot_identify_needs_a_label(tmp_path):
    class NotBinance(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            return None

    srv = ThreadingHTTPServer(("127.0.0.1", 0), NotBinance)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"ws://127.0.0.1:{srv.server_address[1]}"
        r = lq("collect", "--db", str(tmp_path / "c.sqlite"), "--ws-url", url)
        line = one_line_error(r, "collect")
        assert f"--ws-url='{url}': not a Binance host, and it does not answer as an lq" in line
        assert "--exchange-label NAME" in line
    finally:
        srv.shutdown()


def test_the_banner_follows_the_label():
    from lq.collector import source_label

    assert source_label("live") == "LIVE BINANCE" == source_label("live", "binance")
    assert source_label("live", "local") == "LOCAL EXCHANGE"
    assert source_label("live", "replay") == "REPLAY"
    assert source_label("live", "my-sim") == "MY-SIM"
    assert source_label("local") == "LOCAL EXCHANGE"


@pytest.mark.parametrize(
    ("command", "args", "names"),
    [
        ("collect", ["--source", "local", "--speed", "fast"], "--speed: 'fast'"),
        ("collect", ["--source", "local", "--speed", "-2"], "--speed: '-2'"),
        ("exchange", ["--speed", "nan"], "--speed: 'nan'"),
        ("exchange", ["--port", "99999"], "--port: '99999'"),
        ("exchange", ["--port", "http"], "--port: 'http'"),
    ],
)
def test_bad_speeds_and_ports_are_one_line(command, args, names, tmp_path):
    extra = ["--db", str(tmp_path / "x.sqlite"), "--duration", "1"] if command == "collect" else []
    line = one_line_error(lq(command, *args, *extra), command)
    assert names in line
    assert ("or 'max'" in line) if "speed" in names else ("0 for a free one" in line)
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.parametrize(
    ("venue", "symbol", "says"),
    [
        ("kraken", "BTCUSD", "not a Kraken pair 'BASE/QUOTE'"),
        ("okx", "BTC USDT", "not a okx symbol"),
    ],
)
def test_a_symbol_the_venue_cannot_have_is_refused_before_anything_starts(
    venue, symbol, says, tmp_path
):
    r = lq("collect", "--source", "local", "--venue", venue, "--symbols", symbol,
           "--db", str(tmp_path / "x.sqlite"), "--duration", "2")  # fmt: skip
    line = one_line_error(r, "collect")
    assert says in line and "--symbols=" in line


def test_an_import_of_higher_ids_does_not_make_a_restarted_feed_drop_live_trades(
    exchange, tmp_path
):
    """A restarted feed resumes where it stopped collecting, not above imported rows: an
    imported file with a higher id under the feed's label made every live trade below it
    count as already stored (QA: 171 received, 0 stored, no gap, exit 0)."""
    db = tmp_path / "c.sqlite"
    args = ("collect", "--db", str(db), "--ws-url", exchange.ws_url, "--symbols", "BTCUSDT")
    r = lq(*args, "--duration", "3", timeout=90)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    (first,) = con.execute("SELECT count(*) FROM ticks").fetchone()
    con.close()
    assert first > 0
    csv = tmp_path / "BTCUSDT-trades-2026-12-01.csv"  # one trade far above the live ids
    csv.write_text("1000000000,60000.5,0.1,6000,1796345000000,True,True\n")
    r = lq("import", "--db", str(db), "--no-progress", "--exchange-label", "local", str(csv))
    assert r.returncode == 0, r.stderr
    r = lq(*args, "--duration", "4", timeout=90)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    (live,) = con.execute("SELECT count(*) FROM ticks WHERE trade_id < 1000000000").fetchone()
    ids = [i for (i,) in con.execute(
        "SELECT trade_id FROM ticks WHERE symbol = 'BTCUSDT' AND trade_id < 1000000000 "
        "ORDER BY trade_id")]  # fmt: skip
    open_gaps = con.execute("SELECT count(*) FROM gaps WHERE status != 'filled'").fetchone()[0]
    con.close()
    assert live > first  # the second run stored live trades
    assert ids == list(range(ids[0], ids[-1] + 1)) and open_gaps == 0  # and the ids between
