"""The Binance adapter object (``lq.venues.binance.VENUE``).

Binance predates the pure-module contract and keeps its own client
(:class:`~lq.venues.binance.client.BinanceClient`, on the shared loop
:class:`~lq.feeds.connection.FeedClient`: combined-stream URLs, ``trade``/``aggTrade``/
``bookTicker``/``kline`` channels, weight-limited REST backfill) and its own imitation
(:class:`~lq.venues.binance.local.server.LocalExchange`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lq.errors import ValidationError
from lq.venues.base import IdRule, LocalVenue, guess_instrument
from lq.venues.instrument import Instrument

__all__ = ["BinanceVenue"]


class BinanceVenue:
    """Binance spot (and the ``spot-data``, ``us``, ``usdm`` presets via ``endpoint=``)."""

    name = "binance"
    id_rule: IdRule = "contiguous"
    ws_url = "wss://stream.binance.com:9443"
    rest_url = "https://api.binance.com"
    default_symbols = ("BTCUSDT", "ETHUSDT")

    def __repr__(self) -> str:
        return "BinanceVenue()"

    def normalize_symbols(self, symbols: Sequence[str]) -> list[str]:
        from lq.venues.binance.endpoints import stream_name

        out = []
        for s in symbols:
            t = s.strip().upper()
            try:
                stream_name(t, "trade")
            except ValidationError:
                raise ValidationError(
                    "--symbols", s, "expected Binance symbols such as BTCUSDT,ETHUSDT"
                ) from None
            out.append(t)
        return out

    def instrument(self, symbol: str) -> Instrument:
        return guess_instrument(self.name, symbol.upper())

    def client(
        self,
        *,
        symbols: Sequence[str],
        sink: Callable[[Any], None],
        exchange_label: str,
        ws_url: str | None = None,
        rest_url: str | None = None,
        channels: Sequence[str] = ("trade",),
        resume_ids: Mapping[tuple[str, Any], int] | None = None,
        record: Any = None,
        **options: Any,
    ) -> Any:
        from lq.venues.binance.client import BinanceClient

        return BinanceClient(
            symbols=symbols,
            channels=channels,
            ws_url=ws_url,
            rest_url=rest_url,
            sink=sink,
            resume_ids=resume_ids,
            exchange_label=exchange_label,
            record=record,
            **options,
        )

    def local_exchange(self, *, source: Any, **options: Any) -> LocalVenue:
        from lq.venues.binance.local.server import LocalExchange

        return LocalExchange(source=source, **options)
