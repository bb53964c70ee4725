"""Coinbase Exchange ``GET /products``: the instrument list (reference §1.7).

Each product has ``id`` (``BTC-USD``), ``base_currency``, ``quote_currency``,
``quote_increment`` (price tick) and ``base_increment`` (size lot); base and quote come from
those fields, never from splitting the id (real list: ``shared/data/coinbase/
exchange_rest_products_20210417.txt``).
"""

from __future__ import annotations

import msgspec

from lq.errors import FrameError
from lq.venues.instrument import Instrument, canonical_asset

from .protocol import NAME

__all__ = ["INSTRUMENTS_PATH", "decode_instruments"]

INSTRUMENTS_PATH = "/products"


class _Product(msgspec.Struct):
    id: str
    base_currency: str
    quote_currency: str
    quote_increment: float | None = None
    base_increment: float | None = None


_decoder = msgspec.json.Decoder(list[_Product], strict=False)


def decode_instruments(body: bytes) -> list[Instrument]:
    """The instruments of a ``/products`` body; :class:`~lq.errors.FrameError` if it is not
    one."""
    try:
        products = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(
            f"coinbase /products: {str(exc).splitlines()[0]}", bytes(body[:200])
        ) from None
    return [
        Instrument(
            venue=NAME,
            symbol=p.id,
            base=canonical_asset(p.base_currency),
            quote=canonical_asset(p.quote_currency),
            tick_size=p.quote_increment,
            lot_size=p.base_increment,
        )
        for p in products
    ]
