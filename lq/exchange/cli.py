"""``lq exchange``: run the local Binance-compatible exchange until SIGINT/SIGTERM.

The lead wires it into ``lq/cli.py``::

    from lq.exchange import cli as exchange_cli
    exchange_cli.add_parser(subparsers)      # registers "exchange", sets func=exchange_cli.run
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from lq.exchange.faults import Faults
from lq.exchange.replay import ReplaySource
from lq.exchange.server import LocalExchange
from lq.exchange.simulator import SimulatorSource
from lq.exchange.source import Source

__all__ = ["add_parser", "build_exchange", "run"]

log = logging.getLogger("lq.exchange.cli")


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "none", "0"):
        return None
    return float(text)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``exchange`` sub-command to an ``argparse`` sub-parsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "exchange",
        help="run the local Binance-compatible exchange (replay or simulation)",
        description="A local Binance-compatible exchange: WebSocket streams and REST on one port.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="recorded frame files to replay")
    p.add_argument("--speed", type=_speed, default=1.0, help="1 = real time, 'max' = full speed")
    p.add_argument("--loop", action="store_true", help="replay: start again at the end")
    p.add_argument("--retime", action="store_true", help="replay: shift times to now")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="simulator: comma-separated")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.add_argument("--rate", type=float, default=10.0, help="simulator: trades/s per symbol")
    p.add_argument("--max-connection-age", type=float, default=None, metavar="SECONDS")
    p.add_argument("--no-shutdown-notice", action="store_true")
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument("--pong-timeout", type=float, default=60.0)
    p.add_argument("--inbound-limit", type=float, default=5.0)
    p.add_argument("--rest-weight-limit", type=int, default=6000)
    p.add_argument("--malformed-rate", type=float, default=0.0, help="fault: garbage frames")
    p.add_argument("--duplicate-rate", type=float, default=0.0, help="fault: duplicated frames")
    p.add_argument("--skip-rate", type=float, default=0.0, help="fault: trades kept off socket")
    p.add_argument("--out-of-order-rate", type=float, default=0.0, help="fault: reordering")
    p.add_argument("--fault-seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def build_exchange(args: argparse.Namespace) -> LocalExchange:
    """The :class:`LocalExchange` the parsed arguments describe."""
    source: Source
    if args.replay:
        source = ReplaySource(args.replay, speed=args.speed, loop=args.loop, retime=args.retime)
    else:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        source = SimulatorSource(symbols=symbols, seed=args.seed, rate=args.rate, speed=args.speed)
    faults = Faults(
        malformed_rate=args.malformed_rate,
        duplicate_rate=args.duplicate_rate,
        skip_rate=args.skip_rate,
        out_of_order_rate=args.out_of_order_rate,
        seed=args.fault_seed,
    )
    return LocalExchange(
        source=source,
        host=args.host,
        port=args.port,
        ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout,
        max_connection_age=args.max_connection_age,
        shutdown_notice=not args.no_shutdown_notice,
        inbound_limit=args.inbound_limit,
        rest_weight_limit=args.rest_weight_limit,
        faults=faults,
    )


async def _serve(ex: LocalExchange) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ex.start()
    log.info("lq exchange: WebSocket %s  REST %s", ex.ws_url, ex.rest_url)
    try:
        await stop.wait()
    finally:
        await ex.stop()
        log.info("lq exchange stopped")


def run(args: argparse.Namespace) -> int:
    """Run the exchange until SIGINT/SIGTERM; returns the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ex = build_exchange(args)
    asyncio.run(_serve(ex))  # a CLI entry point, not library code: owns the loop
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="lq")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    raise SystemExit(ns.func(ns))
