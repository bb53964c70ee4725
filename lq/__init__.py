"""lq: a live quant research workbench for crypto markets, centred on Jupyter."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
