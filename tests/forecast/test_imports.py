"""The collector loads the forecast hook whether or not a model is deployed: that path must not
import the lab (scikit-learn, scipy, statsmodels, arch took a 2-symbol collector from about 160
to 385 MB of RSS). And the lazy package keeps its public names what the eager one gave."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sklearn", "scipy", "statsmodels", "arch", "lightgbm", "matplotlib")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_the_collectors_forecast_path_imports_no_lab(tmp_path):
    db = tmp_path / "x.sqlite"
    loaded = _modules_after(
        "import lq.collector.cli, lq.alerts.engine\n"
        "from lq.forecast.hook import ForecastHook\n"
        "from lq.forecast.store import deployed_models\n"
        "from lq.store import Writer\n"
        f"Writer({str(db)!r}).close()\n"
        f"assert deployed_models({str(db)!r}).empty\n"
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_public_names_survive_a_later_import_of_a_same_named_submodule():
    import importlib
    import types

    import lq.forecast

    importlib.import_module("lq.forecast.evaluate")  # the submodule, imported after the package
    from lq.forecast import evaluate, walk_forward

    assert callable(evaluate) and not isinstance(evaluate, types.ModuleType)
    assert callable(walk_forward)
    assert set(lq.forecast.__all__) == set(lq.forecast._LAZY)
