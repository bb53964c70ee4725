"""QA, issue 12: ``lq exchange`` serving several venues honours every flag, and a port in use
is named as such (real sockets, real subprocesses)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import websockets

from lq.exchange import cli as exchange_cli


def _args(*argv: str):
    import argparse

    p = argparse.ArgumentParser(prog="lq")
    exchange_cli.add_parser(p.add_subparsers(dest="command", required=True))
    return p.parse_args(["exchange", *argv])


def _lq(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "LQ_CONFIG": os.devnull},
    )


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lq exchange: error: "), lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def _free_ports(n: int) -> int:
    """A port P with P..P+n-1 free right now."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p + n > 65535:
            continue
        ok = True
        for q in range(p, p + n):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return p
    raise AssertionError("no free port range")


@pytest.mark.parametrize(
    "venue_args",
    [
        [],
        ["--venue", "coinbase", "--symbols", "BTC-USD"],
        ["--symbols", "binance:BTCUSDT", "--symbols", "okx:BTC-USDT"],
    ],
    ids=["binance", "coinbase", "two-venues"],
)
def test_a_port_in_use_is_named_with_the_way_out(busy_port, venue_args):
    line = _one_line(_lq("exchange", "--port", str(busy_port), *venue_args))
    assert f"port {busy_port}" in line and "in use" in line and "--port" in line, line
    assert "sqlite" not in line.lower() and ".db" not in line, line


def test_every_venue_is_served_on_the_host_and_consecutive_ports_it_prints():
    port = _free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "exchange", "--host", "127.0.0.1", "--port", str(port),
         "--symbols", "binance:BTCUSDT", "--symbols", "coinbase:BTC-USD",
         "--symbols", "okx:BTC-USDT"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tempfile.gettempdir(), env={**os.environ, "LQ_CONFIG": os.devnull},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        printed = {}
        for line in lines:
            m = re.match(r"(\w+): WebSocket (\S+)  REST (\S+)", line)
            assert m, lines
            printed[m.group(1)] = (m.group(2), m.group(3))
        assert [printed[v][1] for v in ("binance", "coinbase", "okx")] == [
            f"http://127.0.0.1:{port + i}" for i in range(3)
        ]
        for ws, _rest in printed.values():  # the printed endpoints are true: each accepts
            host, p = re.match(r"ws://([^:/]+):(\d+)", ws).groups()  # type: ignore[union-attr]
            socket.create_connection((host, int(p)), timeout=10).close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_a_binance_only_flag_is_refused_when_another_venue_is_served():
    line = _one_line(_lq("exchange", "--symbols", "coinbase:BTC-USD", "--max-connection-age", "5"))
    assert "--max-connection-age" in line and "binance" in line, line


def test_replay_with_another_venue_is_refused():
    line = _one_line(_lq("exchange", "--venue", "okx", "--replay", "x.gz"))
    assert "--replay" in line and "Binance" in line, line


async def _coinbase_frames(ex, n: int, timeout: float = 30.0) -> list[str]:
    from lq.venues.coinbase import protocol

    url = ex["coinbase"].ws_url
    out: list[str] = []
    async with websockets.connect(url) as ws:
        for m in protocol.subscribe_messages(["BTC-USD"]):
            await ws.send(m)
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                msg = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            out.append(msg if isinstance(msg, str) else msg.decode())
    return out


def _trade_ids(frames: list[str]) -> list[list[int]]:
    out = []
    for f in frames:
        try:
            d = json.loads(f)
        except ValueError:
            continue
        if isinstance(d, dict) and d.get("channel") == "market_trades":
            for ev in d.get("events", []):
                if ev.get("type") == "update":
                    out.append([int(t["trade_id"]) for t in ev["trades"]])
    return out


@pytest.mark.parametrize(
    "flag", ["--malformed-rate", "--duplicate-rate", "--skip-rate", "--out-of-order-rate"]
)
def test_fault_rates_apply_to_every_venue_served(flag):
    args = _args("--symbols", "binance:BTCUSDT", "--symbols", "coinbase:BTC-USD",
                 "--rate", "200", flag, "1")  # fmt: skip
    ex = exchange_cli.build_exchange(args)
    assert ex["binance"].faults == ex["coinbase"].faults

    async def main() -> tuple[list[str], list]:
        async with ex:
            frames = await _coinbase_frames(ex, 12, timeout=5.0 if "skip" in flag else 30.0)
            return frames, ex["coinbase"].trades("BTC-USD")

    frames, truth = asyncio.run(main())
    ids = _trade_ids(frames)
    if flag == "--malformed-rate":
        bad = 0
        for f in frames:
            try:
                json.loads(f)
            except ValueError:
                bad += 1
        assert bad >= 1, frames[:5]
        assert ids, frames[:5]
    elif flag == "--duplicate-rate":
        assert len(ids) >= 2 and any(a == b for a, b in itertools.pairwise(ids)), ids
    elif flag == "--out-of-order-rate":  # a batch held back arrives after the next one
        assert len(ids) >= 2 and any(min(a) > max(b) for a, b in itertools.pairwise(ids)), ids
    else:
        assert truth, "the exchange produced no trade"
        assert ids == [], ids  # every trade kept off the socket (REST keeps them)


def test_host_and_ping_options_reach_every_venue():
    args = _args("--symbols", "binance:BTCUSDT", "--symbols", "kraken:BTC/USD",
                 "--host", "127.0.0.1", "--ping-interval", "3", "--pong-timeout", "7")  # fmt: skip
    ex = exchange_cli.build_exchange(args)
    assert ex["kraken"].host == ex["binance"].host == "127.0.0.1"
    assert ex["kraken"].ping_interval == 3 and ex["kraken"].pong_timeout == 7
