"""Where a distributed sweep's tasks read their bars: a store slice named by location and time.

A :class:`StoreSlice` is small and picklable: the SQLite path, the archive location, the
symbols, the interval and a time range. A Ray task (:mod:`lq.backtest.ray_engine`) loads its
own bars from it through :class:`lq.store.Store` (the Parquet archive and the SQLite tail as
one), so no DataFrame travels through the driver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["StoreSlice"]


@dataclasses.dataclass(frozen=True)
class StoreSlice:
    """Bars of ``symbols`` at ``interval`` in ``[start, end)`` from the store at ``db``.

    ``archive`` is as for :class:`~lq.store.Store` (None: ``<db>.archive`` if it exists).
    The other fields are those of :func:`lq.backtest.runs.load_bars`.
    """

    db: str
    symbols: tuple[str, ...]
    interval: str = "1m"
    start: Any = None
    end: Any = None
    last: str | float | None = None
    quotes: str = "none"
    archive: str | None = None
    min_bars: int | None = None

    def load(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        """Read the bars (the archive and the SQLite tail as one frame per symbol)."""
        from lq.backtest.runs import MIN_BARS, load_bars
        from lq.store.reader import Store

        with Store(self.db, archive=self.archive) as store:
            return load_bars(
                store,
                list(self.symbols),
                interval=self.interval,
                start=self.start,
                end=self.end,
                last=self.last,
                quotes=self.quotes,  # type: ignore[arg-type]
                min_bars=MIN_BARS if self.min_bars is None else self.min_bars,
            )

    def pinned(
        self, frames: Mapping[str, pd.DataFrame], lo: int = 0, hi: int | None = None
    ) -> StoreSlice:
        """The exact range of bars ``lo:hi`` of ``frames`` (loaded from this slice) as µs.

        A task reading the pinned slice gets the same bars however the store grows meanwhile
        (a ``last`` window is resolved once, by the driver).
        """
        from lq.analytics.bars import interval_us
        from lq.store.reader import to_us_range

        index = next(iter(frames.values())).index
        n = len(index)
        hi = n if hi is None else hi
        step = interval_us(self.interval)
        start = int(index[lo].value // 1000)
        if hi < n:
            end = int(index[hi].value // 1000)
        else:
            end = int(index[n - 1].value // 1000) + step
            own_hi = to_us_range(self.start or None, self.end or None)[1]
            if own_hi is not None:
                end = min(end, own_hi)
        return dataclasses.replace(self, start=start, end=end, last=None, min_bars=1)
