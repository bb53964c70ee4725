"""The collector: the one process that writes the database (``lq collect``)."""

from __future__ import annotations

from lq.collector.core import Collector, CollectorHook, CollectorStats, FeedSpec, source_label

__all__ = ["Collector", "CollectorHook", "CollectorStats", "FeedSpec", "source_label"]
