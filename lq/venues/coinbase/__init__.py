"""Coinbase: Advanced Trade ``market_trades`` over WebSocket, Exchange REST for backfill.

Everything lq knows about Coinbase lives in this package and is pure (sans-I/O):
:mod:`.protocol` (endpoints, subscribe, keepalive), :mod:`.parser` (frames -> events),
:mod:`.rest` (history paging, error classes), :mod:`.instruments` and :mod:`.imitation` (the
local exchange's Coinbase). Facts and their sources: ``shared/reference/venues.md`` §1 and
``docs/venues.md``.
"""
