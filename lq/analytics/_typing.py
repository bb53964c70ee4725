"""Type aliases and the string options of :mod:`lq.analytics`, in one place (as in ``arch``)."""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "ArrayLike1D",
    "ClusterMethod",
    "CorrelationMethod",
    "FillPolicy",
    "Float64Array",
    "ForecastModel",
    "GarchDist",
    "GarchMean",
    "GarchModel",
    "HedgeMethod",
    "IdRule",
    "LeadLagMethod",
    "PriceSource",
    "PriceTransform",
    "ReturnKind",
    "VolumeBy",
]

Float64Array: TypeAlias = npt.NDArray[np.float64]
#: A one-dimensional input: a pandas Series or a numpy array (lists are accepted too).
ArrayLike1D: TypeAlias = "pd.Series | npt.NDArray[np.floating] | list[float]"

ReturnKind: TypeAlias = Literal["simple", "log"]
HedgeMethod: TypeAlias = Literal["ols", "huber", "kalman"]
CorrelationMethod: TypeAlias = Literal["pearson", "spearman"]
GarchModel: TypeAlias = Literal["garch", "gjr", "egarch"]
GarchDist: TypeAlias = Literal["normal", "t"]
GarchMean: TypeAlias = Literal["constant", "zero"]
FillPolicy: TypeAlias = Literal["ffill", "drop"]
ClusterMethod: TypeAlias = Literal["hierarchical", "kmeans"]
ForecastModel: TypeAlias = Literal["logistic", "random_forest"]

# cross-venue analytics (crossvenue.py, leadlag.py)
PriceSource: TypeAlias = Literal["last", "mid"]
PriceTransform: TypeAlias = Literal["log", "none"]
LeadLagMethod: TypeAlias = Literal["hayashi_yoshida", "correlation"]
VolumeBy: TypeAlias = Literal["base", "quote"]
IdRule: TypeAlias = Literal["contiguous", "none"]
