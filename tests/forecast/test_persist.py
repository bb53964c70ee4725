"""Model files: a saved model scores the same rows identically in another process, and a
file that does not match (format, features, versions, damage) is refused clearly."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _sim import ar1

from lq.errors import ModelFileError
from lq.forecast import FeatureSpec, TargetSpec
from lq.forecast.persist import load_model, read_manifest, save_model
from lq.forecast.trained import train_model

SPEC = FeatureSpec(garch=True, garch_fit=300, book=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    bars = ar1(3000, 0.2, seed=8)
    m = train_model(
        bars.iloc[:2500], target=TargetSpec(kind="sign"), features=SPEC, model="boosted"
    )
    path = save_model(m, tmp_path_factory.mktemp("m") / "btc")
    bars.to_parquet(path.parent / "bars.parquet")
    return m, path, bars


def test_a_reloaded_model_scores_the_same_rows_identically_in_another_process(trained):
    m, path, bars = trained
    assert path.suffix == ".lqm"
    here = m.score(bars)
    assert here["forecast"].notna().sum() > 2000
    code = (
        "import sys, pandas as pd\n"
        "from lq.forecast.persist import load_model\n"
        "m = load_model(sys.argv[1])\n"
        "s = m.score(pd.read_parquet(sys.argv[2]))\n"
        "s.to_parquet(sys.argv[3])\n"
    )
    out = path.parent / "scores.parquet"
    r = subprocess.run(
        [sys.executable, "-c", code, str(path), str(path.parent / "bars.parquet"), str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    import pandas as pd

    there = pd.read_parquet(out)
    # bit-identical: same estimator, same feature parameters (GARCH), same rows
    assert np.array_equal(here.to_numpy(), there.to_numpy(), equal_nan=True)
    back = load_model(path)
    assert back.features == SPEC and back.params == m.params and back.target == m.target
    assert back.baseline == m.baseline and back.n_train == m.n_train


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as z:
        man = json.loads(z.read("manifest.json"))
        payload = z.read("model.pkl")
    man, payload = edit(man, payload)
    with zipfile.ZipFile(dst, "w") as z:
        z.writestr("manifest.json", json.dumps(man))
        z.writestr("model.pkl", payload)
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, p: ({**m, "format_version": 99}, p), "format 99"),
        (lambda m, p: ({**m, "feature_version": 0}, p), "feature version 0"),
        (
            lambda m, p: ({**m, "features": {**m["features"], "lags": 9}}, p),
            "does not match its hash",
        ),
        (
            lambda m, p: ({**m, "versions": {**m["versions"], "sklearn": "0.1"}}, p),
            "scikit-learn 0.1",
        ),
        (lambda m, p: (m, p[:-1] + b"x"), "damaged"),
    ],
)
def test_a_mismatching_or_damaged_file_is_refused_with_a_clear_message(
    trained, tmp_path, edit, message
):
    _, path, _ = trained
    bad = _rewrite(path, tmp_path / "bad.lqm", edit)
    with pytest.raises(ModelFileError, match=message) as e:
        load_model(bad)
    assert "\n" not in str(e.value)


def test_expecting_another_spec_is_refused_and_junk_is_not_an_lq_model(trained, tmp_path):
    _, path, _ = trained
    with pytest.raises(ModelFileError, match="differ from the expected"):
        load_model(path, expect=FeatureSpec())
    assert load_model(path, expect=SPEC).features == SPEC
    junk = tmp_path / "junk.lqm"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not an lq model file"):
        load_model(junk)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.lqm")
    assert read_manifest(path)["symbol"] == "SIMUSDT"
