"""Kraken ``GET /0/public/AssetPairs``: the instrument list (reference §2.7).

Each pair has ``altname`` (``XBTUSD``, the REST name), ``wsname`` (``XBT/USD``, the v1 WS
name), ``base``/``quote`` (``XXBT``/``ZUSD``), ``pair_decimals``, ``lot_decimals`` and, in
newer lists, ``tick_size``. lq's symbol is the **v2** name: ``wsname``'s two codes mapped
through :data:`lq.venues.instrument.ASSET_ALIASES` (``XBT`` -> ``BTC``, ``XDG`` -> ``DOGE``),
joined with ``/`` (``BTC/USD``, key ``BTC-USD@kraken``). The legacy ``X``/``Z`` prefixes are
never stripped by a string rule (``XTZ`` is Tezos). Pairs without ``wsname`` (the dark-pool
``.d`` pairs) have no WS stream and are left out. Tick = ``tick_size`` or
``10**-pair_decimals``; lot = ``10**-lot_decimals``.
"""

from __future__ import annotations

import msgspec

from lq.errors import FrameError
from lq.venues.instrument import Instrument, canonical_asset

from .protocol import NAME

__all__ = ["INSTRUMENTS_PATH", "decode_instruments"]

INSTRUMENTS_PATH = "/0/public/AssetPairs"


class _Pair(msgspec.Struct):
    altname: str
    wsname: str | None = None
    pair_decimals: int | None = None
    lot_decimals: int | None = None
    tick_size: float | None = None


class _Body(msgspec.Struct):
    error: list[str]
    result: dict[str, _Pair] = {}


_decoder = msgspec.json.Decoder(_Body, strict=False)


def _pow10(n: int | None) -> float | None:
    if n is None or not 0 <= n <= 30:
        return None
    return float(f"1e-{n}")


def decode_instruments(body: bytes) -> list[Instrument]:
    """The instruments of an ``AssetPairs`` body; :class:`~lq.errors.FrameError` if it is not
    one or carries Kraken errors."""
    try:
        env = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(
            f"kraken AssetPairs: {str(exc).splitlines()[0]}", bytes(body[:200])
        ) from None
    if env.error:
        raise FrameError(f"kraken AssetPairs: {'; '.join(env.error)[:200]}", bytes(body[:200]))
    out = []
    for p in env.result.values():
        if not p.wsname or p.wsname.count("/") != 1:
            continue
        b, q = (canonical_asset(x) for x in p.wsname.split("/"))
        out.append(
            Instrument(
                venue=NAME,
                symbol=f"{b}/{q}",
                base=b,
                quote=q,
                tick_size=p.tick_size if p.tick_size is not None else _pow10(p.pair_decimals),
                lot_size=_pow10(p.lot_decimals),
            )
        )
    return out
