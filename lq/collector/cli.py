"""``lq collect``: run the collector until SIGINT/SIGTERM (flushes and exits cleanly).

Before anything starts, :mod:`lq.collector.preflight` checks the stream names and, on a live
endpoint, the symbols against ``exchangeInfo``, and decides the ``exchange`` label of the
stored rows: with ``--ws-url`` it is what the endpoint says it is (an lq exchange says
``local`` or ``replay``), or ``--exchange-label``; never ``binance`` for a non-Binance host.

Exit codes: 0 stopped cleanly (everything received is stored); 2 a clear error (bad option,
another writer, the feed gave up); 3 stopped while not storing, with every event it could not
store in the spill directory (re-imported by the next start); 4 events were lost (neither the
database nor the spill took them; the last log line says how many).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from lq.argtypes import seconds_arg, speed_arg
from lq.config import Settings, check_source, parse_duration
from lq.signals import stop_requested

__all__ = ["add_parser", "collector_from_args", "run"]

log = logging.getLogger("lq.collect")


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """The flags shared by ``lq collect`` and ``lq dashboard``."""
    p.add_argument(
        "--source",
        help="live (Binance, the default), local (simulator on 127.0.0.1) or replay:FILE",
    )
    p.add_argument(
        "--symbols",
        action="append",
        metavar="[VENUE:]SYMBOLS",
        help="comma-separated symbols, optionally after their venue: BTCUSDT,ETHUSDT or "
        "binance:BTCUSDT,ETHUSDT; repeat for several venues in one collector, e.g. "
        "--symbols binance:BTCUSDT --symbols coinbase:BTC-USD (default from config)",
    )
    p.add_argument(
        "--venue",
        help="the venue of --symbols lists without a VENUE: prefix (default binance; "
        "binance, coinbase, kraken, okx, ...)",
    )
    p.add_argument(
        "--channels",
        help="comma-separated streams: trade, aggTrade, bookTicker, depth@100ms, kline_1m ...",
    )
    p.add_argument("--endpoint", help="live endpoint preset: spot, spot-data, us, usdm")
    p.add_argument("--ws-url", help="override the WebSocket base URL (e.g. an `lq exchange`)")
    p.add_argument("--rest-url", help="override the REST base URL used for backfill")
    p.add_argument(
        "--exchange-label",
        help="the exchange column for stored rows (default: what the endpoint is: binance, "
        "local or replay; required for an endpoint lq cannot identify)",
    )
    p.add_argument("--seed", type=int, default=7, help="local: simulator seed")
    p.add_argument("--rate", type=float, default=None, help="local: mean trades/s per symbol")
    p.add_argument(
        "--speed",
        default=1.0,
        type=speed_arg,
        help="local/replay: 1 = real time, 'max' = as fast as possible",
    )
    p.add_argument("--loop", action="store_true", help="replay: start again at the end")
    p.add_argument(
        "--retime", action="store_true", help="replay: shift times so the replay looks live"
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "collect",
        help="stream market data into the database (one process per database)",
        description="Feed -> store. With no arguments: live Binance spot, BTCUSDT and ETHUSDT trades.",
    )
    p.add_argument(
        "--db", metavar="PATH", help="the SQLite database (default: store.db from `lq config`)"
    )
    add_source_arguments(p)
    p.add_argument(
        "--record", metavar="FILE", help="also write every raw frame to FILE (.gz compresses)"
    )
    p.add_argument(
        "--retention", help="keep this much tick history (e.g. 24h; default store.retention_ticks)"
    )
    p.add_argument(
        "--duration",
        type=seconds_arg,
        default=None,
        metavar="SECONDS",
        help="stop after this long (seconds, or 90s, 10m, 2h)",
    )
    p.add_argument("--no-alerts", action="store_true", help="do not evaluate alert rules")
    p.add_argument(
        "--spill-dir",
        metavar="DIR",
        help="where events wait while the database cannot be written (default <db>.spill/)",
    )
    p.add_argument(
        "--no-forecasts", action="store_true", help="do not score deployed forecast models"
    )
    return p


def feeds_from_args(args: argparse.Namespace, settings: Settings) -> list[Any]:
    """The feeds ``--symbols [VENUE:]A,B`` (repeatable), ``--venue`` and the config's
    ``[[collector.feeds]]`` ask for, one :class:`~lq.collector.core.FeedSpec` per venue."""
    from lq.collector.core import FeedSpec
    from lq.errors import ValidationError
    from lq.venues.registry import DEFAULT_VENUE, get_venue, venue_names

    cs = settings.collector
    default_venue = get_venue(getattr(args, "venue", None) or DEFAULT_VENUE).name
    channels = tuple(
        c.strip() for c in (args.channels.split(",") if args.channels else cs.channels) if c.strip()
    )
    lists = args.symbols
    if isinstance(lists, str):
        lists = [lists]
    if not lists:
        if cs.feeds:
            return [FeedSpec(**dict(f)) for f in cs.feeds]
        if default_venue == DEFAULT_VENUE:
            lists = [",".join(cs.symbols)]
        else:
            lists = [",".join(get_venue(default_venue).default_symbols)]
    known = set(venue_names())
    order: list[str] = []
    by_venue: dict[str, list[str]] = {}
    for text in lists:
        venue = default_venue
        head, sep, tail = text.partition(":")
        if sep and head.strip().lower() in known:
            venue, text = head.strip().lower(), tail
        elif sep:
            raise ValidationError(
                "--symbols",
                text,
                f"unknown venue {head!r}; expected one of {', '.join(sorted(known))}",
            )
        symbols = [s.strip() for s in text.split(",") if s.strip()]
        if not symbols:
            raise ValidationError("--symbols", text, "no symbols given")
        if venue not in by_venue:
            order.append(venue)
            by_venue[venue] = []
        by_venue[venue].extend(s for s in symbols if s not in by_venue[venue])
    check = {v: getattr(get_venue(v), "check_channels", None) for v in order}

    def chans(v: str) -> tuple[str, ...]:
        # --channels applies to every venue (one it lacks is refused there); the config's
        # collector.channels default is Binance's
        fn = check[v]
        if args.channels and fn is not None:
            return tuple(fn(channels))
        return channels if v == "binance" else ("trade",)

    return [FeedSpec(venue=v, symbols=tuple(by_venue[v]), channels=chans(v)) for v in order]


def collector_from_args(args: argparse.Namespace, settings: Settings) -> Any:
    from lq.collector import Collector

    cs = settings.collector
    source = args.source or cs.source
    feeds = feeds_from_args(args, settings)
    if len(feeds) != 1 or feeds[0].venue != "binance" or feeds[0].label or feeds[0].ws_url:
        return _multi_collector(args, settings, source, feeds)
    symbols = [s.strip().upper() for s in feeds[0].symbols]
    channels = list(feeds[0].channels)
    from lq.collector.preflight import check_channels, preflight

    check_channels(channels, symbols)  # before any exchange or connection is started
    check_source(source)
    if args.exchange_label is not None and not args.exchange_label.strip():
        from lq.errors import ValidationError

        raise ValidationError("--exchange-label", args.exchange_label, "must not be empty")
    pre = preflight(
        source=source,
        endpoint=args.endpoint or cs.endpoint,
        symbols=symbols,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        exchange_label=args.exchange_label,
    )
    if source == "live" and pre.exchange_label != "binance":
        log.info("rows from %s are labelled %r", args.ws_url or args.rest_url, pre.exchange_label)
    retention = getattr(args, "retention", None) or settings.store.retention_ticks
    simulator: dict[str, Any] = {"seed": args.seed, "speed": args.speed}
    if args.rate is not None:
        simulator["rate"] = args.rate
    return Collector(
        db=settings.db,
        source=source,
        symbols=symbols,
        channels=channels,
        endpoint=args.endpoint or cs.endpoint,
        ws_url=args.ws_url,
        rest_url=pre.rest_url,
        exchange_label=pre.exchange_label or None,
        flush_interval=parse_duration(cs.flush_interval, field="collector.flush_interval"),
        status_interval=parse_duration(cs.status_interval, field="collector.status_interval"),
        retention_ticks=parse_duration(retention, field="retention") if retention else None,
        purge_every=parse_duration(settings.store.purge_every, field="store.purge_every"),
        record=getattr(args, "record", None),
        simulator=simulator,
        replay={"speed": args.speed, "loop": args.loop, "retime": args.retime},
        # historicalTrades needs the key on usdm/us; it comes only from the env or the file
        client_options={"api_key": settings.binance.api_key} if settings.binance.api_key else None,
        spill_dir=getattr(args, "spill_dir", None) or cs.spill_dir or None,
        max_buffer=cs.max_buffer,
    )


def _multi_collector(
    args: argparse.Namespace, settings: Settings, source: str, feeds: list[Any]
) -> Any:
    """Several venues (or a configured feed table): one collector, one writer, one status
    row per feed. ``--ws-url``/``--rest-url``/``--exchange-label`` name one endpoint, so they
    apply only to a single feed; per-feed URLs and labels go in ``[[collector.feeds]]``."""
    from dataclasses import replace

    from lq.collector import Collector
    from lq.collector.preflight import check_channels
    from lq.errors import ValidationError

    cs = settings.collector
    check_source(source)
    single = len(feeds) == 1
    for flag in ("ws_url", "rest_url", "exchange_label"):
        if getattr(args, flag, None) and not single:
            raise ValidationError(
                f"--{flag.replace('_', '-')}",
                getattr(args, flag),
                "names one endpoint; with several venues put ws_url/rest_url/label in each "
                "[[collector.feeds]] table of the config file",
            )
    out = []
    for f in feeds:
        if single:
            f = replace(
                f,
                ws_url=f.ws_url or args.ws_url,
                rest_url=f.rest_url or args.rest_url,
                label=f.label or args.exchange_label,
            )
        if f.venue == "binance":
            check_channels(list(f.channels), [s.upper() for s in f.symbols])
        if source == "live" and (f.ws_url or f.rest_url) and not f.label:
            raise ValidationError(
                f"feeds[{f.venue}]",
                f.ws_url or f.rest_url,
                "an endpoint that is not the venue's own needs a label (label = ... in "
                "[[collector.feeds]], or --exchange-label): rows are never labelled as live "
                "data from an unknown host",
            )
        out.append(f)
    retention = getattr(args, "retention", None) or settings.store.retention_ticks
    simulator: dict[str, Any] = {"seed": args.seed, "speed": args.speed}
    if args.rate is not None:
        simulator["rate"] = args.rate
    return Collector(
        db=settings.db,
        source=source,
        feeds=out,
        endpoint=args.endpoint or cs.endpoint,
        flush_interval=parse_duration(cs.flush_interval, field="collector.flush_interval"),
        status_interval=parse_duration(cs.status_interval, field="collector.status_interval"),
        retention_ticks=parse_duration(retention, field="retention") if retention else None,
        purge_every=parse_duration(settings.store.purge_every, field="store.purge_every"),
        record=getattr(args, "record", None),
        simulator=simulator,
        replay={"speed": args.speed, "loop": args.loop, "retime": args.retime},
        client_options={"api_key": settings.binance.api_key} if settings.binance.api_key else None,
    )


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    collector = collector_from_args(args, settings)
    task = collector.start()
    alerts = None
    if not getattr(args, "no_alerts", False):
        from lq.alerts.engine import AlertEngine

        # alert rules are evaluated here, on every tick, so they fire with no dashboard open
        alerts = AlertEngine.attach(collector, settings)
        alerts.start()
    forecasts = None
    if not getattr(args, "no_forecasts", False):
        from lq.forecast.hook import ForecastHook

        # deployed models score every closed bar here; their forecasts feed "forecast" rules
        forecasts = ForecastHook.attach(collector)
        if alerts is not None:
            forecasts.subscribe(alerts.on_event)
        forecasts.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if stop_requested():  # a SIGTERM while it was starting
        stop.set()
    waiter = loop.create_task(stop.wait())
    await asyncio.wait({task, waiter}, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
    if forecasts is not None:
        await forecasts.stop()  # pending forecasts are stored first
    if alerts is not None:
        await alerts.stop()  # pending firings are stored and delivered first
    await collector.stop()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    s = collector.stats
    print(
        f"stored {s.trades_new:,} new trades ({collector.duplicates:,} duplicates ignored, "
        f"{s.dead_letters:,} dead letters) in {settings.db}"
    )
    if collector.exit_code:
        print(
            f"NOT STORED: {s.events_spilled:,} events spilled to {collector.spill_dir} "
            f"(re-imported at the next start), {s.events_lost:,} lost"
        )
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return int(collector.exit_code)


def _check_paths(args: argparse.Namespace, settings: Settings) -> None:
    """A database or recording in a folder that does not exist is a typo far more often than
    a wish: refuse it (the default database's folder is created)."""
    from pathlib import Path

    from lq.config import default_db
    from lq.errors import LqError

    db = Path(settings.db).expanduser()
    wanted = [("--db", db)] if db != default_db() else []
    if getattr(args, "record", None):
        wanted.append(("--record", Path(args.record).expanduser()))
    for flag, path in wanted:
        if path.is_dir():
            raise LqError(f"{flag} {path} is a directory; give a file name inside it")
        if not path.parent.is_dir():
            raise LqError(
                f"{flag} {path}: the folder {path.parent} does not exist; create it first "
                f"(mkdir -p {path.parent}) or check the path"
            )


def run(args: argparse.Namespace, settings: Settings) -> int:
    _check_paths(args, settings)
    return asyncio.run(_main(args, settings))
