"""Venues: everything one venue knows lives in ``lq/venues/<venue>/``."""

from lq.venues.instrument import Instrument, canonical_asset

__all__ = ["Instrument", "canonical_asset"]
