"""Moved to :mod:`lq.venues.binance.local.rest` (Binance's REST imitation); this name is kept so that existing imports work."""

from lq.venues.binance.local.rest import *  # noqa: F403
from lq.venues.binance.local.rest import __all__ as __all__
