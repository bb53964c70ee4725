"""Alert rules and events in the database: small control-plane writes.

Rules CRUD (``lq alerts add``, the dashboard's Alerts tab) does **not** take the market-data
writer lock (:class:`lq.store.Writer`): each change is one short ``BEGIN IMMEDIATE``
transaction on a plain sqlite3 connection with a busy timeout, so it works while a collector
runs (SQLite in WAL mode serialises the two writers; the collector's batches are short). The
running collector notices the change within a second (it polls ``alert_rules``).

Events are inserted by the collector's alert engine on the writer's own connection
(:func:`insert_events`, through ``Collector.run_in_writer``) with ``INSERT OR IGNORE`` on the
UNIQUE ``fired_key`` (rule id + exchange time), so a restart never stores one firing twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd

from lq.alerts.evaluate import Firing
from lq.alerts.rules import (
    Rule,
    rule_from_json,
    rule_to_json,
    validate_forecast_levels,
    validate_symbols,
)
from lq.errors import RuleError, StoreError
from lq.store.sqlite import connect_writer

__all__ = [
    "AlertEvent",
    "AlertStore",
    "StoredRule",
    "event_columns",
    "insert_events",
    "set_delivery",
]


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule as stored: its id, spec, enabled flag and times (µs)."""

    id: int
    rule: Rule
    enabled: bool
    created_ts: int
    updated_ts: int

    @property
    def name(self) -> str:
        return self.rule.name


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One stored firing: the rule as it was, the value, exchange and local times."""

    rule_id: int
    rule: Rule
    value: float
    ts: int
    local_ts: int
    severity: str
    message: str
    fired_key: str
    id: int | None = None
    recv_ts: int = 0  # local receipt time of the frame that triggered it (0: not a trade)

    @classmethod
    def from_firing(cls, f: Firing, *, local_ts: int, recv_ts: int = 0) -> AlertEvent:
        return cls(
            rule_id=f.rule_id,
            rule=f.rule,
            value=f.value,
            ts=f.ts,
            local_ts=local_ts,
            severity=f.rule.severity,
            message=f.message,
            fired_key=f.fired_key,
            recv_ts=recv_ts,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what a webhook receives."""
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "rule": self.rule.name,
            "metric": self.rule.metric,
            "symbol": self.rule.symbol,
            "condition": self.rule.condition,
            "threshold": self.rule.threshold,
            "band": list(self.rule.band) if self.rule.band else None,
            "value": self.value,
            "ts": self.ts,
            "time": pd.Timestamp(self.ts, unit="us", tz="UTC").isoformat(),
            "local_ts": self.local_ts,
            "severity": self.severity,
            "message": self.message,
        }


def _now_us() -> int:
    return time.time_ns() // 1000


def insert_events(conn: sqlite3.Connection, events: Sequence[AlertEvent]) -> list[AlertEvent]:
    """Store firings in one short transaction; returns those that were new, with their ids.

    ``fired_key`` is UNIQUE: an event already stored (a restart re-evaluating old samples)
    is ignored and not returned, so it is not delivered again either.
    """
    if not events:
        return []
    out: list[AlertEvent] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for ev in events:
            delivery = {
                ch: {"status": "stored" if ch == "dashboard" else "queued", "attempts": 0}
                for ch in ev.rule.channels
            }
            cur = conn.execute(
                "INSERT OR IGNORE INTO alert_events (rule_id, rule_spec, fired_key, value, ts,"
                " local_ts, severity, message, delivery) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ev.rule_id,
                    rule_to_json(ev.rule),
                    ev.fired_key,
                    ev.value,
                    ev.ts,
                    ev.local_ts,
                    ev.severity,
                    ev.message,
                    json.dumps(delivery),
                ),
            )
            if cur.rowcount:
                out.append(msgspec.structs.replace(ev, id=cur.lastrowid))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return out


def set_delivery(
    conn: sqlite3.Connection, event_id: int, channel: str, status: dict[str, Any]
) -> None:
    """Record one channel's delivery status on an event (one statement, autocommit)."""
    conn.execute(
        "UPDATE alert_events SET delivery = json_set(delivery, ?, json(?)) WHERE id = ?",
        (f"$.{channel}", json.dumps(status), event_id),
    )


def event_columns() -> list[str]:
    return [
        "id",
        "rule_id",
        "rule",
        "symbol",
        "metric",
        "value",
        "ts",
        "local_ts",
        "severity",
        "message",
        "delivery",
        "time",
    ]


def _row_rule(r: tuple[Any, ...]) -> StoredRule:
    return StoredRule(
        id=int(r[0]),
        rule=rule_from_json(r[1]),
        enabled=bool(r[2]),
        created_ts=int(r[3]),
        updated_ts=int(r[4]),
    )


