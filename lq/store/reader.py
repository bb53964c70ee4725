"""Reading the store: many readers, any process, while the collector writes.

Two engines, chosen per query:

* **SQLite's own indexes** for everything bounded by time or by id (``ticks``, ``ticks_since``,
  ``bars``, the dashboard's "new rows since" polls). DuckDB's sqlite scanner does not push
  filters down, so through it a "last five minutes" read would scan the whole table.
* **DuckDB** (the SQLite file attached read-only) for free-form analytical SQL over whole
  tables: ``Store.sql``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from lq.errors import StoreError, ValidationError
from lq.store.sqlite import connect_reader

if TYPE_CHECKING:
    from lq.store.archive import Archive
    from lq.store.book import BookHistory

__all__ = ["BAR_COLUMNS", "TICK_COLUMNS", "Store", "to_us", "to_us_range"]

TICK_COLUMNS = ["ts", "trade_id", "price", "qty", "is_buyer_maker"]
BAR_COLUMNS = ["open", "high", "low", "close", "volume", "quote_volume", "trades", "vwap"]

TimeLike: TypeAlias = int | float | str | datetime | pd.Timestamp | np.datetime64 | None


def to_us(value: TimeLike, *, field: str = "time") -> int | None:
    """A time as int64 µs since the epoch (UTC). ints are taken as µs; strings and datetimes
    without a zone are UTC; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(field, value, "expected a time, not a bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ValidationError(field, value, "time must be finite")
        return int(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValidationError(field, value, f"not a time: {exc}") from None
    if ts is pd.NaT:
        raise ValidationError(field, value, "not a time")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1000)


def to_us_range(
    start: TimeLike, end: TimeLike, *, fields: tuple[str, str] = ("start", "end")
) -> tuple[int | None, int | None]:
    """``[start, end)`` as µs (either may be None), refused in one line when it is empty:
    a start at or after the end is a typo, never "no rows"."""
    lo, hi = to_us(start, field=fields[0]), to_us(end, field=fields[1])
    if lo is not None and hi is not None and lo >= hi:
        raise ValidationError(
            fields[0],
            start,
            f"is not before {fields[1]}={end!r}: the range [{fields[0]}, {fields[1]}) is empty; "
            f"give a {fields[0]} earlier than the {fields[1]} (or swap them)",
        )
    return lo, hi


def _frame(rows: list[tuple[Any, ...]], columns: Sequence[str]) -> pd.DataFrame:
    return (
        pd.DataFrame.from_records(rows, columns=list(columns))
        if rows
        else pd.DataFrame(
            {
                c: pd.Series(dtype="float64" if c not in ("ts", "trade_id", "trades") else "int64")
                for c in columns
            }
        )
    )


class Store:
    """Read access to one lq database.

    Parameters
    ----------
    path
        The SQLite file the collector (or ``lq import``) writes.
    archive
        The Parquet archive ``lq archive`` moves closed days to (:mod:`lq.store.archive`): a
        folder or fsspec URL (``s3://bucket/prefix``); default ``<db>.archive`` when that
        folder exists; ``False`` reads SQLite alone. Reads cover archive and SQLite as one.

    Examples
    --------
    >>> store = Store("lq.sqlite")                                    # doctest: +SKIP
    >>> store.bars("BTCUSDT", "1m", start="2024-08-08 23:54")          # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        archive: str | os.PathLike[str] | Literal[False] | None = None,
    ) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._duck = None
        # the Parquet archive (lq.store.archive): None = ``<db>.archive`` if that folder
        # exists, a folder or fsspec URL, or False for SQLite alone
        self._archive_loc = archive
        self._archive: Archive | Literal[False] | None = False if archive is False else None

    @property
    def archive(self) -> Archive | None:
        """The archive read together with the SQLite tail (None: none)."""
        if self._archive is None:
            from lq.store.archive import Archive, default_location

            loc = self._archive_loc
            if not loc and not os.path.isdir(default_location(self.path)):
                self._archive = False
            else:
                self._archive = Archive(loc or default_location(self.path))
        return self._archive or None

    def _union(
        self,
        symbol: str | None,
        tables: Sequence[str],
        lo: int | None,
        hi: int | None,
        *,
        pad: int = 0,
    ) -> Store | None:
        """A Store over an in-memory copy of the archive's and the SQLite tail's rows of
        ``tables`` for ``symbol`` in the whole days covering ``[lo, hi + pad)`` (the tail's
        row winning a key in both), or None when the archive has nothing there. The caller
        runs the same query on it: same ordering, dedup and aggregation as SQLite alone.
        ``pad``: how far past ``hi`` the query looks (a kline's span, checked for finer data,
        may end after ``hi``)."""
        arch = self.archive
        if arch is None:
            return None
        from lq.store.archive import DAY_US, TABLES, archive_frame, partition_files

        sym = None if symbol is None else _symbol(symbol)
        lo = None if lo is None else lo // DAY_US * DAY_US
        hi = None if hi is None else -(-(hi + pad) // DAY_US) * DAY_US  # whole days
        if not any(partition_files(arch, t, sym, lo, hi) for t in tables):  # type: ignore[arg-type]
            return None
        from lq.store.schema import migrate

        mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        migrate(mem)
        for table in tables:
            df = archive_frame(arch, table, sym, lo, hi)  # type: ignore[arg-type]
            cols = [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]
            if not cols:
                continue
            marks = ", ".join("?" * len(cols))
            if len(df):
                df = df.astype(object).where(df.notna(), None)
                mem.executemany(
                    f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                    df[cols].itertuples(index=False, name=None),
                )
            spec = TABLES[table]
            where: list[str] = [] if sym is None else ["symbol = ?"]
            params: list[Any] = [] if sym is None else [sym]
            for op, v in ((">=", lo), ("<", hi)):
                if v is not None:
                    where.append(f"{spec.time} {op} ?")
                    params.append(v)
            if table == "ticks" and (lo is not None or hi is not None):
                bw = " AND ".join(where)
                lo_id, hi_id = self.conn.execute(
                    f"SELECT min(first_id), max(last_id) FROM bars_1s WHERE {bw}", params
                ).fetchone()
                if lo_id is None:
                    continue
                where.append("trade_id BETWEEN ? AND ?")
                params += [lo_id, hi_id]
            cond = f" WHERE {' AND '.join(where)}" if where else ""
            mem.executemany(
                f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                self.conn.execute(f"SELECT {', '.join(cols)} FROM {table}{cond}", params),
            )
        scratch = Store(self.path, archive=False)
        scratch._conn = mem
        return scratch

    # -- connections --------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_reader(self.path)
        return self._conn

    @property
    def duck(self):  # -> duckdb.DuckDBPyConnection
        if self._duck is None:
            from lq.store.duck import connect_duckdb

            if not self.path.exists():
                raise StoreError(f"{self.path}: no such database")
            self._duck = connect_duckdb(self.path)
        return self._duck

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._duck is not None:
            self._duck.close()
            self._duck = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run SQL in DuckDB over the attached file (tables: ticks, bars_1s, book_tickers, ...).

        The archive's tables are ``archive.ticks``, ``archive.bars_1s``... (Parquet, with hive
        columns ``exchange``, ``symbol`` and ``date``: filter on them to prune files)."""
        if self.archive is not None and not getattr(self, "_views", False):
            from lq.store.archive import register_views

            register_views(self.duck, self.archive)
            self._views = True
        return self.duck.execute(query, params).df() if params else self.duck.execute(query).df()

    def symbols(self) -> list[str]:
        """Symbols with stored trades, bars or klines (collected or imported), sorted."""
        out: set[str] = set()
        for table in ("bars_1s", "ticks", "klines"):
            # a skip-scan over the primary key (one index seek per symbol), not a table scan
            try:
                rows = self.conn.execute(
                    f"""WITH RECURSIVE s(sym) AS (
                            SELECT min(symbol) FROM {table}
                            UNION ALL
                            SELECT (SELECT min(symbol) FROM {table} WHERE symbol > s.sym) FROM s
                            WHERE s.sym IS NOT NULL)
                        SELECT sym FROM s WHERE sym IS NOT NULL"""
                ).fetchall()
            except sqlite3.OperationalError:  # a file older than that table
                continue
            out.update(r[0] for r in rows)
        arch = self.archive
        if arch is not None:
            from lq.store.archive import archived_symbols

            out.update(archived_symbols(arch, ("bars_1s", "ticks", "klines")))
        return sorted(out)

    def newest_bar_ts(self, symbol: str, *, exchange: str | None = None) -> int | None:
        """Open time (µs) of the newest bar of ``symbol``: its newest 1 s bar or, for a
        symbol with klines only (an OHLC or klines import), its newest kline."""
        sym = _symbol(symbol)
        ex, params = ("", [sym]) if exchange is None else (" AND exchange = ?", [sym, exchange])
        got = [
            self.conn.execute(
                f"SELECT max(ts) FROM bars_1s WHERE symbol = ?{ex}", params
            ).fetchone()[0]
        ]
        with contextlib.suppress(sqlite3.OperationalError):
            got.append(
                self.conn.execute(
                    f"SELECT max(open_time) FROM klines WHERE symbol = ?{ex}", params
                ).fetchone()[0]
            )
        have = [int(v) for v in got if v is not None]
        arch = self.archive
        if arch is not None:
            from lq.store.archive import newest_archived

            have += newest_archived(arch, sym, exchange)
        return max(have) if have else None

    def ticks(
        self,
        symbol: str,
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        exchange: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Trades of ``symbol`` with ``start <= ts < end`` (µs or any time-like), oldest first.

        Columns: ``ts`` (int64 µs UTC), ``trade_id``, ``price``, ``qty``, ``is_buyer_maker``.
        Archived days (:mod:`lq.store.archive`) are read together with the SQLite tail.
        """
        arch = self.archive
        if arch is not None:
            from lq.store.archive import archived_ticks

            lo, hi = to_us(start, field="start"), to_us(end, field="end")
            old = archived_ticks(arch, _symbol(symbol), lo, hi, exchange)
            if old is not None:  # one frame: the tail's row wins a key in both, same order
                tail = self._ticks_sqlite(symbol, start, end, exchange, None, with_exchange=True)
                df = pd.concat([old, tail], ignore_index=True)
                df = df.drop_duplicates(["exchange", "trade_id"], keep="last")
                df = df.sort_values(["ts", "trade_id"], kind="mergesort")
                if limit is not None and int(limit) >= 0:  # SQLite: a negative LIMIT is none
                    df = df.head(int(limit))
                df = df[TICK_COLUMNS].reset_index(drop=True)
                return df.astype(
                    {"ts": "int64", "trade_id": "int64", "price": "float64", "qty": "float64"}
                ).astype({"is_buyer_maker": bool})
        return self._ticks_sqlite(symbol, start, end, exchange, limit)

    def _ticks_sqlite(
        self,
        symbol: str,
        start: TimeLike,
        end: TimeLike,
        exchange: str | None,
        limit: int | None,
        *,
        with_exchange: bool = False,
    ) -> pd.DataFrame:
        cols = ["exchange", *TICK_COLUMNS] if with_exchange else TICK_COLUMNS
        cond, params = _where(symbol, start, end, exchange=exchange)
        if start is not None or end is not None:
            # ticks have no time index: the 1 s bars hold each second's trade-id range, so a
            # time range becomes a primary-key range (the time filter still applies exactly)
            lo = to_us(start, field="start")
            bcond, bparams = _where(
                symbol, None if lo is None else lo // 1_000_000 * 1_000_000, end, exchange=exchange
            )
            lo_id, hi_id = self.conn.execute(
                f"SELECT min(first_id), max(last_id) FROM bars_1s WHERE {bcond}", bparams
            ).fetchone()
            if lo_id is None:
                return _frame([], cols).astype({"is_buyer_maker": bool})
            cond += " AND trade_id BETWEEN ? AND ?"
            params += [lo_id, hi_id]
        q = f"SELECT {', '.join(cols)} FROM ticks WHERE {cond} ORDER BY ts, trade_id"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        df = _frame(self.conn.execute(q, params).fetchall(), cols)
        df["is_buyer_maker"] = df["is_buyer_maker"].astype(bool)
        return df

    def ticks_since(
        self,
        symbol: str,
        after_trade_id: int,
        *,
        exchange: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Trades of ``symbol`` with ``trade_id > after_trade_id``, by id: the incremental poll."""
        sym = _symbol(symbol)
        where, params = ["symbol = ?", "trade_id > ?"], list[Any]([sym, int(after_trade_id)])
        if exchange is not None:
            where.insert(0, "exchange = ?")
            params.insert(0, exchange)
        q = f"SELECT ts, trade_id, price, qty, is_buyer_maker FROM ticks WHERE {' AND '.join(where)} ORDER BY trade_id"
        if limit is not None:
            q += f" LIMIT {int(limit)}"
        df = _frame(self.conn.execute(q, params).fetchall(), TICK_COLUMNS)
        df["is_buyer_maker"] = df["is_buyer_maker"].astype(bool)
        return df

    def bars(
        self,
        symbol: str,
        interval: str = "1s",
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        exchange: str | None = None,
    ) -> pd.DataFrame:
        """OHLCV bars of ``symbol`` at ``interval`` ("1s", "1m", "5m", "1h", any pandas offset
        that is a whole number of seconds), aggregated from the stored 1 s bars (or from their
        1 m rollup when the interval is whole minutes). Bars are whole: the bar that contains
        ``start`` is included from its open.

        Indexed by bar open time (tz-aware UTC); columns open, high, low, close, volume,
        quote_volume, trades, vwap. Seconds without trades have no 1 s bar; coarser bars are
        built from the seconds that exist.

        Where no trades are stored, bars come from stored klines (an OHLC or klines import, or
        the kline stream) whose interval divides ``interval``: 1 m klines give 1 m bars and
        coarser, never 1 s. Every stretch of time has one source, the finest (see
        :meth:`_kline_pieces`), so a 1 h bar is exactly the 1 m bars it spans; quote volume,
        trade count and VWAP are NaN where the file did not say them.
        """
        cond, params = _where(symbol, start, end, exchange=exchange)
        from lq.analytics.bars import interval_us, resample_bars

        step = interval_us(interval)
        union = self._union(
            symbol,
            ("bars_1s", "bars_1m", "klines"),
            _floor(start, step),
            to_us(end, field="end"),
            pad=step,
        )
        if union is not None:
            with union:
                return union.bars(symbol, interval, start, end, exchange=exchange)
        if step % 1_000_000:
            raise ValidationError(
                "interval", interval, "bars are built from 1 s bars: use whole seconds"
            )
        if step == 1_000_000:
            rows = self.conn.execute(
                f"SELECT ts, {', '.join(BAR_COLUMNS)} FROM bars_1s WHERE {cond} ORDER BY ts", params
            ).fetchall()
            klines = self._kline_pieces(symbol, step, start, end, exchange)
            if klines:  # 1 s klines: a kline is never where a 1 s bar is (see _kline_pieces)
                rows = sorted([*rows, *(_piece_row(ps) for ps in klines.values())], key=_ts0)
            return resample_bars(_bars_frame(rows), step)
        # coarser bars are aggregated inside SQLite over the primary-key range, from the 1 m
        # rollup when the interval is whole minutes, so only the result rows reach Python
        # (open/close: the first/last bar of each interval); whole bars: the bar containing
        # ``start`` is included entirely
        table = "bars_1m" if step % 60_000_000 == 0 else "bars_1s"
        cond, params = _where(symbol, _floor(start, step), end, exchange=exchange)
        ticks = self.conn.execute(
            f"""
            SELECT g.ex, g.b, g.fts, g.lts, o.open, g.h, g.l, c.close, g.v, g.qv, g.n
            FROM (SELECT exchange AS ex, ts / {step} * {step} AS b, min(ts) AS fts,
                         max(ts) AS lts, max(high) AS h, min(low) AS l, sum(volume) AS v,
                         sum(quote_volume) AS qv, sum(trades) AS n
                  FROM {table} WHERE {cond} GROUP BY ex, b) AS g
            JOIN {table} AS o ON o.symbol = ? AND o.ts = g.fts AND o.exchange = g.ex
            JOIN {table} AS c ON c.symbol = ? AND c.ts = g.lts AND c.exchange = g.ex
            ORDER BY g.b
            """,
            [*params, params[0], params[0]],
        ).fetchall()
        klines = self._kline_pieces(symbol, step, start, end, exchange)
        if not klines:
            rows = [
                (r[1], r[4], r[5], r[6], r[7], r[8], r[9], r[10], _div(r[9], r[8])) for r in ticks
            ]
            return resample_bars(_bars_frame(rows), step)
        pieces: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        for r in ticks:
            pieces.setdefault((r[0], r[1]), []).append(r[2:])
        for key, piece in klines.items():
            pieces.setdefault(key, []).extend(piece)
        rows = sorted(((key[1], *_piece_row(ps)[1:]) for key, ps in pieces.items()), key=_ts0)
        return resample_bars(_bars_frame(rows), step)

    def kline_intervals(self, symbol: str) -> list[str]:
        """The kline intervals stored for ``symbol`` (a skip-scan of the primary key)."""
        try:
            rows = self.conn.execute(
                """WITH RECURSIVE s(iv) AS (
                       SELECT min(interval) FROM klines WHERE symbol = ?1
                       UNION ALL
                       SELECT (SELECT min(interval) FROM klines WHERE symbol = ?1 AND interval > s.iv)
                       FROM s WHERE s.iv IS NOT NULL)
                   SELECT iv FROM s WHERE iv IS NOT NULL""",
                (_symbol(symbol),),
            ).fetchall()
        except sqlite3.OperationalError:  # a file older than the klines table
            return []
        return [r[0] for r in rows]

    def _kline_pieces(
        self,
        symbol: str,
        step: int,
        start: TimeLike,
        end: TimeLike,
        exchange: str | None,
    ) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
        """Pieces of bars at ``step`` from stored klines: ``{(exchange, bar time): [(first
        open time, last open time, open, high, low, close, volume, quote volume, trades)]}``.

        Klines come from a kline stream, a klines file or an OHLC CSV. One is used when its
        interval divides ``step``, its open time is a multiple of that interval (so it lies
        inside one bar; Binance's weekly and monthly klines do not), and nothing finer covers
        any of its span: no 1 s / 1 m bar of collected trades and no finer kline. So every
        stretch of time has one source, the finest, and a bar combines the pieces of its time
        (trades for 23:00-23:09, 1 m klines for the rest of that hour), exactly as the finer
        bars it is made of do. Quote volume and trade count are None where a kline did not
        say them (an OHLC file without those columns)."""
        from lq.analytics.bars import interval_us

        usable = []
        for iv in self.kline_intervals(symbol):
            try:
                k = interval_us(iv)
            except ValidationError:
                continue
            if k % 1_000_000 == 0 and step % k == 0:
                usable.append((k, iv))
        out: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        finer: list[tuple[int, str]] = []
        for k, iv in sorted(usable):
            cond, params = _where(
                symbol,
                _floor(start, step),
                end,
                exchange=exchange,
                time_col="open_time",
                extra={"interval": iv},
            )
            sym = params[0]
            bars = "bars_1m" if k % 60_000_000 == 0 else "bars_1s"
            # nothing finer may cover any part of the kline's span
            unseen = [
                f"NOT EXISTS (SELECT 1 FROM {bars} AS t WHERE t.symbol = k.symbol"
                f" AND t.ts >= k.open_time AND t.ts < k.open_time + {k} AND t.exchange = k.exchange)"
            ]
            unseen += [
                "NOT EXISTS (SELECT 1 FROM klines AS f WHERE f.symbol = k.symbol AND f.interval = ?"
                f" AND f.open_time > k.open_time - {fk} AND f.open_time < k.open_time + {k}"
                f" AND f.open_time % {fk} = 0 AND f.exchange = k.exchange)"
                for fk, _fiv in finer
            ]
            rows = self.conn.execute(
                f"""
                SELECT g.ex, g.b, g.fts, g.lts, o.open, g.h, g.l, c.close, g.v, g.qv, g.n
                FROM (SELECT exchange AS ex, open_time / {step} * {step} AS b,
                             min(open_time) AS fts, max(open_time) AS lts, max(high) AS h,
                             min(low) AS l, sum(volume) AS v,
                             CASE WHEN count(quote_volume) = count(*) THEN sum(quote_volume) END AS qv,
                             CASE WHEN count(trades) = count(*) THEN sum(trades) END AS n
                      FROM klines AS k WHERE {cond} AND open_time % {k} = 0
                      AND {" AND ".join(unseen)} GROUP BY ex, b) AS g
                JOIN klines AS o ON o.symbol = ? AND o.interval = ? AND o.open_time = g.fts
                                 AND o.exchange = g.ex
                JOIN klines AS c ON c.symbol = ? AND c.interval = ? AND c.open_time = g.lts
                                 AND c.exchange = g.ex
                """,
                [*params, *(fiv for _fk, fiv in finer), sym, iv, sym, iv],
            ).fetchall()
            for r in rows:
                out.setdefault((r[0], r[1]), []).append(r[2:])
            finer.append((k, iv))
        return out

    def klines(
        self, symbol: str, interval: str, start: TimeLike = None, end: TimeLike = None
    ) -> pd.DataFrame:
        """Stored klines (from the kline stream or imported files/OHLC uploads) of ``symbol``
        at ``interval``, indexed by open time (UTC)."""
        union = self._union(
            symbol, ("klines",), to_us(start, field="start"), to_us(end, field="end")
        )
        if union is not None:
            with union:
                return union.klines(symbol, interval, start, end)
        cond, params = _where(
            symbol, start, end, time_col="open_time", extra={"interval": interval}
        )
        cols = ["ts", "open", "high", "low", "close", "volume", "quote_volume", "trades", "closed"]
        rows = self.conn.execute(
            "SELECT open_time, open, high, low, close, volume, quote_volume, trades, closed"
            f" FROM klines WHERE {cond} ORDER BY open_time",
            params,
        ).fetchall()
        df = _frame(rows, cols)
        df.index = pd.DatetimeIndex(pd.to_datetime(df["ts"], unit="us", utc=True), name="time")
        df["closed"] = df["closed"].astype(bool)
        return df

    def book_tickers(
        self,
        symbol: str,
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        exchange: str | None = None,
    ) -> pd.DataFrame:
        """Best bid/ask updates of ``symbol`` in ``[start, end)``, oldest first."""
        union = self._union(
            symbol, ("book_tickers",), to_us(start, field="start"), to_us(end, field="end")
        )
        if union is not None:
            with union:
                return union.book_tickers(symbol, start, end, exchange=exchange)
        cond, params = _where(symbol, start, end, exchange=exchange)
        rows = self.conn.execute(
            "SELECT ts, update_id, bid, bid_qty, ask, ask_qty FROM book_tickers"
            f" WHERE {cond} ORDER BY ts",
            params,
        ).fetchall()
        return _frame(rows, ["ts", "update_id", "bid", "bid_qty", "ask", "ask_qty"])

    def book(
        self,
        symbol: str,
        start: TimeLike = None,
        end: TimeLike = None,
        *,
        exchange: str = "binance",
        levels: int | None = None,
        limit: int | None = None,
    ) -> BookHistory:
        """Stored book snapshots of ``symbol`` with ``start <= ts < end``, oldest first, as
        arrays (:class:`lq.store.book.BookHistory`); ``levels`` keeps the top ``levels`` per
        side, ``limit`` the newest ``limit`` snapshots of the range."""
        union = self._union(
            symbol, ("book_snapshots",), to_us(start, field="start"), to_us(end, field="end")
        )
        if union is not None:
            with union:
                return union.book(symbol, start, end, exchange=exchange, levels=levels, limit=limit)
        from lq.store.book import decode_rows

        sym = _symbol(symbol)
        cond, params = _where(sym, start, end, exchange=exchange)
        if limit is not None:
            q = (
                "SELECT * FROM (SELECT ts, update_id, recv_ts, bids, asks FROM book_snapshots"
                f" WHERE {cond} ORDER BY ts DESC, update_id DESC LIMIT {int(limit)})"
                " ORDER BY ts, update_id"
            )
        else:
            q = (
                "SELECT ts, update_id, recv_ts, bids, asks FROM book_snapshots"
                f" WHERE {cond} ORDER BY ts, update_id"
            )
        return decode_rows(exchange, sym, self.conn.execute(q, params).fetchall(), levels)

    def book_resyncs(
        self, symbol: str | None = None, *, exchange: str | None = None
    ) -> pd.DataFrame:
        """The resync ledger: every time a local book was found wrong and rebuilt, oldest
        first (``reason``: start, gap, crossed, locked, snapshot_older_than_events)."""
        cols = [
            "exchange",
            "symbol",
            "recv_ts",
            "ts",
            "reason",
            "detail",
            "book_update_id",
            "first_id",
            "last_id",
            "prev_last_id",
        ]
        clauses, params = [], list[Any]()
        if symbol is not None:
            clauses.append("symbol = ?")
            params.append(_symbol(symbol))
        if exchange is not None:
            clauses.append("exchange = ?")
            params.append(exchange)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT {', '.join(cols)} FROM book_resyncs{where} ORDER BY recv_ts", params
        ).fetchall()
        return pd.DataFrame.from_records(rows, columns=cols)

    def feed_status(self) -> list[dict[str, Any]]:
        """The collectors' published health, one dict per exchange label."""
        import json

        rows = self.conn.execute(
            "SELECT exchange, source, updated_ts, state, pid, detail FROM feed_status"
        ).fetchall()
        return [
            {"exchange": e, "source": s, "updated_ts": u, "state": st, "pid": pid, **json.loads(d)}
            for e, s, u, st, pid, d in rows
        ]

    def gaps(self, symbol: str | None = None) -> pd.DataFrame:
        """The gap ledger: every hole the feed saw, and whether backfill filled it."""
        union = self._union(symbol, ("gaps",), None, None)
        if union is not None:
            with union:
                return union.gaps(symbol)
        q = "SELECT exchange, symbol, kind, first_missing, last_missing, status, detected_ts, updated_ts, reason FROM gaps"
        params: list[Any] = []
        if symbol is not None:
            q += " WHERE symbol = ?"
            params.append(_symbol(symbol))
        cols = [
            "exchange",
            "symbol",
            "kind",
            "first_missing",
            "last_missing",
            "status",
            "detected_ts",
            "updated_ts",
            "reason",
        ]
        return pd.DataFrame.from_records(
            self.conn.execute(q + " ORDER BY detected_ts", params).fetchall(), columns=cols
        )

    def dead_letters(self, limit: int = 1000) -> pd.DataFrame:
        rows = self.conn.execute(
            "SELECT id, recv_ts, exchange, source, reason, raw FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return pd.DataFrame.from_records(
            rows, columns=["id", "recv_ts", "exchange", "source", "reason", "raw"]
        )

    def count(self, table: str) -> int:
        if table not in _TABLES:
            raise ValidationError("table", table, f"expected one of {sorted(_TABLES)}")
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


_TABLES = {
    "ticks",
    "bars_1s",
    "bars_1m",
    "book_tickers",
    "book_snapshots",
    "book_resyncs",
    "agg_trades",
    "klines",
    "gaps",
    "dead_letters",
    "alert_rules",
    "alert_events",
    "backtest_runs",
    "feed_status",
}


def _where(
    symbol: str,
    start: TimeLike,
    end: TimeLike,
    *,
    exchange: str | None = None,
    time_col: str = "ts",
    extra: dict[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """``symbol = ? [AND extra] [AND time >= start] [AND time < end] [AND exchange = ?]``."""
    clauses, params = ["symbol = ?"], list[Any]([_symbol(symbol)])
    for col, value in (extra or {}).items():
        clauses.append(f"{col} = ?")
        params.append(value)
    lo, hi = to_us(start, field="start"), to_us(end, field="end")
    if lo is not None:
        clauses.append(f"{time_col} >= ?")
        params.append(lo)
    if hi is not None:
        clauses.append(f"{time_col} < ?")
        params.append(hi)
    if exchange is not None:
        clauses.append("exchange = ?")
        params.append(exchange)
    return " AND ".join(clauses), params


def _bars_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Bar rows as a frame; a column with unknown values (None from an OHLC import) is
    float with NaN, never object."""
    df = _frame(rows, ["ts", *BAR_COLUMNS])
    for c in ("quote_volume", "trades", "vwap"):
        if df[c].dtype == object:
            df[c] = df[c].astype("float64")
    return df


def _ts0(row: tuple[Any, ...]) -> Any:
    return row[0]


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _piece_row(pieces: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One bar from its pieces ``(first ts, last ts, open, high, low, close, volume, quote
    volume, trades)``: open of the earliest, close of the latest, sums (None if any piece's
    is unknown), VWAP = quote volume / volume."""
    first = min(pieces, key=lambda p: p[0])
    last = max(pieces, key=lambda p: p[1])
    qv = None if any(p[7] is None for p in pieces) else sum(p[7] for p in pieces)
    n = None if any(p[8] is None for p in pieces) else sum(p[8] for p in pieces)
    v = sum(p[6] for p in pieces)
    return (
        first[0],
        first[2],
        max(p[3] for p in pieces),
        min(p[4] for p in pieces),
        last[5],
        v,
        qv,
        n,
        _div(qv, v),
    )


def _floor(t: TimeLike, step: int) -> int | None:
    """``t`` rounded down to a multiple of ``step`` µs."""
    us = to_us(t, field="start")
    return None if us is None else us // step * step


def _symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValidationError("symbol", symbol, "must be a non-empty string such as 'BTCUSDT'")
    return symbol.strip().upper()
