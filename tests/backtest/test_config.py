"""Frozen keyword-only settings: validation naming field and value, JSON round trip, ids."""

from __future__ import annotations

import dataclasses

import pytest

import lq.backtest
from lq.backtest import (
    Costs,
    MACrossoverParams,
    PairsZScoreParams,
    RSIReversionParams,
    Sizing,
    Stops,
    ZScoreReversionParams,
)
from lq.errors import ValidationError

CONFIGS = [
    Costs(fee_bps=7.5, slippage_bps=2.0),
    Costs(slippage="half_spread"),
    Sizing(method="volatility_target", target_volatility=0.15, vol_lookback=50),
    Stops(stop_loss=0.02, time_stop_bars=60),
    PairsZScoreParams(lookback=50, hedge="kalman", stop=None),
    ZScoreReversionParams(direction="long_only"),
    RSIReversionParams(lower=25, upper=75),
    MACrossoverParams(fast=5, slow=20, kind="ema"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_config_round_trips_through_json_and_keeps_its_id(cfg):
    back = type(cfg).from_json(cfg.to_json())
    assert back == cfg and back.id == cfg.id and len(cfg.id) == 16


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_config_is_frozen_and_keyword_only(cfg):
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.x = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        type(cfg)(1)  # positional arguments are refused


def test_unknown_field_is_refused_naming_it():
    with pytest.raises(TypeError):
        Costs(fee=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match=r"Costs\.fee=10"):
        Costs.from_dict({"fee": 10})


def test_ids_differ_when_a_setting_differs():
    assert Costs(fee_bps=10).id == Costs(fee_bps=10.0).id
    assert Costs(fee_bps=10).id != Costs(fee_bps=7.5).id
    assert Stops().id != Sizing().id  # the type is part of the hash


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Costs(fee_bps=-1), r"Costs\.fee_bps=-1"),
        (lambda: Costs(slippage="mid"), r"Costs\.slippage='mid'"),
        (lambda: Costs(slippage="half_spread", slippage_bps=3), r"Costs\.slippage_bps=3"),
        (lambda: Sizing(method="kelly"), r"Sizing\.method='kelly'"),
        (lambda: Sizing(vol_lookback=1), r"Sizing\.vol_lookback=1"),
        (lambda: Stops(stop_loss=0), r"Stops\.stop_loss=0"),
        (lambda: Stops(time_stop_bars=0), r"Stops\.time_stop_bars=0"),
        (lambda: PairsZScoreParams(entry=1.0, exit=1.5), r"PairsZScoreParams\.exit=1\.5"),
        (lambda: PairsZScoreParams(entry=2.0, stop=1.0), r"PairsZScoreParams\.stop=1\.0"),
        (lambda: PairsZScoreParams(hedge="tls"), r"PairsZScoreParams\.hedge='tls'"),
        (lambda: MACrossoverParams(fast=50, slow=20), r"MACrossoverParams\.fast=50"),
        (lambda: RSIReversionParams(exit=90), r"RSIReversionParams\.exit=90"),
    ],
)
def test_bad_value_is_refused_naming_field_and_value(make, match):
    with pytest.raises(ValidationError, match=match):
        make()


def test_public_names_are_exported():
    for name in lq.backtest.__all__:
        assert hasattr(lq.backtest, name), name
    assert sorted(lq.backtest.available_strategies()) == [
        "ma_crossover",
        "pairs_zscore",
        "rsi_reversion",
        "zscore_reversion",
    ]
