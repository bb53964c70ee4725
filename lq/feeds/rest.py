"""Moved to :mod:`lq.venues.binance.rest` (Binance's REST client is part of the Binance adapter); this name is kept so that existing imports work."""

from lq.venues.binance.rest import *  # noqa: F403
from lq.venues.binance.rest import __all__ as __all__