class AlertStore:
    """Rules CRUD and event queries on one database, without the writer lock.

    Parameters
    ----------
    path
        The SQLite file (created and migrated if needed).
    known_symbols
        Symbols a rule may name (e.g. the collector's); None: symbols stored in the file,
        plus any when the file has none yet.

    Examples
    --------
    >>> s = AlertStore("lq.sqlite")                                       # doctest: +SKIP
    >>> s.add(Rule(name="btc>70k", metric="price", symbol="BTCUSDT", threshold=70e3))  # doctest: +SKIP
    """

    def __init__(
        self, path: str | os.PathLike[str], *, known_symbols: Iterable[str] | None = None
    ) -> None:
        self.path = Path(path)
        self._known = frozenset(s.upper() for s in known_symbols) if known_symbols else None
        try:
            self.conn = connect_writer(self.path)
        except sqlite3.Error as exc:
            fix = (
                ": make the database and its folder writable for this user, or choose another "
                "file with --db PATH"
                if any(w in str(exc) for w in ("readonly", "unable to open"))
                else ""
            )
            raise StoreError(f"{self.path}: cannot open for alert rules: {exc}{fix}") from exc

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None  # type: ignore[assignment]

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- rules ----------------------------------------------------------------------------
    def known_symbols(self) -> frozenset[str]:
        stored = {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT symbol FROM bars_1s UNION SELECT DISTINCT symbol FROM ticks"
            ).fetchall()
        }
        return (self._known or frozenset()) | frozenset(stored)

    def _check_labels(self, rule: Rule) -> None:
        """A labelled leg (``BTC-USD@coinbase``) names a stored exchange label or a venue
        (whose live collector labels its rows so); else RuleError listing the stored labels.
        A file with no rows yet checks nothing."""
        from lq.alerts.rules import symbol_legs
        from lq.venues.registry import venue_names

        labelled = [(s, e) for s, e in symbol_legs(rule.symbol) or () if e is not None]
        if not labelled:
            return
        stored = {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT exchange FROM bars_1s UNION SELECT DISTINCT exchange FROM ticks"
            ).fetchall()
        }
        if not stored:
            return
        for sym, ex in labelled:
            if ex not in stored and ex not in venue_names():
                raise RuleError(
                    "symbol", rule.symbol, f"unknown exchange label {ex!r} in {sym}@{ex}; "
                    f"stored labels: {', '.join(sorted(stored))}",
                )  # fmt: skip

    def _tx(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.execute(sql, tuple(params))
            self.conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.conn.execute("ROLLBACK")
            if "name" in str(exc):
                raise RuleError("name", params[0], "a rule with this name exists") from None
            raise
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return cur

    def _check_deployment(self, rule: Rule) -> None:
        """A forecast rule on a deployed model: its symbol must be the model's, and its levels
        within what the model's forecasts can be (P(up) in 0..1 for a sign model). A model not
        deployed yet is not refused: the rule waits for it."""
        if rule.metric != "forecast":
            return
        try:
            row = self.conn.execute(
                "SELECT symbol, manifest FROM forecast_models WHERE name = ?", (rule.model,)
            ).fetchone()
        except sqlite3.OperationalError:  # a file without the forecast tables
            return
        if row is None:
            return
        symbol, manifest = row
        if symbol != rule.symbol:
            raise RuleError(
                "symbol",
                rule.symbol,
                f"model {rule.model!r} forecasts {symbol}; use --symbol {symbol}",
            )
        kind = (json.loads(manifest).get("target") or {}).get("kind")
        if isinstance(kind, str):
            validate_forecast_levels(rule, kind)

    def add(self, rule: Rule, *, enabled: bool = True) -> StoredRule:
        """Validate (symbols and a forecast rule's model included) and store a new rule; a
        refused rule changes nothing."""
        validate_symbols(rule, self.known_symbols())
        self._check_labels(rule)
        self._check_deployment(rule)
        now = _now_us()
        cur = self._tx(
            "INSERT INTO alert_rules (name, spec, enabled, created_ts, updated_ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (rule.name, rule_to_json(rule), int(enabled), now, now),
        )
        return self.get(int(cur.lastrowid))  # type: ignore[arg-type]

    def update(self, ref: int | str, rule: Rule) -> StoredRule:
        """Replace a rule's spec (same id; the engine rebuilds its state)."""
        old = self.get(ref)
        validate_symbols(rule, self.known_symbols())
        self._check_labels(rule)
        self._check_deployment(rule)
        self._tx(
            "UPDATE alert_rules SET name = ?, spec = ?, updated_ts = ? WHERE id = ?",
            (rule.name, rule_to_json(rule), max(_now_us(), old.updated_ts + 1), old.id),
        )
        return self.get(old.id)

    def set_enabled(self, ref: int | str, enabled: bool) -> StoredRule:
        old = self.get(ref)
        self._tx(
            "UPDATE alert_rules SET enabled = ?, updated_ts = ? WHERE id = ?",
            (int(enabled), max(_now_us(), old.updated_ts + 1), old.id),
        )
        return self.get(old.id)

    def remove(self, ref: int | str) -> StoredRule:
        """Delete a rule (its past events stay, with the rule as it was)."""
        old = self.get(ref)
        self._tx("DELETE FROM alert_rules WHERE id = ?", (old.id,))
        return old

    def get(self, ref: int | str) -> StoredRule:
        """A rule by id (int or digits) or by name."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = self.conn.execute(
                "SELECT id, spec, enabled, created_ts, updated_ts FROM alert_rules WHERE id = ?",
                (int(ref),),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT id, spec, enabled, created_ts, updated_ts FROM alert_rules WHERE name = ?",
                (ref,),
            ).fetchone()
        if row is None:
            raise RuleError("rule", ref, "no such rule (give its id or name)")
        return _row_rule(row)

    def rules(self, *, enabled_only: bool = False) -> list[StoredRule]:
        q = "SELECT id, spec, enabled, created_ts, updated_ts FROM alert_rules"
        if enabled_only:
            q += " WHERE enabled = 1"
        return [_row_rule(r) for r in self.conn.execute(q + " ORDER BY id").fetchall()]

    def version(self) -> tuple[int, int, int]:
        """Changes whenever a rule is added, edited, enabled/disabled or removed."""
        return rules_version(self.conn)

    # -- events ---------------------------------------------------------------------------
    def events(
        self,
        *,
        rule: int | str | None = None,
        after_id: int | None = None,
        start: int | None = None,
        end: int | None = None,
        severity: str | None = None,
        limit: int | None = 1000,
    ) -> pd.DataFrame:
        """Stored firings, newest first, with the delivery status decoded."""
        return query_events(
            self.conn,
            rule_id=None if rule is None else self.get(rule).id,
            after_id=after_id,
            start=start,
            end=end,
            severity=severity,
            limit=limit,
        )

    def last_fired(self) -> dict[int, int]:
        """Rule id -> exchange time of its latest stored firing."""
        return last_fired(self.conn)


def rules_version(conn: sqlite3.Connection) -> tuple[int, int, int]:
    row = conn.execute(
        "SELECT count(*), coalesce(max(updated_ts), 0), coalesce(sum(id), 0) FROM alert_rules"
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def load_rules(conn: sqlite3.Connection) -> list[StoredRule]:
    rows = conn.execute(
        "SELECT id, spec, enabled, created_ts, updated_ts FROM alert_rules ORDER BY id"
    ).fetchall()
    return [_row_rule(r) for r in rows]


def last_fired(conn: sqlite3.Connection) -> dict[int, int]:
    rows = conn.execute("SELECT rule_id, max(ts) FROM alert_events GROUP BY rule_id").fetchall()
    return {int(r): int(t) for r, t in rows}


def query_events(
    conn: sqlite3.Connection,
    *,
    rule_id: int | None = None,
    after_id: int | None = None,
    start: int | None = None,
    end: int | None = None,
    severity: str | None = None,
    limit: int | None = 1000,
) -> pd.DataFrame:
    """Stored firings newest first (columns: :func:`event_columns`)."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if rule_id is not None:
        where.append("rule_id = ?")
        params.append(rule_id)
    if after_id is not None:
        where.append("id > ?")
        params.append(after_id)
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts < ?")
        params.append(end)
    if severity:
        where.append("severity = ?")
        params.append(severity)
    q = (
        "SELECT id, rule_id, rule_spec, value, ts, local_ts, severity, message, delivery"
        f" FROM alert_events WHERE {' AND '.join(where)} ORDER BY id DESC"
    )
    if limit is not None:
        q += f" LIMIT {int(limit)}"
    rows = []
    for i, rid, spec, value, ts, lts, sev, msg, dlv in conn.execute(q, params).fetchall():
        d = json.loads(spec)
        rows.append(
            (i, rid, d["name"], d["symbol"], d["metric"], value, ts, lts, sev, msg, json.loads(dlv))
        )
    df = pd.DataFrame.from_records(rows, columns=event_columns()[:-1])
    df["time"] = pd.to_datetime(df["ts"].astype("int64"), unit="us", utc=True)
    return df
