"""Moved to :mod:`lq.venues.binance.local.server` (the local Binance exchange is the Binance adapter's imitation); this name is kept so that existing imports work."""

from lq.venues.binance.local.server import *  # noqa: F403
from lq.venues.binance.local.server import __all__ as __all__
