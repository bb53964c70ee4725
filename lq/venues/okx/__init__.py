"""OKX v5: ``trades-all`` on the business WebSocket, ``history-trades?type=1`` for backfill.

Pure (sans-I/O) modules: :mod:`.protocol`, :mod:`.parser`, :mod:`.rest`, :mod:`.instruments`,
:mod:`.imitation`. Facts and sources: ``shared/reference/venues.md`` §3 and ``docs/venues.md``.
"""
