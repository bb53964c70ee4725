"""The ``lq`` command: a thin shell over library functions.

Each subcommand lives with its subsystem where it has real options of its own
(``lq.exchange.cli``, ``lq.collector.cli``...); this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from lq import __version__
from lq.config import Settings, config_path, load_settings, parse_duration
from lq.errors import LqError

__all__ = ["io_error_message", "main"]

log = logging.getLogger("lq")

Handler = Callable[[argparse.Namespace, Settings], int]


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", metavar="PATH", help="the SQLite database (default: store.db from `lq config`)"
    )


# -- lq config ---------------------------------------------------------------------------
def _config(args: argparse.Namespace, settings: Settings) -> int:
    path = args.config or config_path()  # --config FILE, else $LQ_CONFIG or the user's
    print(f"# effective settings (file: {path}; secrets masked)")
    print(settings.to_toml(mask_secrets=True))
    return 0


# -- lq purge ----------------------------------------------------------------------------
def _purge(args: argparse.Namespace, settings: Settings) -> int:
    from lq.errors import WriterLockedError
    from lq.store import Writer, writer_pid
    from lq.store.retention import purge, request_purge

    older = parse_duration(args.older_than, field="--older-than")
    cutoff = int((time.time() - older) * 1e6)
    pid = writer_pid(settings.db)
    by = ""
    opts = {
        "what": args.what,
        "vacuum": args.vacuum,
        "include_imported": args.include_imported,
        "count_kept": not args.include_imported,
    }
    if pid is not None:  # the collector is the one writer: it runs the purge for us
        res = request_purge(settings.db, cutoff, **opts)
        by = f" by the running collector (pid {pid})"
    else:
        try:
            with Writer(settings.db, source="purge") as w:
                res = purge(w, cutoff, **opts)
        except WriterLockedError:  # a collector started meanwhile
            res = request_purge(settings.db, cutoff, **opts)
            by = " by the running collector"
    deleted = ", ".join(f"{k}: {v:,}" for k, v in res.deleted.items())
    too = " (imported rows too)" if args.include_imported else ""
    print(
        f"purged {args.what} older than {args.older_than}{too}{by} ({deleted}); "
        f"file {res.bytes_before:,} -> {res.bytes_after:,} bytes in {res.seconds:.2f} s"
    )
    if res.kept_imported:
        kept = ", ".join(f"{k}: {v:,}" for k, v in res.kept_imported.items())
        print(
            f"kept {sum(res.kept_imported.values()):,} imported rows older than "
            f"{args.older_than} ({kept}); `lq purge --include-imported` deletes them too"
        )
    return 0


# -- lq export ---------------------------------------------------------------------------
def _export(args: argparse.Namespace, settings: Settings) -> int:
    from lq.store import Store
    from lq.store.export import export, format_for
    from lq.store.reader import to_us_range

    format_for(args.out, args.format)  # a bad file name fails before the database is opened
    to_us_range(args.start, args.end, fields=("--start", "--end"))  # so does an empty range
    if not settings.db.exists():
        from lq.errors import StoreError

        raise StoreError(f"{settings.db}: no such database (choose one with --db PATH)")
    with Store(settings.db, archive=settings.store.archive or None) as store:
        n = export(
            store,
            args.kind,
            args.symbol,
            args.out,
            fmt=args.format,
            interval=args.interval,
            start=args.start,
            end=args.end,
            exchange=args.exchange,
        )
    what = args.kind.replace("_", " ")
    if n == 0:
        rng = f" between {args.start or 'the start'} and {args.end or 'the end'}"
        print(f"wrote 0 rows to {args.out}: no {what} of {args.symbol.upper()}{rng}")
    else:
        print(f"wrote {n:,} rows of {what} to {args.out}")
    return 0


# -- lq status ---------------------------------------------------------------------------
_COUNTED = (
    "ticks",
    "bars_1s",
    "bars_1m",
    "klines",
    "book_tickers",
    "agg_trades",
    "gaps",
    "dead_letters",
)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _feed_line(st: dict, now: float) -> tuple[str, str]:
    """One feed's line, and what keeps it from counting as storing ("" when it is live,
    storing and its report fresh): named with the feed's label, for the health line."""
    from lq.collector.health import STORING_FRESH_S

    label = st.get("exchange")
    age = now - int(st.get("updated_ts") or 0) / 1e6
    state = str(st.get("state", "?"))
    feed_state = str(st.get("feed_state") or state)
    storage = st.get("storage") or ("storing" if state == "live" else "not storing")
    fresh = age <= STORING_FRESH_S
    stopped = state == "stopped"
    parts = [f"feed {label} ({st.get('source')}): {state}"]
    if stopped:  # its last report, written as it stopped: not a silence to be explained
        parts[0] += f" {_age(age)} ago"
    if stopped and storage == "storing":
        parts.append("everything it received was stored")
    elif storage == "storing":
        parts.append("storing")
    else:
        since = st.get("storage_since_ts")
        when = f" for {_age(now - int(since) / 1e6)}" if since else ""
        receiving = "receiving but " if st.get("receiving") else ""
        parts.append(f"{receiving}NOT STORING{when}: {st.get('storage_reason') or state}")
    buffered, spilled = int(st.get("buffered_events") or 0), int(st.get("spilled_events") or 0)
    lost = int(st.get("lost_events") or 0)
    if buffered or spilled or lost:
        parts.append(
            f"{buffered:,} events in memory, {spilled:,} in {st.get('spill_dir', 'the spill')}"
            f", {lost:,} lost"
        )
    last = st.get("last_commit_ts")
    if last:
        parts.append(f"last commit {_age(now - int(last) / 1e6)} ago")
    if not stopped:
        parts.append(f"updated {_age(age)} ago" + ("" if fresh else " (STALE)"))
    if stopped:
        problem = f"{label} stopped {_age(age)} ago (start `lq collect` to store again)"
    elif not fresh:
        problem = f"{label}: its report is {_age(age)} old (is its collector running?)"
    elif feed_state not in ("live", "not storing"):
        problem = f"{label} not connected ({feed_state})"
    elif storage != "storing" or state != "live":
        problem = f"{label} connected but not storing: {st.get('storage_reason') or state}"
    else:
        problem = ""
    return " · ".join(parts), problem


