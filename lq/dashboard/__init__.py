"""lq.dashboard: ipywidgets + plotly panels over the store, assembled by :class:`Dashboard`.

Each panel is a small class owning its widgets and one ``refresh()``; panels call
:mod:`lq.store` (through :class:`BarFeed`, which reads only new rows) and
:mod:`lq.analytics`, and never compute statistics themselves. ``notebooks/dashboard.ipynb``
displays a :class:`Dashboard`; ``lq dashboard`` serves that notebook with Voila.

The panels are imported on first use, so that the ``lq dashboard`` command and the Voila
server process (:mod:`lq.dashboard.server`), which only start things, do not pay for
plotly, statsmodels and the rest in time and memory (about 190 MB of the server's RSS).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lq.dashboard.app import Dashboard, wait_for_viewer
    from lq.dashboard.clusters import CorrelationPanel
    from lq.dashboard.data import DataPanel
    from lq.dashboard.feed import BarFeed, LastTrade
    from lq.dashboard.market import MarketPanel
    from lq.dashboard.pairs import PairsPanel
    from lq.dashboard.status import StatusBar, status_html
    from lq.dashboard.volatility import VolatilityPanel

_WHERE = {
    "BarFeed": "feed",
    "CorrelationPanel": "clusters",
    "Dashboard": "app",
    "DataPanel": "data",
    "LastTrade": "feed",
    "MarketPanel": "market",
    "PairsPanel": "pairs",
    "StatusBar": "status",
    "VolatilityPanel": "volatility",
    "status_html": "status",
    "wait_for_viewer": "app",
}

__all__ = [
    "BarFeed",
    "CorrelationPanel",
    "Dashboard",
    "DataPanel",
    "LastTrade",
    "MarketPanel",
    "PairsPanel",
    "StatusBar",
    "VolatilityPanel",
    "status_html",
    "wait_for_viewer",
]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'lq.dashboard' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lq.dashboard.{mod}"), name)
    globals()[name] = value
    return value
