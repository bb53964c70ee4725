import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr

from lq.analytics import cluster_symbols, correlation_distance, correlation_matrix


def _blocks(n=600, seed=0):
    rng = np.random.default_rng(seed)
    f1, f2 = rng.standard_normal((2, n))
    noise = 0.3 * rng.standard_normal((6, n))
    cols = {"A1": f1, "B1": f2, "A2": f1, "B2": f2, "A3": f1, "B3": f2}
    return pd.DataFrame({k: v + e for (k, v), e in zip(cols.items(), noise, strict=True)})


def test_correlation_matrix_matches_pandas_and_scipy():
    df = _blocks()
    df.iloc[5, 2] = np.nan
    np.testing.assert_allclose(correlation_matrix(df), df.corr(), rtol=1e-14)  # pandas
    clean = df.dropna()
    ref = spearmanr(clean.to_numpy()).statistic  # reference: scipy spearmanr
    np.testing.assert_allclose(correlation_matrix(clean, method="spearman"), ref, rtol=1e-12)


def test_correlation_distance_hand_values():
    c = pd.DataFrame([[1.0, 0.0], [0.0, 1.0]])
    assert correlation_distance(c).iloc[0, 1] == pytest.approx(np.sqrt(0.5), rel=1e-15)


def test_hierarchical_clusters_separate_the_two_factors_and_match_scipy():
    res = cluster_symbols(_blocks())
    assert res.labels.to_dict() == {"A1": 1, "B1": 2, "A2": 1, "B2": 2, "A3": 1, "B3": 2}
    # heatmap order keeps each block contiguous
    blocks = [s[0] for s in res.order]
    assert blocks in (list("AAABBB"), list("BBBAAA"))
    d = squareform(res.distance.to_numpy(), checks=False)
    ref = linkage(d, method="average", optimal_ordering=True)  # reference: scipy directly
    np.testing.assert_allclose(res.linkage, ref, rtol=1e-12)


def test_kmeans_option_finds_the_same_groups():
    res = cluster_symbols(_blocks(), method="kmeans", seed=0)
    assert res.labels.tolist() == [1, 2, 1, 2, 1, 2]