def _books_line(st: dict, now: float) -> str:
    """The order books' health of a feed that collects depth ("" when it does not)."""
    books = st.get("books")
    if not isinstance(books, dict) or not books:
        return ""
    parts = []
    for sym, b in books.items():
        n = int(b.get("resyncs") or 0)
        text = f"{sym} {'synced' if b.get('synced') else 'NOT SYNCED'}, {n} resync{'s' * (n != 1)}"
        if b.get("last_break_ts"):
            age = _age(now - int(b["last_break_ts"]) / 1e6)
            text += f" (last: {b.get('last_break_reason')}, {age} ago)"
        if b.get("crossed"):
            text += f", {b['crossed']} crossed"
        parts.append(text)
    return "books:    " + "; ".join(parts)


QUIET_S = 300.0
"""A symbol whose newest stored trade is this much older than its feed's newest one is not
being stored, though the feed is (a stuck subscription, a symbol the venue stopped)."""


def _symbols_line(db: Any, st: dict, now: float) -> tuple[str, list[str]]:
    """The age of each symbol's newest stored trade for a live feed, and a problem for each
    symbol that has gone quiet while the feed stores the others (health is per symbol)."""
    import sqlite3

    from lq.store.sqlite import connect_reader

    label, symbols = st.get("exchange"), list(st.get("symbols") or [])
    if not symbols:
        return "", []
    last: dict[str, int | None] = {}
    try:
        conn = connect_reader(db)
        try:
            for sym in symbols:
                row = conn.execute(
                    "SELECT ts FROM ticks WHERE exchange = ? AND symbol = ?"
                    " ORDER BY trade_id DESC LIMIT 1",
                    (label, sym),
                ).fetchone()
                last[sym] = None if row is None else int(row[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return "", []
    seen = [t for t in last.values() if t is not None]
    if not seen:
        return "", []  # a feed without trade channels, or nothing traded yet
    newest = max(seen)
    parts, quiet = [], []
    started = st.get("started_ts")
    up = (now - int(started) / 1e6) if started else 0.0
    for sym, t in last.items():
        if t is None:
            parts.append(f"{sym} none yet")
            if up > QUIET_S:  # the others store, this one never did since the feed started
                parts[-1] += " (QUIET)"
                quiet.append(
                    f"{label} {sym}: no trade stored in the {_age(up)} since the feed started "
                    "while it stores its other symbols"
                )
            continue
        behind = (newest - t) / 1e6
        parts.append(f"{sym} {_age(max(0.0, now - t / 1e6))}")
        if behind > QUIET_S:
            parts[-1] += " (QUIET)"
            quiet.append(
                f"{label} {sym}: no trade stored for {_age(behind)} while the feed stores "
                "its other symbols"
            )
    return "  last trade: " + ", ".join(parts), quiet


def _utc(us: int) -> str:
    """An open time in µs as ``YYYY-MM-DD HH:MM`` UTC."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(us / 1e6))


def _status(args: argparse.Namespace, settings: Settings) -> int:
    """Counts, the writer, every feed's health and the open holes. Exit 0 only while every
    feed of the collector that reported last is connected and storing (its report at most
    10 s old), else 1, with each feed that is not named by its label on the health line."""
    import sqlite3

    from lq.collector.health import STORING_FRESH_S, feed_rows
    from lq.store import Store, writer_pid
    from lq.store.provenance import imported_ranges

    now = time.time()
    with Store(settings.db) as store:
        store.conn  # noqa: B018 - a missing database is a clear error (exit 2), not a crash
        pid = writer_pid(settings.db)
        print(f"database: {settings.db} ({settings.db.stat().st_size:,} bytes)")
        print(f"writer:   {'pid ' + str(pid) if pid else 'none running'}")
        holes: list[tuple] = []
        try:
            for table in _COUNTED:
                (n,) = store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                print(f"{table + ':':14}{n:>12,}")
            holes = store.conn.execute(
                "SELECT status, exchange, symbol, kind, first_missing, last_missing, detected_ts,"
                " reason FROM gaps WHERE status IN ('found', 'unfilled')"
                " ORDER BY status, detected_ts"
            ).fetchall()
            # klines per symbol and interval (OHLC and klines imports, the kline stream): the
            # table is small (a month of 1 m klines is 44,640 rows), so one grouped scan
            for sym, iv, n, first, last in store.conn.execute(
                "SELECT symbol, interval, count(*), min(open_time), max(open_time) FROM klines"
                " GROUP BY symbol, interval ORDER BY symbol, interval"
            ):
                print(f"  klines {sym} {iv}: {n:,} from {_utc(first)} to {_utc(last)}")
            n_ranges = len(imported_ranges(store.conn))  # [] on a file older than v6
            if n_ranges:
                print(
                    f"imported: {n_ranges:,} ranges, kept by retention (lq purge --include-imported)"
                )
        except sqlite3.Error as exc:
            print(f"database unreadable: {exc}")
        rows = feed_rows(settings.db, store)
    # the feeds of the collector that reported last (its pid); rows other processes left
    # (an earlier run with other venues) are shown but not counted
    newest = max(rows, key=lambda r: int(r.get("updated_ts") or 0)) if rows else None
    current = [r for r in rows if newest is not None and r.get("pid") == newest.get("pid")]
    problems = []
    for st in rows:
        line, problem = _feed_line(st, now)
        if st in current:
            if problem:
                problems.append(problem)
        else:
            line += f" · an earlier run's (pid {st.get('pid')}), not counted"
        print(line)
        books = _books_line(st, now)
        if books:
            print(books)
        if st in current and not problem:
            sym_line, quiet = _symbols_line(settings.db, st, now)
            if sym_line:
                print(sym_line)
            problems.extend(quiet)
    if holes:
        found = sum(1 for h in holes if h[0] == "found")
        print(f"holes:    {len(holes)} open ({found} found, {len(holes) - found} unfilled)")
        for status, exch, sym, kind, lo, hi, detected, reason in holes[:20]:
            why = f": {reason}" if reason else ""
            print(
                f"  {status:<9}{exch} {sym} {kind} {lo}..{hi} ({hi - lo + 1:,} ids), "
                f"{_age(now - detected / 1e6)} old{why}"
            )
        if len(holes) > 20:
            print(f"  ... and {len(holes) - 20} more (Store.gaps() lists them all)")
    else:
        print("holes:    none open")
    if current and not problems:
        n = len(current)
        print(
            f"health:   storing (exit 0): {'every one of ' + str(n) + ' feeds' if n > 1 else 'the feed'} live and storing"
        )
        return 0
    if not current:
        print(
            f"health:   NOT STORING (exit 1): no collector is live and storing with a report "
            f"younger than {STORING_FRESH_S:.0f} s"
        )
        return 1
    print(f"health:   NOT STORING (exit 1): {'; '.join(problems)}")
    return 1


# subsystems with commands of their own: each module has add_parser(subparsers) -> parser and
# run(args) or run(args, settings) -> exit code. Only the module of the command being run is
# imported (the dashboard's pulls in plotly and statsmodels; the collector should not).
_SUBCOMMANDS = {
    "exchange": (
        "lq.exchange.cli",
        "run the local Binance-compatible exchange (replay or simulation)",
    ),
    "collect": (
        "lq.collector.cli",
        "stream market data into the database (one process per database)",
    ),
    "import": ("lq.importer", "load Binance public-data files, recordings or OHLC CSVs"),
    "dashboard": ("lq.dashboard.cli", "start the collector (if needed) and the Voila dashboard"),
    "alerts": ("lq.alerts.cli", "manage alert rules, test channels, see the history"),
    "backtest": (
        "lq.backtest.cli",
        "run the parameterised backtest notebook (once, on a schedule, or a grid)",
    ),
    "forecast": (
        "lq.forecast.cli",
        "train forecasts honestly (papermill, --every), deploy them, list runs",
    ),
    "archive": ("lq.store.archive_cli", "move closed days from SQLite into a Parquet archive"),
}


def _adapt(run: Callable[..., int]) -> Handler:
    takes_settings = len(inspect.signature(run).parameters) >= 2
    return (
        (lambda args, settings: run(args, settings))
        if takes_settings
        else (lambda args, settings: run(args))
    )


class _Parser(argparse.ArgumentParser):
    """argparse with lq's error style: one line naming the problem (an enum's choices
    included) and where the usage is, exit code 2; no usage block to scroll past."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The ``lq`` parser. With ``only``, just that subsystem's module is imported."""
    parser = _Parser(prog="lq", description="lq: live quant research workbench")
    parser.add_argument("--version", action="version", version=f"lq {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: $LQ_CONFIG or the user config dir)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    handlers: dict[str, Handler] = {}

    p = sub.add_parser("config", help="print the effective settings (secrets masked)")
    _add_db(p)
    handlers["config"] = _config

    p = sub.add_parser(
        "status",
        help="summarise a database: row counts, writer, feed health, open holes"
        " (exit 0 only while a collector is storing)",
    )
    _add_db(p)
    handlers["status"] = _status

    p = sub.add_parser(
        "purge",
        help="delete old ticks (or bars) and give the disk space back"
        " (a running collector does it for you)",
    )
    _add_db(p)
    p.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 24h, 7d")
    p.add_argument(
        "--what",
        choices=("ticks", "bars"),
        default="ticks",
        help="ticks (default: trades, book tickers, agg trades) or bars (1 s bars, klines)",
    )
    p.add_argument("--vacuum", choices=("incremental", "full", "none"), default="incremental")
    p.add_argument(
        "--include-imported",
        action="store_true",
        help="also delete rows that `lq import` or an upload brought in (kept otherwise, by"
        " this command and by the collector's automatic retention)",
    )
    handlers["purge"] = _purge

    p = sub.add_parser("export", help="write ticks, bars or book tickers to CSV or Parquet")
    _add_db(p)
    p.add_argument("kind", choices=("ticks", "bars", "book_tickers"))
    p.add_argument("symbol")
    p.add_argument("out", help="output file (.csv or .parquet)")
    p.add_argument("--format", choices=("csv", "parquet"), help="default: from the file suffix")
    p.add_argument("--interval", default="1s", help="bar interval for bars (1s, 1m, 5m, ...)")
    p.add_argument("--start", help="inclusive start time (UTC), e.g. 2024-08-08T23:55")
    p.add_argument("--end", help="exclusive end time (UTC)")
    p.add_argument(
        "--exchange",
        metavar="LABEL",
        help="the exchange label of the rows (needed when the symbol is stored under several;"
        " `lq status` lists them)",
    )
    handlers["export"] = _export

    for name, (modname, help_text) in _SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, add_help=False)  # listed; built when run
            continue
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name and modname.startswith(exc.name):
                continue  # that subsystem is not part of this build
            raise
        sp = mod.add_parser(sub)
        if not any("--db" in a.option_strings for a in sp._actions):
            _add_db(sp)
        handlers[name] = _adapt(mod.run)
    return parser, handlers


_BUILTIN = ("config", "status", "purge", "export")


_VALUED = ("--config",)  # lq's own options that take a value (the next word is not a command)


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand in ``argv``: the first word that is neither an option nor the value of
    one of lq's own options (``lq --config FILE collect`` runs ``collect``)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in _VALUED:
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_word(argv)
    only = (
        command
        if command in _SUBCOMMANDS and not {"-h", "--help"} & set(argv[: argv.index(command)])
        else None
    )
    # only the subsystem that runs is imported: `lq --help` lists every command from its
    # help text without importing arch, scipy and the forecast lab (2 s and 380 MB before)
    parser, handlers = build_parser(only if only is not None else "")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (printed, one line) or --help/--version
        return exc.code if isinstance(exc.code, int) else 2
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    db: str | None = getattr(args, "db", None)
    try:
        settings = load_settings(args.config).with_db(db)
        db = str(settings.db)
        if settings.db.is_dir():  # SQLite would say only "disk I/O error"
            from lq.errors import ValidationError

            raise ValidationError(
                "--db" if getattr(args, "db", None) else "store.db",
                db,
                "is a directory, not a database file: name the file, e.g. "
                f"--db {settings.db / 'lq.sqlite'}",
            )
        return handlers[args.command](args, settings)
    except LqError as exc:
        print(f"lq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # a file we cannot open or write: say which, and how
        log.debug("lq %s failed", args.command, exc_info=True)  # -vv shows the traceback
        print(f"lq {args.command}: error: {io_error_message(exc, db)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def io_error_message(exc: OSError | sqlite3.Error, db: str | None) -> str:
    """One line for a file-system or SQLite failure: the path, the problem, the way out."""
    text = str(exc)
    if isinstance(exc, OSError):
        path = exc.filename or db
        why = exc.strerror or text
    else:
        path, why = db, text
    readonly = isinstance(exc, PermissionError) or any(
        s in text.lower() for s in ("readonly", "read-only", "unable to open", "permission")
    )
    about_db = db is not None and (path is None or str(path).startswith(str(db)))
    if path and readonly and not about_db:
        return f"{path}: {why}: make it readable (and writable, if lq writes it) for this user"
    if path and readonly:
        target = Path(db) if db else Path(str(path))
        return (
            f"{path}: {why}. lq must be able to write the database {target} and its folder "
            f"{target.parent} (it keeps {target.name}-wal, -shm and .writer.lock beside it): "
            "make them writable for this user, or choose another file with --db PATH"
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{path}: {why} (errno {exc.errno})" if path else f"{why} (errno {exc.errno})"
    return f"{db}: SQLite error: {why}" if db else f"SQLite error: {why}"


def entry() -> None:
    """The console script. Unlike :func:`main` (callable from tests and notebooks), it may
    set process-wide signal dispositions: short commands end quietly on a closed pipe
    (``lq status | head``); long-running ones keep Python's default, so a closed pipe never
    kills a collector mid-batch."""
    argv = sys.argv[1:]
    command = _command_word(argv)
    if command in (*_BUILTIN, "alerts", "import") and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if command == "collect":  # a SIGTERM while it starts is an orderly stop, not exit 143
        from lq.signals import hold_early_stop

        hold_early_stop()
    sys.exit(main(argv))


if __name__ == "__main__":  # pragma: no cover
    entry()
