"""Texts of `lq backtest`'s summary line."""

from lq.backtest.cli import utc_text


def test_the_ruin_time_reads_as_utc() -> None:
    # the T of the ISO time goes, the T of UTC stays ("00:39:22 U C" before)
    assert utc_text("2026-12-04T00:39:22+00:00") == "2026-12-04 00:39:22 UTC"
    assert utc_text("2026-12-04T00:39:22.250000+00:00") == "2026-12-04 00:39:22.250000 UTC"
    assert utc_text(None) == "?"
