"""Correlation across symbols: matrices, rolling correlation, clustering for heatmaps.

Correlation distance is ``d = sqrt((1 - rho) / 2)`` (Mantegna 1999): 0 for identical
moves, 1 for opposite moves, and a proper metric for hierarchical clustering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
from scipy.spatial.distance import squareform

from lq.errors import ValidationError

from ._common import check_choice, check_int
from ._typing import ClusterMethod, CorrelationMethod, Float64Array
from .rolling import rolling_correlation

__all__ = [
    "ClusterResult",
    "cluster_symbols",
    "correlation_distance",
    "correlation_matrix",
    "rolling_correlation",
]


def _frame(returns: pd.DataFrame, field: str = "returns") -> pd.DataFrame:
    if isinstance(returns, np.ndarray) and returns.ndim == 2:
        returns = pd.DataFrame(returns)
    if not isinstance(returns, pd.DataFrame) or returns.shape[1] < 2:
        raise ValidationError(field, getattr(returns, "shape", None), "need a DataFrame, >= 2 cols")
    return returns.astype(np.float64)


def correlation_matrix(
    returns: pd.DataFrame, *, method: CorrelationMethod = "pearson", min_periods: int = 2
) -> pd.DataFrame:
    """Correlation matrix of returns, pairwise over rows where both symbols are valid.

    Examples
    --------
    >>> df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 4.0, 9.0]})
    >>> correlation_matrix(df, method="spearman").loc["a", "b"]
    np.float64(1.0)
    """
    check_choice(method, "method", ("pearson", "spearman"))
    return _frame(returns).corr(method=method, min_periods=check_int(min_periods, "min_periods"))


def correlation_distance(corr: pd.DataFrame) -> pd.DataFrame:
    """``sqrt((1 - rho) / 2)`` elementwise, with an exact zero diagonal.

    Examples
    --------
    >>> correlation_distance(pd.DataFrame([[1.0, -1.0], [-1.0, 1.0]])).to_numpy().tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    d = np.sqrt(np.clip((1.0 - corr.to_numpy()) / 2.0, 0.0, 1.0))
    np.fill_diagonal(d, 0.0)
    return pd.DataFrame(d, index=corr.index, columns=corr.columns)


@dataclass(frozen=True, slots=True)
class ClusterResult:
    """Clusters of symbols.

    ``labels``: cluster number per symbol (1-based). ``order``: symbols in dendrogram leaf
    order (optimal leaf ordering; use it to sort heatmap rows and columns). ``linkage``: the
    scipy linkage matrix for ``scipy.cluster.hierarchy.dendrogram``.
    """

    method: str
    labels: pd.Series
    order: tuple[str, ...]
    linkage: Float64Array
    correlation: pd.DataFrame
    distance: pd.DataFrame


def cluster_symbols(
    returns: pd.DataFrame,
    *,
    n_clusters: int = 2,
    method: ClusterMethod = "hierarchical",
    linkage_method: str = "average",
    correlation: CorrelationMethod = "pearson",
    seed: int = 0,
) -> ClusterResult:
    """Group symbols whose returns move together.

    Parameters
    ----------
    returns : DataFrame
        One column per symbol (>= 2 columns; rows may contain NaN).
    n_clusters : int
        Number of clusters to cut into.
    method : {"hierarchical", "kmeans"}
        ``hierarchical``: scipy agglomerative clustering on correlation distance, cut into
        ``n_clusters`` (``fcluster(..., "maxclust")``). ``kmeans``: scikit-learn KMeans on each
        symbol's row of the correlation matrix (seeded). The linkage and the leaf order are
        computed in both cases.
    linkage_method : str
        scipy linkage method ("average", "complete", "single", "ward"...).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f1, f2 = rng.standard_normal((2, 500))
    >>> df = pd.DataFrame({"a": f1 + 0.1 * rng.standard_normal(500), "b": f1,
    ...                    "c": f2, "d": f2 + 0.1 * rng.standard_normal(500)})
    >>> cluster_symbols(df).labels.tolist()
    [1, 1, 2, 2]
    """
    check_choice(method, "method", ("hierarchical", "kmeans"))
    frame = _frame(returns)
    n_clusters = check_int(n_clusters, "n_clusters")
    if n_clusters > frame.shape[1]:
        raise ValidationError("n_clusters", n_clusters, f"more than the {frame.shape[1]} symbols")
    corr = correlation_matrix(frame, method=correlation)
    if corr.isna().to_numpy().any():
        bad = corr.columns[corr.isna().any()].tolist()
        raise ValidationError("returns", bad, "constant or too short: correlation undefined")
    dist = correlation_distance(corr)
    z = linkage(
        squareform(dist.to_numpy(), checks=False), method=linkage_method, optimal_ordering=True
    )
    order = tuple(str(corr.columns[i]) for i in leaves_list(z))
    if method == "hierarchical":
        raw = fcluster(z, n_clusters, criterion="maxclust")
    else:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
        raw = km.fit_predict(corr.to_numpy())
    # number clusters 1.. in order of first appearance among the columns (stable labels)
    remap: dict[int, int] = {}
    labels = [remap.setdefault(int(c), len(remap) + 1) for c in raw]
    return ClusterResult(
        method=method,
        labels=pd.Series(labels, index=corr.columns, name="cluster"),
        order=order,
        linkage=np.asarray(z, dtype=np.float64),
        correlation=corr,
        distance=dist,
    )
