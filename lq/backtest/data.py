"""Input bars: checking and aligning the DataFrames a backtest runs on.

A backtest takes either one bars DataFrame (one symbol) or a ``dict`` of them (several
symbols, e.g. the two legs of a pair). Each DataFrame is indexed by a tz-aware UTC
``DatetimeIndex`` (strictly increasing) and has at least ``open`` and ``close`` columns with
finite, positive prices (``high``, ``low``, ``volume``, ``bid``, ``ask``, ``spread`` are used
when present). Several symbols are aligned on the timestamps they all share.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import pandas as pd

from lq.errors import ValidationError

__all__ = ["DEFAULT_SYMBOL", "Bars", "data_fingerprint", "normalise_data"]

logger = logging.getLogger(__name__)

#: What a backtest and a strategy receive: one bars DataFrame, or one per symbol.
Bars: TypeAlias = "pd.DataFrame | dict[str, pd.DataFrame]"

#: Symbol name used for a single DataFrame without ``attrs["symbol"]``.
DEFAULT_SYMBOL = "asset"


def _check_frame(frame: pd.DataFrame, symbol: str) -> None:
    where = f"data[{symbol!r}]"
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(where, type(frame).__name__, "expected a bars DataFrame")
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise ValidationError(
            f"{where}.index", type(idx).__name__, "expected a tz-aware (UTC) DatetimeIndex"
        )
    if not idx.is_monotonic_increasing or not idx.is_unique:
        raise ValidationError(f"{where}.index", "unsorted", "timestamps must strictly increase")
    for col in ("open", "close"):
        if col not in frame.columns:
            raise ValidationError(
                f"{where}.columns", list(frame.columns), f"missing the {col!r} column"
            )
        v = frame[col].to_numpy(dtype=float)
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"{where}.{col}",
                float(v[i]),
                f"prices must be finite and > 0 (first bad bar {idx[i]})",
            )


def normalise_data(data: Bars) -> tuple[dict[str, pd.DataFrame], bool]:
    """Check bars and align several symbols on their common timestamps.

    Returns
    -------
    frames
        ``{symbol: bars}`` in the caller's order, all on the same index (UTC).
    single
        True when ``data`` was a single DataFrame.
    """
    if isinstance(data, pd.DataFrame):
        symbol = str(data.attrs.get("symbol", DEFAULT_SYMBOL))
        _check_frame(data, symbol)
        frame = data if str(data.index.tz) == "UTC" else data.tz_convert("UTC")
        return {symbol: frame}, True
    if not isinstance(data, Mapping) or len(data) == 0:
        raise ValidationError("data", type(data).__name__, "expected a DataFrame or a dict of them")
    frames: dict[str, pd.DataFrame] = {}
    for sym, frame in data.items():
        _check_frame(frame, str(sym))
        frames[str(sym)] = frame if str(frame.index.tz) == "UTC" else frame.tz_convert("UTC")
    common = None
    for frame in frames.values():
        common = frame.index if common is None else common.intersection(frame.index)
    assert common is not None
    if len(common) == 0:
        raise ValidationError("data", list(frames), "the symbols share no timestamp")
    dropped = {s: len(f) - len(common) for s, f in frames.items() if len(f) != len(common)}
    if dropped:
        logger.warning(
            "aligned %s on %d common bars; dropped %s", list(frames), len(common), dropped
        )
        frames = {s: f.loc[common] for s, f in frames.items()}
    return frames, False


def data_fingerprint(frames: Mapping[str, pd.DataFrame]) -> str:
    """SHA-256 (16 hex digits) of the symbols, timestamps and open/close prices."""
    h = hashlib.sha256()
    for sym, f in frames.items():
        h.update(sym.encode())
        h.update(np.ascontiguousarray(f.index.asi8).tobytes())
        h.update(np.ascontiguousarray(f["open"].to_numpy(dtype=float)).tobytes())
        h.update(np.ascontiguousarray(f["close"].to_numpy(dtype=float)).tobytes())
    return h.hexdigest()[:16]
