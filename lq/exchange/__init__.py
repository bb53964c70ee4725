"""``lq.exchange``: a local Binance-compatible exchange (WebSocket + REST on 127.0.0.1).

Replays recorded frames or simulates a market, speaks Binance's spot protocol (paths, control
methods, limits, payloads, REST history, rate limits) and breaks on demand (faults), so that
the real client is tested end to end without the internet::

    from lq.exchange import LocalExchange, Faults, SimulatorSource

    ex = LocalExchange(source=SimulatorSource(symbols=["BTCUSDT", "ETHUSDT"], seed=7))
    await ex.start()
    ex.ws_url, ex.rest_url          # ws://127.0.0.1:PORT, http://127.0.0.1:PORT
    ex.inject("drop_tcp")
    ex.trades("BTCUSDT")            # the truth
    await ex.stop()
"""

from __future__ import annotations

from lq.exchange.faults import FAULT_KINDS, FaultKind, Faults
from lq.exchange.market import SymbolSpec
from lq.exchange.replay import ReplaySource
from lq.exchange.simulator import SimulatorParams, SimulatorSource
from lq.exchange.source import Source
from lq.venues.binance.local.server import LocalExchange

__all__ = [
    "FAULT_KINDS",
    "FaultKind",
    "Faults",
    "LocalExchange",
    "ReplaySource",
    "SimulatorParams",
    "SimulatorSource",
    "Source",
    "SymbolSpec",
]
