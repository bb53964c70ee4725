"""The preflight against a rate-limited lq exchange: a 429 on ``exchangeInfo`` (left pending by a
collector killed while its backfill waited behind it) is not "your symbols are not listed".
Real exchange on 127.0.0.1, real HTTP."""

from __future__ import annotations

import pytest
from procs import SYMBOLS, ExchangeThread

from lq.collector.preflight import preflight
from lq.errors import ValidationError


@pytest.fixture
def ex():
    e = ExchangeThread(rate=20.0, duration=600.0)
    yield e
    e.stop()


def _pre(ex: ExchangeThread, symbols=SYMBOLS):
    return preflight(
        source="live",
        endpoint="spot",
        symbols=symbols,
        ws_url=ex.ex.ws_url,
        rest_url=ex.ex.rest_url,
    )


def test_one_429_on_exchange_info_is_asked_again_and_the_symbols_checked(ex):
    ex.inject("rest_429", count=1, retry_after=60)
    pre = _pre(ex)
    assert (pre.exchange_label, pre.checked_symbols) == ("local", True)


def test_an_exchange_that_keeps_answering_429_is_collected_from_unchecked(ex, caplog):
    ex.inject("rest_429", count=20, retry_after=60)
    pre = _pre(ex)
    assert (pre.exchange_label, pre.checked_symbols) == ("local", False)
    assert "could not check the symbols" in caplog.text


def test_a_misspelled_symbol_is_still_refused_after_a_429(ex):
    ex.inject("rest_429", count=1, retry_after=60)
    with pytest.raises(ValidationError, match="--symbols='BTCUSDX': not listed"):
        _pre(ex, ("BTCUSDT", "BTCUSDX"))
