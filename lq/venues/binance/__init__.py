"""Binance: everything lq knows about it, in one folder.

* ``endpoints.py``: the presets (``spot``, ``spot-data``, ``us``, ``usdm``), stream names,
  URL planning;
* ``parser.py``: the sans-I/O parser (frames -> :mod:`lq.feeds.events`);
* ``rest.py``: the REST client (``historicalTrades``, ``aggTrades``, klines, exchangeInfo);
* ``client.py``: :class:`BinanceClient`, the shared connection loop with Binance's rules;
* ``local/``: the local exchange's imitation of Binance (``server.py``: ``LocalExchange``,
  ``protocol.py``: paths and control messages, ``rest.py``: REST with weights and 429);
* ``venue.py``: the adapter object :data:`VENUE` the registry hands out.

Importing this package is cheap; the client and the server are imported on use.
"""

from lq.venues.binance.venue import BinanceVenue

VENUE = BinanceVenue()

__all__ = ["VENUE", "BinanceVenue"]
