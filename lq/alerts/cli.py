"""``lq alerts add|list|rm|enable|disable|test|history|events``: a thin shell over lq.alerts.

Rule changes are short control-plane transactions (no writer lock), so they work while
``lq collect`` runs; the collector picks them up within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from lq.config import Settings, parse_duration

__all__ = ["add_parser", "history_text", "run"]


def _db(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: `lq alerts --db X list` and `lq alerts list --db X` both work; an action's
    # own default must not overwrite the value given before the action
    p.add_argument(
        "--db",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the SQLite database (default from `lq config`)",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "alerts",
        help="alert rules on live statistics: add, list, remove, test, history",
        description="Alert rules are evaluated by the running collector (`lq collect`).",
    )
    _db(p)
    sub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    a = sub.add_parser("add", help="add a rule (validated; a refused rule changes nothing)")
    _db(a)
    a.add_argument("name")
    a.add_argument("--metric", help="price, return, zscore, rsi, volatility, spread_zscore, "
                   "correlation, hedge_drift, staleness, unfilled_gap, forecast")  # fmt: skip
    a.add_argument("--symbol", help="BTCUSDT, or Y/X for pair metrics (ETHUSDT/BTCUSDT)")
    a.add_argument("--condition", default=None,
                   help="above, below, crosses_above, crosses_below, outside")  # fmt: skip
    a.add_argument("--threshold", type=float)
    a.add_argument("--band", help="LOW,HIGH for 'outside'")
    a.add_argument("--rearm", type=float, help="hysteresis: re-arm past this level")
    a.add_argument("--rearm-band", help="LOW,HIGH: re-arm inside this band ('outside')")
    a.add_argument("--window", type=int, help="samples (default 60)")
    a.add_argument("--lookback", type=int, help="samples (return, hedge_drift)")
    a.add_argument("--sample", help="sample clock, e.g. 1s, 5s, 1m; 0 = every trade")
    a.add_argument("--hedge-method", choices=("ols", "kalman"))
    a.add_argument("--vol-method", choices=("realized", "garch"))
    a.add_argument("--refit", type=int, help="GARCH refit cadence in samples")
    a.add_argument("--model", help="forecast: the deployed model's name (`lq forecast models`)")
    a.add_argument("--output", choices=("prediction", "edge"),
                   help="forecast: the forecast itself, or its live edge over the baseline")  # fmt: skip
    a.add_argument("--cooldown", help="e.g. 30s, 5m")
    a.add_argument("--severity", choices=("info", "warning", "critical"))
    a.add_argument("--channels", help="comma-separated: dashboard,telegram,email,webhook")
    a.add_argument("--json", dest="spec_json", help="the whole rule as JSON (fields as flags)")
    a.add_argument("--disabled", action="store_true", help="store it disabled")

    ls = sub.add_parser("list", help="list rules")
    _db(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")

    for name, helptext in (
        ("rm", "delete a rule (its events stay)"),
        ("enable", "enable a rule"),
        ("disable", "disable a rule"),
    ):
        x = sub.add_parser(name, help=helptext)
        _db(x)
        x.add_argument("rule", help="id or name")

    t = sub.add_parser("test", help="send a test event through a rule's channels")
    _db(t)
    t.add_argument("rule", help="id or name")

    h = sub.add_parser("history", help="how often a rule would have fired, and what followed")
    _db(h)
    h.add_argument("rule", help="id or name")
    h.add_argument("--start", help="inclusive start time (UTC)")
    h.add_argument("--end", help="exclusive end time (UTC)")
    h.add_argument("--horizons", default="1m,5m,15m", help="forward-return horizons")
    h.add_argument("--exchange", help="exchange label of the stored data")

    e = sub.add_parser("events", help="stored firings, newest first")
    _db(e)
    e.add_argument("--rule", help="id or name")
    e.add_argument("--limit", type=int, default=20)
    return p


def _pair(text: str | None, field: str) -> list[float] | None:
    if text is None:
        return None
    from lq.errors import RuleError

    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise RuleError(field, text, "expected LOW,HIGH such as -2,2") from None
    return [lo, hi]


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(args.spec_json) if args.spec_json else {}
    spec["name"] = args.name
    flags = {
        "metric": args.metric,
        "symbol": args.symbol,
        "condition": args.condition,
        "threshold": args.threshold,
        "band": _pair(args.band, "band"),
        "rearm": args.rearm,
        "rearm_band": _pair(args.rearm_band, "rearm_band"),
        "window": args.window,
        "lookback": args.lookback,
        "hedge_method": args.hedge_method,
        "vol_method": args.vol_method,
        "refit": args.refit,
        "model": args.model,
        "output": args.output,
        "severity": args.severity,
    }
    spec.update({k: v for k, v in flags.items() if v is not None})
    if args.sample is not None:
        spec["sample"] = parse_duration(args.sample, field="--sample")
    if args.cooldown is not None:
        spec["cooldown"] = parse_duration(args.cooldown, field="--cooldown")
    if args.channels:
        spec["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    if "band" in spec and "condition" not in spec:
        spec["condition"] = "outside"
    return spec


def _setting(name: str, v: Any) -> str:
    if v is None:
        return f"{name}=none"
    if isinstance(v, list | tuple):
        return f"{name}={','.join(f'{x:g}' if isinstance(x, float) else str(x) for x in v)}"
    if name in ("sample", "cooldown"):
        return f"{name}={v:g}s"
    if isinstance(v, float):
        return f"{name}={v:g}"
    return f"{name}={v}"


def _line(sr: Any) -> str:
    """Two lines: the rule in words, then every one of its settings (``key=value``)."""
    from lq.alerts.rules import rule_to_dict

    flag = "on " if sr.enabled else "off"
    r = sr.rule
    fields = {k: v for k, v in rule_to_dict(r).items() if k != "name"}
    return (
        f"{sr.id:>4}  {flag}  {r.name:<24} {r.describe()}\n"
        + "            "
        + " ".join(_setting(k, v) for k, v in fields.items())
    )


def _dim(text: str, tty: bool) -> str:
    return f"\x1b[2m{text}\x1b[0m" if tty else text


def history_text(res: Any, name: str, *, tty: bool = False) -> str:
    """What ``lq alerts history`` prints: a per-day rate from under a day of data is greyed
    with the reason (:mod:`lq.analytics.reliability`)."""
    import pandas as pd

    from lq.analytics.reliability import format_span

    span = format_span(res.span_seconds)
    times = "time" if res.count == 1 else "times"
    rate = f"{res.per_day:.1f} per day"
    if res.per_day_caveat:
        rate = _dim(f"{rate}: not meaningful, {res.per_day_caveat}", tty)
    first = pd.Timestamp(res.start, unit="us", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
    last = pd.Timestamp(res.end, unit="us", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f"rule {name}: {res.rule.describe()}",
        f"{res.samples:,} samples over {span} ({first} to {last} UTC): would have fired "
        f"{res.count} {times} ({rate})",
    ]
    legs = res.rule.symbols
    if len(legs) == 2:
        what = f"y={legs[0]}, x={legs[1]}"
        if res.rule.metric == "spread_zscore":
            what += " and the hedged spread y - beta x"
    else:
        what = legs[0]
    head = f"forward log returns after firing, of {what}:"
    body = res.summary.to_string(index=False)
    if res.forward_caveat:  # the same short-sample rule as the per-day rate and the Sharpe
        head = (
            f"forward log returns after firing, of {what} (not meaningful: {res.forward_caveat}):"
        )
        body = _dim(body, tty)
    lines.append(head)
    lines.append(body)
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from lq.alerts.rules import rule_from_dict, rule_to_dict
    from lq.alerts.store import AlertStore

    cmd = args.alerts_command
    with AlertStore(settings.db, known_symbols=settings.collector.symbols) as store:
        if cmd == "add":
            from lq.alerts.channel_setup import check_channels_configured

            rule = rule_from_dict(_spec(args))
            check_channels_configured(rule.channels, settings)  # before anything is stored
            sr = store.add(rule, enabled=not args.disabled)
            print(f"added rule {sr.id}: {rule.describe()}")
            return 0
        if cmd == "list":
            rules = store.rules()
            for sr in rules:
                if args.json:
                    print(json.dumps({"id": sr.id, "enabled": sr.enabled, **rule_to_dict(sr.rule)}))
                else:
                    print(_line(sr))
            if not rules and not args.json:
                print("no alert rules (add one with `lq alerts add`)")
            return 0
        if cmd == "rm":
            sr = store.remove(args.rule)
            print(f"removed rule {sr.id} ({sr.name}); its past events are kept")
            return 0
        if cmd in ("enable", "disable"):
            sr = store.set_enabled(args.rule, cmd == "enable")
            print(f"rule {sr.id} ({sr.name}) {cmd}d")
            return 0
        if cmd == "test":
            return _test(store, store.get(args.rule), settings)
        if cmd == "events":
            df = store.events(rule=args.rule, limit=args.limit)
            if df.empty:
                print("no alert events")
            for row in df.itertuples():
                status = ", ".join(f"{k}: {v.get('status')}" for k, v in row.delivery.items())
                print(f"{row.id:>6}  {row.time:%Y-%m-%d %H:%M:%S}  {row.severity:<8} "
                      f"{row.message}  [{status}]")  # fmt: skip
            return 0
        if cmd == "history":
            from lq.alerts.history import rule_history
            from lq.store import Store
            from lq.store.reader import to_us_range

            to_us_range(args.start, args.end, fields=("--start", "--end"))
            sr = store.get(args.rule)
            horizons = [h.strip() for h in args.horizons.split(",") if h.strip()]
            with Store(settings.db) as st:
                res = rule_history(
                    st, sr.rule, start=args.start, end=args.end, horizons=horizons,
                    exchange=args.exchange,
                )  # fmt: skip
            if res.start is None:
                print(f"rule {sr.name}: no stored data for {sr.rule.symbol}")
                return 0
            print(history_text(res, sr.name, tty=sys.stdout.isatty()))
            return 0
    return 2  # pragma: no cover


def _test(store: Any, sr: Any, settings: Settings) -> int:
    import msgspec

    from lq.alerts.channels import channels_from_settings
    from lq.alerts.delivery import Delivery, RetryPolicy
    from lq.alerts.store import AlertEvent

    now = time.time_ns() // 1000
    ev = AlertEvent(
        rule_id=sr.id, rule=sr.rule, value=float("nan"), ts=now, local_ts=now,
        severity=sr.rule.severity, message=f"{sr.name}: test message from `lq alerts test`",
        fired_key=f"test:{sr.id}:{now}",
    )  # fmt: skip
    results: dict[str, dict[str, object]] = {}

    async def record(_id: int, channel: str, status: dict[str, object]) -> None:
        results[channel] = status

    async def go() -> None:
        d = Delivery(
            channels_from_settings(settings), record=record,
            policy=RetryPolicy(attempts=2, initial=0.5, attempt_timeout=10.0),
        )  # fmt: skip
        d.start()
        d.submit(msgspec.structs.replace(ev, id=0))
        await d.stop(drain_timeout=30.0)

    asyncio.run(go())
    bad = 0
    for ch in sr.rule.channels:
        st = results.get(ch, {"status": "not sent"})
        print(f"{ch:<10} {st.get('status')}  {st.get('error', '')}".rstrip())
        bad += st.get("status") not in ("sent", "stored")
    if bad:
        print("some channels failed: check `lq config` (telegram/email/webhook)", file=sys.stderr)
    return 1 if bad else 0
