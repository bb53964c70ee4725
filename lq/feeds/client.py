"""Moved to :mod:`lq.venues.binance.client` (the Binance client is the Binance adapter's; the venue-independent loop is lq.feeds.connection); this name is kept so that existing imports work."""

from lq.venues.binance.client import *  # noqa: F403
from lq.venues.binance.client import __all__ as __all__
