"""The notebooks run, with small parameters, on the real recordings (papermill and nbval)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
DATA = REPO / ".." / "shared" / "data" / "binance"

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


@pytest.fixture
def data_dir() -> Path:
    if not (DATA / "spot_btcusdt_20240808.gz").exists():
        pytest.skip(f"real recordings not found at {DATA.resolve()} (shared/ beside the repo)")
    return DATA.resolve()


def _run(name: str, tmp_path: Path, **params: object):
    import nbformat
    import papermill as pm

    out = tmp_path / f"{name}.out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        parameters=params,
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def _text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_pairs_research_adf_matches_statsmodels(tmp_path: Path, data_dir: Path) -> None:
    from statsmodels.tsa.stattools import adfuller

    from lq.store import Store

    db = tmp_path / "pairs.sqlite"
    nb = _run("pairs_research", tmp_path, data_dir=str(data_dir), db=str(db), interval="5s")
    m = re.search(r"ADF p-value (\d\.\d{3}), half-life ([\d.]+) bars", _text(nb))
    assert m, _text(nb)
    # reference: numpy polyfit OLS of log ETH on log BTC (ffill-aligned 5 s closes), then
    # statsmodels adfuller with AIC lag search; the notebook prints 3 decimals (tol 5e-4)
    with Store(db) as store:
        a = store.bars("ETHUSDT", "5s")["close"]
        b = store.bars("BTCUSDT", "5s")["close"]
    px = np.log(a.to_frame("y").join(b.rename("x"), how="outer").ffill().dropna())
    beta, alpha = np.polyfit(px["x"], px["y"], 1)
    p_ref = adfuller(px["y"] - alpha - beta * px["x"], autolag="AIC", result_object=False)[1]
    assert abs(float(m.group(1)) - p_ref) <= 5e-4


def test_volatility_notebook_runs_and_fits_garch(tmp_path: Path, data_dir: Path) -> None:
    nb = _run("volatility", tmp_path, data_dir=str(data_dir), db=str(tmp_path / "v.sqlite"))
    assert re.search(r"garch: next-bar annualised vol [\d.]+%, converged True", _text(nb))


def test_clustering_notebook_scans_the_pair(tmp_path: Path, data_dir: Path) -> None:
    nb = _run("clustering", tmp_path, data_dir=str(data_dir), db=str(tmp_path / "c.sqlite"))
    text = _text(nb)
    assert "leaf order:" in text and "ETHUSDT" in text and "BTCUSDT" in text


def test_dashboard_notebook_draws_once_with_live_false(tmp_path: Path, data_dir: Path) -> None:
    from lq.feeds import Parser
    from lq.feeds.events import Trade
    from lq.feeds.recording import read_frames
    from lq.store import Writer

    db = tmp_path / "d.sqlite"
    parser = Parser()
    with Writer(db) as w:
        for f in sorted(data_dir.glob("spot_*.gz")):
            w.write_trades(
                [
                    e
                    for ns, raw in read_frames(f)
                    for e in parser.parse(raw, recv_ts=ns // 1000)
                    if isinstance(e, Trade)
                ]
            )
    nb = _run("dashboard", tmp_path, db=str(db), live=False)
    outs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)
    assert not any(o.get("output_type") == "error" for o in outs)


def test_research_notebooks_pass_nbval_lax(tmp_path: Path, data_dir: Path) -> None:
    import papermill as pm

    prepared = []
    for name in ("pairs_research", "clustering"):
        out = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(out),
            parameters={"data_dir": str(data_dir), "db": str(tmp_path / f"{name}.sqlite")},
            prepare_only=True,
        )
        prepared.append(str(out))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-cell-timeout=120",
            "--rootdir",
            str(tmp_path),
            *prepared,
        ],
        capture_output=True,
        text=True,
        cwd=NOTEBOOKS,
    )
    assert r.returncode == 0, r.stdout[-3000:]
