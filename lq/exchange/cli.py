"""``lq exchange``: run the local Binance-compatible exchange until SIGINT/SIGTERM.

The lead wires it into ``lq/cli.py``::

    from lq.exchange import cli as exchange_cli
    exchange_cli.add_parser(subparsers)      # registers "exchange", sets func=exchange_cli.run
"""

from __future__ import annotations

import argparse
import asyncio
import errno
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
    p.add_argument(
        "--port",
        type=port_arg,
        default=0,
        help="0 picks a free port (default); several venues take PORT, PORT+1, ... in order",
    )
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


_BINANCE_ONLY = {
    "max_connection_age": None,
    "no_shutdown_notice": False,
    "shutdown_grace": 5.0,
    "inbound_limit": 5.0,
    "rest_weight_limit": 6000,
}
"""Flags only the Binance imitation has, with their defaults: refused (not ignored) when a
venue without them is served."""


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(
        malformed_rate=args.malformed_rate,
        duplicate_rate=args.duplicate_rate,
        skip_rate=args.skip_rate,
        out_of_order_rate=args.out_of_order_rate,
        seed=args.fault_seed,
    )


def _binance_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "ping_interval": args.ping_interval,
        "pong_timeout": args.pong_timeout,
        "max_connection_age": args.max_connection_age,
        "shutdown_notice": not args.no_shutdown_notice,
        "inbound_limit": args.inbound_limit,
        "rest_weight_limit": args.rest_weight_limit,
        "shutdown_grace": args.shutdown_grace,
    }


def build_exchange(args: argparse.Namespace) -> Any:
    """The :class:`LocalExchange` the parsed arguments describe (a
    :class:`~lq.exchange.multi.LocalVenues` for several venues or a non-Binance one).

    Every flag applies to every venue served: the host, the fault rates, the pings; ``--port
    N`` with several venues gives them N, N+1, ... in the order listed (``0``: free ports).
    A flag only the Binance imitation has (``--max-connection-age``, ``--inbound-limit``...)
    is refused when another venue is served, never ignored."""
    from lq.errors import ValidationError

    source: Source
    faults = _faults(args)
    if args.replay and (args.symbols or (args.venue or "binance").lower() != "binance"):
        raise ValidationError(
            "--replay", " ".join(args.replay), "replays Binance recordings only: drop "
            "--venue/--symbols, or serve other venues from the simulator (without --replay)",
        )  # fmt: skip
    lists = [] if args.replay else venue_lists(args)
    if lists and (len(lists) > 1 or lists[0][0] != "binance"):
        from lq.exchange.multi import LocalVenues

        others = [v for v, _ in lists if v != "binance"]
        for name, default in _BINANCE_ONLY.items():
            if getattr(args, name, default) != default:
                flag = "--" + name.replace("_", "-")
                raise ValidationError(
                    flag, getattr(args, name), f"only the binance imitation has it, and "
                    f"{', '.join(others)} is served too: drop {flag}, or serve binance alone",
                )  # fmt: skip
        options: dict[str, dict[str, Any]] = {}
        for i, (venue, _) in enumerate(lists):
            common = {
                "host": args.host,
                "port": args.port + i if args.port else 0,
                "faults": faults,
            }
            if venue == "binance":
                options[venue] = {**_binance_options(args), **common}
            else:
                options[venue] = {
                    "ping_interval": args.ping_interval,
                    "pong_timeout": args.pong_timeout,
                    **common,
                }
        if args.port and args.port + len(lists) - 1 > 65535:
            raise ValidationError(
                "--port", args.port, f"the {len(lists)} venues take consecutive ports from it: "
                f"choose one <= {65536 - len(lists)} (or --port 0 for free ports)",
            )  # fmt: skip
        return LocalVenues(
            lists,
            seed=args.seed,
            rate=args.rate,
            speed=args.speed,
            exchange_options=options,
        )
    if args.replay:
        source = ReplaySource(args.replay, speed=args.speed, loop=args.loop, retime=args.retime)
    else:
        symbols = lists[0][1]
        source = SimulatorSource(symbols=symbols, seed=args.seed, rate=args.rate, speed=args.speed)
    return LocalExchange(
        source=source, host=args.host, port=args.port, faults=faults, **_binance_options(args)
    )


async def _serve(ex: Any, host: str = "127.0.0.1") -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await ex.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        from lq.errors import LqError

        port = getattr(exc, "lq_port", None) or getattr(ex, "port", None)
        raise LqError(
            f"port {port} on {host} is already in use (another lq exchange or server?): "
            "choose another with --port N, or --port 0 for a free one"
        ) from None
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
    asyncio.run(_serve(ex, args.host))  # a CLI entry point, not library code: owns the loop
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="lq")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    raise SystemExit(ns.func(ns))
