"""Model files: a trained model saved with its feature spec and versions, refused on mismatch.

A model file (``.lqm``) is a zip archive of two members:

``manifest.json``
    What the model is and what it was made with: the file format version, lq's
    :data:`~lq.forecast.features.FEATURE_VERSION`, the feature spec and its content hash,
    the learned feature parameters, the target, symbol, bar interval, training range, the
    out-of-sample evaluation, the versions of lq, scikit-learn, numpy (and LightGBM), and
    the SHA-256 of the payload.
``model.pkl``
    The fitted estimators (pickle).

:func:`load_model` reads and checks the manifest **before** unpickling anything, and
refuses, with a message that says what to do, a file whose format or feature version
differs from this lq's, whose spec does not hash to what it claims (or differs from the
``expect`` spec a caller needs), whose payload is damaged, or whose scikit-learn/LightGBM
version differs from the installed one (pickled estimators are not portable across those
versions). Only load model files you made or trust: unpickling runs code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from lq.backtest._config import canonical_json, content_hash
from lq.errors import ModelFileError
from lq.forecast.features import FEATURE_VERSION, FeatureParams, FeatureSpec
from lq.forecast.targets import TargetSpec
from lq.forecast.trained import TrainedModel

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "read_manifest", "save_model"]

FORMAT = "lq-forecast-model"
#: Bumped when the file layout or the pickled classes change incompatibly.
FORMAT_VERSION = 1


def _versions() -> dict[str, str | None]:
    import numpy
    import sklearn

    import lq

    try:
        import lightgbm

        lgb: str | None = lightgbm.__version__
    except ImportError:
        lgb = None
    return {
        "lq": lq.__version__,
        "sklearn": sklearn.__version__,
        "numpy": numpy.__version__,
        "lightgbm": lgb,
    }


def save_model(model: TrainedModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (``.lqm`` is appended when there is no suffix)."""
    p = Path(path)
    if not p.suffix:
        p = p.with_suffix(".lqm")
    payload = pickle.dumps(
        {"estimator": model.estimator, "baseline": model.baseline_estimator}, protocol=5
    )
    spec = model.features.to_dict()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_version": FEATURE_VERSION,
        "versions": _versions(),
        "name": model.name,
        "model": model.model,
        "baseline": model.baseline,
        "features": spec,
        "features_hash": content_hash(spec),
        "params": model.params.to_dict(),
        "target": model.target.to_dict(),
        "symbol": model.symbol,
        "pair": model.pair,
        "interval_us": model.interval_us,
        "trained_from": model.trained_from,
        "trained_to": model.trained_to,
        "n_train": model.n_train,
        "created_ts": model.created_ts,
        "evaluation": model.evaluation,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", canonical_json(manifest))
        z.writestr("model.pkl", payload)
    os.replace(tmp, p)  # a reader never sees half a file
    return p


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a model file, without loading the model."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such model file")
    try:
        with zipfile.ZipFile(p) as z:
            data = json.loads(z.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelFileError(
            f"{p}: not an lq model file ({exc}); save models with model.save()"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{p}: not an lq model file (format {data.get('format')!r})")
    return data


def _check(p: Path, m: dict[str, Any], expect: FeatureSpec | None) -> None:
    retrain = "retrain it with this lq (`lq forecast train` or lq.forecast.train_model)"
    if m.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{p}: model file format {m.get('format_version')}, this lq reads format "
            f"{FORMAT_VERSION}: {retrain}"
        )
    if m.get("feature_version") != FEATURE_VERSION:
        raise ModelFileError(
            f"{p}: made with feature version {m.get('feature_version')}, this lq computes "
            f"features version {FEATURE_VERSION} (their definitions changed): {retrain}"
        )
    spec = m.get("features")
    if not isinstance(spec, dict) or content_hash(spec) != m.get("features_hash"):
        raise ModelFileError(
            f"{p}: the feature spec does not match its hash (edited or damaged file)"
        )
    if expect is not None and content_hash(expect.to_dict()) != m["features_hash"]:
        raise ModelFileError(
            f"{p}: the model's features {FeatureSpec.from_dict(spec).names} differ from the "
            f"expected {expect.names}: use a model trained with that FeatureSpec"
        )
    have = _versions()
    saved = m.get("versions") or {}
    for lib in ("sklearn", "lightgbm"):
        if lib == "lightgbm" and m.get("model") != "lightgbm":
            continue
        if saved.get(lib) != have.get(lib):
            name = "scikit-learn" if lib == "sklearn" else "LightGBM"
            raise ModelFileError(
                f"{p}: saved with {name} {saved.get(lib)}, this environment has "
                f"{have.get(lib)}; pickled models do not carry across versions: {retrain}, "
                f"or install {name}=={saved.get(lib)}"
            )


def load_model(path: str | os.PathLike[str], *, expect: FeatureSpec | None = None) -> TrainedModel:
    """Load a model saved by :func:`save_model`, after checking it (see the module
    docstring); ``expect`` additionally requires this exact feature spec."""
    p = Path(path)
    m = read_manifest(p)
    _check(p, m, expect)
    with zipfile.ZipFile(p) as z:
        payload = z.read("model.pkl")
    if hashlib.sha256(payload).hexdigest() != m.get("payload_sha256"):
        raise ModelFileError(f"{p}: the model payload is damaged (SHA-256 mismatch)")
    try:
        obj = pickle.load(io.BytesIO(payload))
    except Exception as exc:
        raise ModelFileError(f"{p}: the model cannot be unpickled ({exc!r})") from None
    return TrainedModel(
        name=str(m["name"]),
        model=str(m["model"]),
        baseline=str(m["baseline"]),
        estimator=obj["estimator"],
        baseline_estimator=obj["baseline"],
        features=FeatureSpec.from_dict(m["features"]),
        params=FeatureParams.from_dict(m["params"]),
        target=TargetSpec.from_dict(m["target"]),
        symbol=str(m["symbol"]),
        pair=m.get("pair"),
        interval_us=int(m["interval_us"]),
        trained_from=int(m["trained_from"]),
        trained_to=int(m["trained_to"]),
        n_train=int(m["n_train"]),
        evaluation=m.get("evaluation"),
        created_ts=int(m["created_ts"]),
    )
