"""Moved to :mod:`lq.venues.binance.endpoints` (Binance's endpoint presets are part of the Binance adapter); this name is kept so that existing imports work."""

from lq.venues.binance.endpoints import *  # noqa: F403
from lq.venues.binance.endpoints import __all__ as __all__
