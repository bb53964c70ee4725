"""Kraken spot: WebSocket v2 ``trade`` channel, REST ``/0/public/Trades`` for backfill.

Pure (sans-I/O) modules: :mod:`.protocol`, :mod:`.parser`, :mod:`.rest`, :mod:`.instruments`,
:mod:`.imitation`. Facts and sources: ``shared/reference/venues.md`` §2 and ``docs/venues.md``.
"""
