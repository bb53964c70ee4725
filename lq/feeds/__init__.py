"""Live Binance market data: sans-I/O parser, endpoint presets, gap sequencer, REST, client.

::

    from lq.feeds import BinanceClient
    client = BinanceClient(symbols=["BTCUSDT", "ETHUSDT"], sink=events.append)
    task = client.start()        # on the running loop (Jupyter's, or your own)
    ...
    await client.stop()
    client.status                # FeedStatus snapshot

Pure parts (no I/O): :class:`Parser`, :class:`Sequencer`, :class:`Backoff`, the order book
(:class:`L2Book`, :class:`DepthParser`, :class:`BookSync`: see ``docs/orderbook.md``),
:class:`AttemptBudget`, :func:`plan_urls`, and :mod:`lq.feeds.invariants` (what every stored
market row must satisfy, shared by the parser, the REST decoders and the writer). I/O:
:class:`RestClient`, :class:`BinanceClient`.
"""

from lq.feeds.backoff import AttemptBudget, Backoff
from lq.feeds.book import L2Book
from lq.feeds.booksync import BookSync
from lq.feeds.depth import DepthParser
from lq.feeds.sequencer import BackfillRequest, Sequencer, Step
from lq.feeds.status import FeedStatus
from lq.venues.binance.client import BinanceClient
from lq.venues.binance.endpoints import (
    ENDPOINTS,
    Endpoint,
    plan_urls,
    resolve_endpoint,
    stream_name,
)
from lq.venues.binance.parser import Parser, to_us
from lq.venues.binance.rest import RestClient

__all__ = [
    "ENDPOINTS",
    "AttemptBudget",
    "BackfillRequest",
    "Backoff",
    "BinanceClient",
    "BookSync",
    "DepthParser",
    "Endpoint",
    "FeedStatus",
    "L2Book",
    "Parser",
    "RestClient",
    "Sequencer",
    "Step",
    "plan_urls",
    "resolve_endpoint",
    "stream_name",
    "to_us",
]
