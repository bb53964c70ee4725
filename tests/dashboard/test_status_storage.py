"""The status bar tells storing from receiving-but-not-storing (hand-built rows)."""

from __future__ import annotations

from lq.dashboard import status_html


def _row(**kw):
    base = {
        "exchange": "local",
        "source": "local",
        "source_label": "LOCAL EXCHANGE",
        "state": "live",
        "storage": "storing",
        "updated_ts": 1_000_000_000,
        "messages": 10,
        "receiving": True,
    }
    return {**base, **kw}


def test_a_storing_feed_says_storing_in_its_colour() -> None:
    out = status_html([_row()], now_us=1_000_500_000)
    assert 'data-storage="storing"' in out and '<b class="lq-storage">storing</b>' in out
    assert "#b8860b" in out


def test_receiving_but_not_storing_is_red_with_the_reason_and_what_waits() -> None:
    row = _row(
        state="not storing",
        storage="not storing",
        storage_reason="database or disk is full",
        buffered_events=1234,
        spilled_events=56789,
        lost_events=0,
    )
    out = status_html([row], now_us=1_000_500_000)
    assert 'data-storage="not storing"' in out
    assert (
        "RECEIVING BUT NOT STORING: database or disk is full (1,234 in memory, 56,789 spilled)"
        in out
    )
    assert "#7a1f1f" in out and "#b8860b" not in out


def test_live_state_without_storage_is_never_shown_green() -> None:
    # a report that says live but not storing (nothing new stored for 10 s) is an alarm
    row = _row(storage="not storing", storage_reason="nothing new stored", receiving=True)
    out = status_html([row], now_us=1_000_500_000)
    assert "#7a1f1f" in out and "nothing new stored" in out
