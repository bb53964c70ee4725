"""lq.dashboard: ipywidgets + plotly panels over the store, assembled by :class:`Dashboard`.

Each panel is a small class owning its widgets and one ``refresh()``; panels call
:mod:`lq.store` (through :class:`BarFeed`, which reads only new rows) and
:mod:`lq.analytics`, and never compute statistics themselves. ``notebooks/dashboard.ipynb``
displays a :class:`Dashboard`; ``lq dashboard`` serves that notebook with Voila.
"""

from __future__ import annotations

from lq.dashboard.app import Dashboard, wait_for_viewer
from lq.dashboard.clusters import CorrelationPanel
from lq.dashboard.data import DataPanel
from lq.dashboard.feed import BarFeed, LastTrade
from lq.dashboard.market import MarketPanel
from lq.dashboard.pairs import PairsPanel
from lq.dashboard.status import StatusBar, status_html
from lq.dashboard.volatility import VolatilityPanel

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
