"""Trades made to order for the store tests (imported by name: ``from trade_factory import ...``)."""

from __future__ import annotations

from lq.feeds.events import Trade

T0 = 1_723_161_255_342_000  # 2024-08-08 23:54:15.342 UTC, in µs (the real recording's start)


def make_trades(
    n: int,
    *,
    start_id: int = 1,
    symbol: str = "BTCUSDT",
    t0: int = T0,
    step_us: int = 1000,
    price: float = 61_837.63,
    exchange: str = "binance",
) -> list[Trade]:
    """n contiguous trades, one per ``step_us``, prices walking by one tick."""
    return [
        Trade(
            symbol=symbol,
            trade_id=start_id + i,
            price=price + 0.01 * (i % 7),
            qty=0.001 * (1 + i % 3),
            ts=t0 + i * step_us,
            event_ts=t0 + i * step_us + 1000,
            is_buyer_maker=bool(i % 2),
            recv_ts=t0 + i * step_us + 2000,
            exchange=exchange,
        )
        for i in range(n)
    ]
