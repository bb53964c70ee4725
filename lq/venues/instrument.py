"""The canonical instrument: what makes ``BTCUSDT@binance`` and ``BTC-USD@coinbase`` comparable.

A venue names an instrument its own way (``BTCUSDT``, ``BTC-USD``, ``BTC/USD``,
``BTC-USDT``). lq keeps the venue's own symbol as the stored ``symbol`` (so a row can always
be traced back to the venue's API) and derives the canonical ``base``/``quote`` from the
venue's instrument list, never from string splitting alone: Kraken's ``XBT`` is ``BTC``.
Quote currencies are kept as the venue quotes them: USD and USDT are different currencies,
and cross-venue views show the difference instead of hiding it.
"""

from __future__ import annotations

import msgspec

__all__ = ["ASSET_ALIASES", "Instrument", "canonical_asset"]

#: Venue asset codes that name the same asset under another code.
ASSET_ALIASES: dict[str, str] = {"XBT": "BTC", "XXBT": "BTC", "XETH": "ETH", "ZUSD": "USD",
                                 "ZEUR": "EUR", "XDG": "DOGE", "XXDG": "DOGE"}  # fmt: skip


def canonical_asset(code: str) -> str:
    """``"xbt"`` -> ``"BTC"``; other codes upper-cased as they are."""
    c = code.strip().upper()
    return ASSET_ALIASES.get(c, c)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """One tradable instrument on one venue.

    ``venue`` is the adapter's name (``binance``, ``coinbase``, ``kraken``, ``okx``);
    ``symbol`` the venue's own name for it, as stored; ``base``/``quote`` canonical asset
    codes; ``tick_size``/``lot_size`` the venue's price and quantity increments (``None``
    when the venue's list does not say).
    """

    venue: str
    symbol: str
    base: str
    quote: str
    tick_size: float | None = None
    lot_size: float | None = None

    @property
    def key(self) -> str:
        """``BTC-USDT@okx``: canonical pair and venue, the same spelling for every venue."""
        return f"{self.base}-{self.quote}@{self.venue}"

    @property
    def pair(self) -> str:
        """``BTC-USDT``: the canonical pair without the venue."""
        return f"{self.base}-{self.quote}"
