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

from lq.argtypes import port_arg, speed_arg
from lq.exchange.faults import Faults
from lq.exchange.replay import ReplaySource
from lq.exchange.simulator import SimulatorSource
from lq.exchange.source import Source
from lq.venues.binance.local.server import LocalExchange

__all__ = ["add_parser", "build_exchange", "run"]

log = logging.getLogger("lq.exchange.cli")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``exchange`` sub-command to an ``argparse`` sub-parsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "exchange",
        help="run the local Binance-compatible exchange (replay or simulation)",
        description="A local Binance-compatible exchange: WebSocket streams and REST on one port.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_arg, default=0, help="0 picks a free port (default)")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="recorded frame files to replay")
    p.add_argument("--speed", type=speed_arg, default=1.0, help="1 = real time, 'max' = full speed")
    p.add_argument("--loop", action="store_true", help="replay: start again at the end")
    p.add_argument("--retime", action="store_true", help="replay: shift times to now")
    p.add_argument(
        "--symbols",
        action="append",
        metavar="[VENUE:]SYMBOLS",
        help="simulator: comma-separated (default BTCUSDT,ETHUSDT), optionally after a venue; "
        "repeat for several venues, each served on its own port: --symbols binance:BTCUSDT "
        "--symbols coinbase:BTC-USD --symbols okx:BTC-USDT",
    )
    p.add_argument("--venue", help="venue of --symbols lists without a prefix (default binance)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.add_argument("--rate", type=float, default=10.0, help="simulator: trades/s per symbol")
    p.add_argument("--max-connection-age", type=float, default=None, metavar="SECONDS")
    p.add_argument("--no-shutdown-notice", action="store_true")
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="after serverShutdown keep the connection open this long, so a client can open "
        "its replacement (default 5)",
    )
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


def venue_lists(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``[(venue, symbols)]`` from ``--symbols [VENUE:]A,B`` (repeatable) and ``--venue``."""
    from lq.errors import ValidationError
    from lq.venues.registry import DEFAULT_VENUE, get_venue, venue_names

    default = get_venue(getattr(args, "venue", None) or DEFAULT_VENUE).name
    lists = args.symbols if isinstance(args.symbols, list) else [args.symbols or ""]
    if lists == [""] or not lists:
        lists = [
            "BTCUSDT,ETHUSDT"
            if default == "binance"
            else ",".join(get_venue(default).default_symbols)
        ]
    known = set(venue_names())
    out: dict[str, list[str]] = {}
    for text in lists:
        venue = default
        head, sep, tail = text.partition(":")
        if sep:
            if head.strip().lower() not in known:
                raise ValidationError(
                    "--symbols", text, f"unknown venue {head!r}; expected one of {sorted(known)}"
                )
            venue, text = head.strip().lower(), tail
        syms = get_venue(venue).normalize_symbols([x for x in text.split(",") if x.strip()])
        if not syms:
            raise ValidationError("--symbols", text, "no symbols given")
        out.setdefault(venue, []).extend(x for x in syms if x not in out[venue])
    return list(out.items())


def build_exchange(args: argparse.Namespace) -> Any:
    """The :class:`LocalExchange` the parsed arguments describe (a
    :class:`~lq.exchange.multi.LocalVenues` for several venues or a non-Binance one)."""
    source: Source
    lists = [] if args.replay else venue_lists(args)
    if lists and (len(lists) > 1 or lists[0][0] != "binance"):
        from lq.exchange.multi import LocalVenues

        return LocalVenues(
            lists,
            seed=args.seed,
            rate=args.rate,
            speed=args.speed,
            exchange_options={
                "binance": {
                    "ping_interval": args.ping_interval,
                    "pong_timeout": args.pong_timeout,
                    "max_connection_age": args.max_connection_age,
                    "shutdown_notice": not args.no_shutdown_notice,
                    "inbound_limit": args.inbound_limit,
                    "rest_weight_limit": args.rest_weight_limit,
                    "shutdown_grace": args.shutdown_grace,
                }
            },
        )
    if args.replay:
        source = ReplaySource(args.replay, speed=args.speed, loop=args.loop, retime=args.retime)
    else:
        symbols = lists[0][1]
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
        shutdown_grace=args.shutdown_grace,
    )


async def _serve(ex: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ex.start()
    if hasattr(ex, "urls"):
        for venue, (ws, rest) in ex.urls().items():
            log.info("lq exchange %s: WebSocket %s  REST %s", venue, ws, rest)
            print(f"{venue}: WebSocket {ws}  REST {rest}", flush=True)
    else:
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
