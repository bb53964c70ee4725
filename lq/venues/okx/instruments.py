"""OKX ``GET /api/v5/public/instruments?instType=SPOT``: the instrument list (reference §3.6).

SPOT entries give ``instId`` (``BTC-USDT``), ``baseCcy``, ``quoteCcy``, ``tickSz`` and
``lotSz``; base and quote come from those fields, never from splitting the id. Derivatives
(SWAP, FUTURES, OPTION: base/quote from ``ctValCcy``/``settleCcy``/``uly``, sizes in contracts)
are left out: their canonical pair would collide with the spot one in
:attr:`lq.venues.instrument.Instrument.key`, and lq follows spot only.
"""

from __future__ import annotations

import msgspec

from lq.errors import FrameError
from lq.venues.instrument import Instrument, canonical_asset

from .protocol import NAME

__all__ = ["INSTRUMENTS_PARAMS", "INSTRUMENTS_PATH", "decode_instruments"]

INSTRUMENTS_PATH = "/api/v5/public/instruments"
INSTRUMENTS_PARAMS = {"instType": "SPOT"}
"""OKX requires ``instType`` (without it: code 51000); lq lists SPOT."""


class _Inst(msgspec.Struct):
    instId: str
    instType: str = "SPOT"
    baseCcy: str = ""
    quoteCcy: str = ""
    tickSz: float | None = None
    lotSz: float | None = None


class _Body(msgspec.Struct):
    code: str | int
    msg: str = ""
    data: list[_Inst] = []


_decoder = msgspec.json.Decoder(_Body, strict=False)


def decode_instruments(body: bytes) -> list[Instrument]:
    """The SPOT instruments of an instruments body; :class:`~lq.errors.FrameError` if it is
    not one or carries an error code."""
    try:
        env = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(
            f"okx instruments: {str(exc).splitlines()[0]}", bytes(body[:200])
        ) from None
    if str(env.code) != "0":
        raise FrameError(f"okx instruments: code {env.code}: {env.msg[:200]}", bytes(body[:200]))
    return [
        Instrument(
            venue=NAME,
            symbol=i.instId,
            base=canonical_asset(i.baseCcy),
            quote=canonical_asset(i.quoteCcy),
            tick_size=i.tickSz,
            lot_size=i.lotSz,
        )
        for i in env.data
        if i.instType == "SPOT" and i.baseCcy and i.quoteCcy
    ]
