"""DislocationBps (O(1) per update) equals the batch ``dislocation(interval=None)`` at every step.

The batch function on the prefix of updates seen so far is the reference: its last row is
the dislocation at the latest observation time, which is what the streaming class reports.
Updates come out of time order, with equal times, NaN prices, stale legs and a rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lq.analytics as A
from lq.analytics import streaming as S
from lq.errors import ValidationError

NAMES = ("okx", "coinbase", "USDT/USD")


@st.composite
def updates(draw, max_size=25, backwards=True):
    n = draw(st.integers(1, max_size))
    out = []
    t = 0
    for _ in range(n):
        name = draw(st.sampled_from(NAMES))
        # whole-ms steps: equal times and ages exactly at max_age are common; some go back
        t += draw(
            st.sampled_from([0, 0, 1_000, 2_000, 3_000, 4_000, -1_000, -3_000][: 6 + 2 * backwards])
        )
        if name == "USDT/USD":
            price = draw(st.sampled_from([0.998, 0.999, 1.0, 1.0005, math.nan]))
        else:
            price = draw(st.integers(9_990, 10_010)) / 100 if draw(st.booleans()) else math.nan
            if not draw(st.integers(0, 9)):
                price = math.nan
        out.append((name, price, t))
    return out


def batch(events, *, quotes, kind, max_age, rate_max_age):
    series = {}
    for name in NAMES:
        ts = [t for n, _, t in events if n == name]
        px = [p for n, p, _ in events if n == name]
        series[name] = (np.array(ts, dtype=np.int64), np.array(px, dtype=np.float64))
    rate = series.pop("USDT/USD")
    rates = {"USDT/USD": rate} if np.isfinite(rate[1]).any() else None
    return A.dislocation(
        series,
        quotes=quotes,
        reference="coinbase",
        interval=None,
        max_age=max_age,
        kind=kind,
        rates=rates,
        rate_max_age=rate_max_age,
    )


def close(a, b):
    if math.isnan(b):
        return math.isnan(a)
    return a == pytest.approx(b, rel=1e-12, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    events=updates(),
    kind=st.sampled_from(["simple", "log"]),
    max_age=st.sampled_from([None, 0, 2_000, 4_000]),
    rate_max_age=st.sampled_from([None, 3_000]),
    okx_quote=st.sampled_from(["USDT", "USD"]),
)
def test_streaming_dislocation_equals_batch_at_every_step(
    events, kind, max_age, rate_max_age, okx_quote
):
    quotes = {"okx": okx_quote, "coinbase": "USD"}
    d = S.DislocationBps(
        "okx",
        "coinbase",
        quotes=quotes,
        kind=kind,
        max_age=max_age,
        rate="USDT/USD" if okx_quote == "USDT" else None,
        rate_max_age=rate_max_age,
    )
    for i, (name, price, ts) in enumerate(events):
        if name == "USDT/USD" and d.rate is None:
            continue  # same quotes: no rate leg to feed
        d.update(name, price, ts)
        prefix = [e for e in events[: i + 1] if not (e[0] == "USDT/USD" and d.rate is None)]
        b = batch(prefix, quotes=quotes, kind=kind, max_age=max_age, rate_max_age=rate_max_age)
        want = b.bps["okx"].iloc[-1] if len(b.bps) else math.nan
        want_adj = b.adjusted["okx"].iloc[-1] if len(b.bps) else math.nan
        assert close(d.value, want), (i, d.value, want)
        assert close(d.adjusted, want_adj), (i, d.adjusted, want_adj)
    assert d.count == sum(
        1 for e in events if e[1] == e[1] and not (e[0] == "USDT/USD" and d.rate is None)
    )


def test_streaming_dislocation_reports_what_it_compares_and_skips_bad_prices():
    d = S.DislocationBps("okx", "coinbase", quotes={"okx": "usdt", "coinbase": "USD"},
                         rate="USD/USDT")  # fmt: skip
    assert d.compared == "okx (USDT) vs coinbase (USD)"
    d.update("coinbase", 100.0, 1)
    d.update("okx", -5.0, 2)
    d.update("okx", float("inf"), 3)
    assert d.rejected == 1 and d.count == 1 and math.isnan(d.value)
    d.update("okx", 100.1, 4)
    d.update("USD/USDT", 1.001, 5)  # USDT per USD: the okx price is divided by it
    assert d.value == pytest.approx(10.0)
    assert d.adjusted == pytest.approx((100.1 / 1.001 / 100.0 - 1) * 1e4)
    with pytest.raises(ValidationError, match="expected one of"):
        d.update("kraken", 1.0, 6)
    with pytest.raises(ValidationError, match="'USDT/USD'"):
        S.DislocationBps("okx", "coinbase", quotes={"okx": "USDT", "coinbase": "USD"},
                         rate="EUR/USD")  # fmt: skip
    with pytest.raises(ValidationError, match="no quote currency"):
        S.DislocationBps("okx", "coinbase", quotes={"okx": "USDT"})
    with pytest.raises(ValidationError, match="max_age"):
        S.DislocationBps("okx", "coinbase", quotes={"okx": "USD", "coinbase": "USD"}, max_age=-1)


def test_streaming_dislocation_is_exported_with_the_other_streaming_classes():
    assert "DislocationBps" in S.__all__
    assert S.DislocationBps.__doc__


@settings(max_examples=100, deadline=None)
@given(
    events=updates(max_size=60, backwards=False),
    max_age=st.sampled_from([None, 0, 2_000, 4_000]),
    okx_quote=st.sampled_from(["USDT", "USD"]),
)
def test_streaming_dislocation_equals_every_batch_row_for_time_ordered_updates(
    events, max_age, okx_quote
):
    # time-ordered updates: one batch call over all of them; after the last update at each
    # observation time the streaming value equals that time's row
    quotes = {"okx": okx_quote, "coinbase": "USD"}
    rate = "USDT/USD" if okx_quote == "USDT" else None
    events = [e for e in events if rate or e[0] != "USDT/USD"]
    d = S.DislocationBps("okx", "coinbase", quotes=quotes, max_age=max_age, rate=rate)
    b = batch(events, quotes=quotes, kind="simple", max_age=max_age, rate_max_age=None)
    rows = dict(zip(b.bps.index.asi8.tolist(), b.bps["okx"].tolist(), strict=True))
    adj = dict(zip(b.adjusted.index.asi8.tolist(), b.adjusted["okx"].tolist(), strict=True))
    for i, (name, price, ts) in enumerate(events):
        d.update(name, price, ts)
        last_at_ts = i + 1 == len(events) or events[i + 1][2] != ts
        if last_at_ts and ts in rows:
            assert close(d.value, rows[ts]), (i, d.value, rows[ts])
            assert close(d.adjusted, adj[ts]), (i, d.adjusted, adj[ts])
