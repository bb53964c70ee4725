"""Moved to :mod:`lq.venues.binance.local.protocol` (Binance's WebSocket protocol rules); this name is kept so that existing imports work."""

from lq.venues.binance.local.protocol import *  # noqa: F403
from lq.venues.binance.local.protocol import __all__ as __all__
