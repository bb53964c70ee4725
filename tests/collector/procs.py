"""Helpers for tests that run `lq collect` as real processes against a real local exchange
(imported by name: ``from procs import ...``; tests/collector is on the path)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lq.exchange import LocalExchange, SimulatorSource

SYMBOLS = ("BTCUSDT", "ETHUSDT")
RUNNING: list[Proc] = []  # every process started; tests/collector/conftest.py kills leftovers


class ExchangeThread:
    """A LocalExchange on its own loop in a thread, so that a test can run processes."""

    def __init__(self, symbols=SYMBOLS, seed: int = 5, **source_kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.ex = LocalExchange(
            source=SimulatorSource(symbols=symbols, seed=seed, **source_kw),
            host="127.0.0.1",
            port=0,
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.ex.start())

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run ``fn(*args, **kw)`` on the exchange's loop (inject, read its state)."""

        async def go() -> Any:
            return fn(*args, **kw)

        return self.call(go())

    def trades(self, symbol: str) -> list:
        return self.do(lambda: list(self.ex.trades(symbol)))

    def inject(self, kind: str, **params: Any) -> None:
        self.do(self.ex.inject, kind, **params)

    def rest_calls(self, path: str = "/api/v3/historicalTrades") -> int:
        return int(self.do(lambda: self.ex.rest.calls.get(path, 0)))

    def source_done(self) -> bool:
        return self.ex.source_done.is_set()

    def stop(self) -> None:
        self.call(self.ex.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Proc:
    """An ``lq`` process; its stderr goes to a file (a pipe nobody reads would fill and
    block the process at its next log line)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._err = open(log, "w")  # noqa: SIM115 - closed in wait()
        self.p = subprocess.Popen(
            [sys.executable, "-m", "lq.cli", *args],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.out = ""
        RUNNING.append(self)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def send(self, sig: int) -> None:
        self.p.send_signal(sig)

    def kill9(self) -> None:
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(30)
        self._err.close()

    def wait(self, timeout: float = 60) -> int:
        self.out, _ = self.p.communicate(timeout=timeout)
        self._err.close()
        return self.p.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        if self.alive():
            self.p.send_signal(sig)
        return self.wait(timeout)

    def stderr(self) -> str:
        return self.log.read_text()

    def last_log_line(self) -> str:
        lines = [ln for ln in self.stderr().splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def collect(
    db: Path,
    ex: ExchangeThread | None,
    *extra: str,
    log: Path | None = None,
    symbols=SYMBOLS,
) -> Proc:
    """``lq collect`` on ``db``: from the exchange thread (label ``local``), or with
    ``extra`` alone (e.g. ``--source local``)."""
    args = ["collect", "--db", str(db), "--symbols", ",".join(symbols), "--no-alerts"]
    if ex is not None:
        args += [
            "--ws-url",
            ex.ex.ws_url,
            "--rest-url",
            ex.ex.rest_url,
            "--exchange-label",
            "local",
        ]
    args += list(extra)
    n = len(list(db.parent.glob(db.name + ".*.log")))
    return Proc(args, log or db.parent / f"{db.name}.{n}.log")


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from the database, or [] while it does not exist yet (a read-only reader)."""
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def count(db: Path, symbol: str | None = None) -> int:
    if symbol:
        rows = query(db, "SELECT count(*) FROM ticks WHERE symbol = ?", (symbol,))
    else:
        rows = query(db, "SELECT count(*) FROM ticks")
    return rows[0][0] if rows else 0


def ids(db: Path, symbol: str) -> list[int]:
    return [
        i
        for (i,) in query(
            db, "SELECT trade_id FROM ticks WHERE symbol = ? ORDER BY trade_id", (symbol,)
        )
    ]


def wait_for(pred: Any, timeout: float, what: str, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and not proc.alive():
            raise AssertionError(f"{what}: the process ended early:\n{proc.stderr()[-3000:]}")
        time.sleep(0.1)
    tail = f"\n{proc.stderr()[-3000:]}" if proc is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


def assert_exactly_the_exchanges(db: Path, ex: ExchangeThread, symbol: str, upto: int) -> int:
    """Every id the exchange published from the first stored one to ``upto`` is stored, once,
    with its price and quantity; returns how many."""
    rows = query(
        db,
        "SELECT trade_id, price, qty FROM ticks WHERE symbol = ? AND trade_id <= ?"
        " ORDER BY trade_id",
        (symbol, upto),
    )
    assert rows, f"nothing stored for {symbol}"
    truth = [(t.trade_id, t.price, t.qty) for t in ex.trades(symbol) if rows[0][0] <= t.trade_id]
    truth = [t for t in truth if t[0] <= upto]
    got = {r[0] for r in rows}
    missing = [t[0] for t in truth if t[0] not in got]
    assert not missing, f"{symbol}: {len(missing)} ids missing, e.g. {missing[:10]}"
    assert rows == truth, f"{symbol}: stored rows differ from the exchange's"
    return len(rows)
