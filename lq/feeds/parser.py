"""Moved to :mod:`lq.venues.binance.parser` (Binance's parser is part of the Binance adapter); this name is kept so that existing imports work."""

from lq.venues.binance.parser import *  # noqa: F403
from lq.venues.binance.parser import __all__ as __all__
