"""Forward returns after a rule's firings, from fewer than 30 firings, are kept but greyed with
the reason (the rule of :mod:`lq.analytics.reliability`) in ``lq alerts history`` and in the
dashboard's Alerts tab; from 30 or more they are shown plainly. Real stores."""

from __future__ import annotations

import html
from pathlib import Path

from lq.alerts.cli import history_text
from lq.alerts.history import rule_history
from lq.alerts.rules import Rule
from lq.analytics.reliability import MIN_FIRINGS, forward_caveat
from lq.dashboard.alerts_tab import history_html
from lq.feeds.events import Trade
from lq.formatting import GREY_CSS
from lq.store import Batch, Store, Writer

S = 1_000_000
T0 = 1_723_161_600 * S


def sawtooth_db(path: Path, cycles: int) -> Path:
    """Price climbs 100 -> 120 over 20 s and drops back, ``cycles`` times: a rule crossing 115
    fires once per cycle (tests/alerts/test_history.py checks those firings by hand)."""
    px = [100.0 + (i % 21) for i in range(21 * cycles)]
    trades = [
        Trade(symbol="BTCUSDT", trade_id=i, price=p, qty=1.0, ts=T0 + i * S,
              event_ts=T0 + i * S, is_buyer_maker=False)
        for i, p in enumerate(px)
    ]  # fmt: skip
    with Writer(path) as w:
        w.write_batch(Batch(trades=trades))
    return path


RULE = Rule(name="up", metric="price", symbol="BTCUSDT", condition="crosses_above",
            threshold=115.0)  # fmt: skip


def test_the_rule_and_its_words():
    assert forward_caveat(firings=1) == "forward returns from 1 firing (under 30)"
    assert forward_caveat(firings=29) == "forward returns from 29 firings (under 30)"
    assert forward_caveat(firings=MIN_FIRINGS) is None


def test_few_firings_grey_the_forward_returns_with_the_reason(tmp_path):
    with Store(sawtooth_db(tmp_path / "s.sqlite", 10)) as st:
        res = rule_history(st, RULE, horizons=["3s"])
    assert res.count == 10
    reason = "forward returns from 10 firings (under 30)"
    assert res.forward_caveat == reason
    assert res.summary.set_index("horizon").loc["3s", "n"] == 10  # the raw figures are kept
    text = history_text(res, "up")
    assert f"(not meaningful: {reason}):" in text
    tty = history_text(res, "up", tty=True)
    assert "\x1b[2m" in tty.split(f"not meaningful: {reason}")[1]  # the table itself is faint
    out = history_html(res, "up")
    assert GREY_CSS.split(";")[0] in out and f"Greyed: not meaningful, {reason}." in html.unescape(
        out
    )


def test_thirty_firings_show_them_plainly(tmp_path):
    cycles = MIN_FIRINGS
    with Store(sawtooth_db(tmp_path / "s.sqlite", cycles)) as st:
        res = rule_history(st, RULE, horizons=["3s"])
    assert res.count == cycles and res.forward_caveat is None
    assert "not meaningful: forward" not in history_text(res, "up")
    assert "Greyed:" not in history_html(res, "up")
