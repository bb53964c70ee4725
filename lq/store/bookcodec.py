"""Compact, exact encoding of one side of a book's top N levels (the ``book_snapshots`` blobs).

A stored book snapshot keeps 2 x N levels (default N = 20) every second per symbol. As raw
float64 pairs that is 640 bytes a snapshot, about 55 MB per symbol per day: too much. The
venue's prices and sizes are short decimals (``"67123.45"``, ``"0.00120"``), so each side is
stored as scaled integers: prices as ``round(p * 10**pk)`` and sizes as ``round(q * 10**qk)``,
with the smallest ``pk``/``qk`` that reproduce every value exactly, prices as the first
price and then the step to the next level (a few ticks: one or two bytes), then deflated.
The real recordings' snapshots take about a fifth of the raw size.

Exactness is checked when encoding: if decoding would not give back every float bit for bit
(a value with more than 12 decimals, or beyond 2**53 when scaled), the side is stored raw
(float64) instead. :func:`decode_side` therefore always returns exactly the arrays given to
:func:`encode_side`.

Format (version 1), one blob per side::

    byte 0      1 = scaled integers, 2 = raw float64
    scaled:     byte 1 pk, byte 2 qk, then zlib(int64[n] price steps ++ int64[n] sizes)
    raw:        zlib(float64[n] prices ++ float64[n] sizes)

An empty side is the empty blob ``b""``.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["MAX_DECIMALS", "decode_side", "encode_side"]

MAX_DECIMALS = 12
_SCALED = 1
_RAW = 2
_POW = [10.0**k for k in range(MAX_DECIMALS + 1)]  # exact in float64
_LIMIT = float(2**53)


def _decimals(values: np.ndarray) -> int | None:
    """The smallest k <= MAX_DECIMALS with ``rint(v * 10**k) / 10**k == v`` for all v."""
    for k in range(MAX_DECIMALS + 1):
        scaled = np.rint(values * _POW[k])
        if np.abs(scaled).max(initial=0.0) >= _LIMIT:
            return None
        if np.array_equal(scaled / _POW[k], values):
            return k
    return None


def encode_side(prices: np.ndarray, qtys: np.ndarray) -> bytes:
    """Encode one side (best level first) exactly. NaN padding must be removed first.

    Raises ``ValueError`` for arrays of different lengths or with non-finite values.
    """
    p = np.ascontiguousarray(prices, dtype=np.float64)
    q = np.ascontiguousarray(qtys, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"prices {p.shape} and sizes {q.shape} must be 1-d of one length")
    if not p.size:
        return b""
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("a book level is not finite (NaN or inf): drop padding before storing")
    pk = _decimals(p)
    qk = _decimals(q)
    if pk is not None and qk is not None:
        pi = np.rint(p * _POW[pk]).astype(np.int64)
        steps = np.empty_like(pi)
        steps[0] = pi[0]
        steps[1:] = np.diff(pi)
        qi = np.rint(q * _POW[qk]).astype(np.int64)
        body = zlib.compress(steps.tobytes() + qi.tobytes(), 6)
        return bytes((_SCALED, pk, qk)) + body
    return bytes((_RAW,)) + zlib.compress(p.tobytes() + q.tobytes(), 6)


def decode_side(blob: bytes | memoryview | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``(prices, sizes)`` float64 arrays of a blob made by :func:`encode_side`."""
    if not blob:
        return np.empty(0), np.empty(0)
    data = bytes(blob)
    kind = data[0]
    if kind == _SCALED:
        pk, qk = data[1], data[2]
        ints = np.frombuffer(zlib.decompress(data[3:]), dtype=np.int64)
        n = ints.size // 2
        prices = np.cumsum(ints[:n]).astype(np.float64) / _POW[pk]
        sizes = ints[n:].astype(np.float64) / _POW[qk]
        return prices, sizes
    if kind == _RAW:
        vals = np.frombuffer(zlib.decompress(data[1:]), dtype=np.float64)
        n = vals.size // 2
        return vals[:n].copy(), vals[n:].copy()
    raise ValueError(f"unknown book blob kind {kind}: written by a newer lq? upgrade lq")
