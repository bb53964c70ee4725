"""Every notebook runs under papermill against a database it is given, and leaves it as it
was: same bytes in the file and in its -wal, nothing new in notebooks/ (a notebook once
built its demo store at the path it was handed, deleting the user's ticks and alert rules).

The database is shaped like a live one: ticks checkpointed into the file, and an alert rule
in a -wal that a still-open writer connection has not checkpointed, so a reader that wrote
anything (a checkpoint, a migration, a rebuilt store) changes one of the two.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
DATA = REPO / ".." / "shared" / "data" / "binance"

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

#: Small parameters per notebook; every notebook in notebooks/ must be listed.
PARAMS: dict[str, dict[str, object]] = {
    "pairs_research": {"interval": "5s", "sim_minutes": 10},
    "volatility": {"sim_minutes": 10},
    "clustering": {"sim_minutes": 10},
    "dashboard": {"live": False},
    "backtest": {
        "interval": "1s",
        "params": {"lookback": 30, "entry": 1.5, "exit": 0.3},
        "lookahead_cuts": 1,
    },
    # store_result=False: the run row is the one write it makes, and only when asked
    "forecast": {"models": ["linear"], "folds": 3, "workers": 1, "store_result": False},
}


def _data_dir() -> Path:
    if not (DATA / "spot_btcusdt_20240808.gz").exists():
        pytest.skip(f"real recordings not found at {DATA.resolve()} (shared/ beside the repo)")
    return DATA.resolve()


@pytest.fixture
def data_dir() -> Path:
    return _data_dir()


def _record(db: Path, data_dir: Path) -> Path:
    """The two real recordings' trades, stored by the single writer."""
    from lq.feeds import Parser
    from lq.feeds.events import Trade
    from lq.feeds.recording import read_frames
    from lq.store import Writer

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
    return db


@pytest.fixture(scope="module")
def given_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database as a user hands it over: ticks in the file, an alert rule in the -wal of a
    writer connection that stays open (not checkpointed) for the whole module."""
    from lq.alerts.rules import Rule
    from lq.alerts.store import AlertStore

    db = _record(tmp_path_factory.mktemp("given") / "user.sqlite", _data_dir())
    alerts = AlertStore(db, known_symbols=["BTCUSDT", "ETHUSDT"])
    alerts.conn.execute("PRAGMA wal_autocheckpoint=0")
    alerts.add(Rule(name="keep-me", metric="price", symbol="BTCUSDT", threshold=1e6))
    assert Path(f"{db}-wal").stat().st_size > 0
    try:
        yield db
    finally:
        alerts.close()


def _fingerprint(db: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal"):
        p = Path(f"{db}{suffix}")
        out[suffix or "db"] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


def _listing() -> list[str]:
    return sorted(str(p.relative_to(NOTEBOOKS)) for p in NOTEBOOKS.rglob("*"))


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


def test_every_notebook_is_covered() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_notebook_leaves_the_database_it_is_given_unchanged(
    name: str, given_db: Path, tmp_path: Path
) -> None:
    before, listed = _fingerprint(given_db), _listing()
    nb = _run(name, tmp_path, db=str(given_db), **PARAMS[name])
    assert _fingerprint(given_db) == before, f"{name} changed {given_db}"
    assert _listing() == listed, f"{name} left files in notebooks/"
    outs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outs)
    text = _text(nb)
    # each notebook did its job on the data it was given
    if name == "pairs_research":
        _check_pairs_adf(text, given_db)
        _check_pairs_conclusion(text)
    elif name == "volatility":
        assert re.search(r"garch: next-bar annualised vol [\d.]+%, converged True", text)
        _check_volatility_conclusion(text)
    elif name == "clustering":
        assert "leaf order:" in text and "ETHUSDT" in text and "BTCUSDT" in text
        _check_clustering_conclusion(text)
    elif name == "dashboard":
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)
    elif name == "backtest":
        assert "'run_id': None" in text  # read-only by default: no run stored


def _verdicts(text: str, test: str, yes: str, no: str) -> dict[str, float]:
    """Every ``<Data...>: <test> p = X < 0.05: <yes...>`` line: the words follow the number.

    Returns the p-value per data set (``Simulator``, ``Recording``)."""
    found = {}
    pat = rf"^(Simulator|Recording)[^:\n]*: {test}p (=|<) ([\d.]+) (<|>=) 0\.05: (.*)$"
    for m in re.finditer(pat, text, re.M):
        data, rel, p, cmp, words = m.groups()
        value = float(p)
        if rel == "<":  # "p < 0.001"
            assert value == 0.001 and cmp == "<", m.group(0)
        assert (cmp == "<") == (value < 0.05 or rel == "<"), m.group(0)
        assert (yes in words) == (cmp == "<") and (no in words) == (cmp == ">="), m.group(0)
        found[data] = value if rel == "=" else 0.0
    assert set(found) == {"Simulator", "Recording"}, text
    return found


def _check_pairs_conclusion(text: str) -> None:
    """The conclusion is worded from the two ADF p-values (never fixed text)."""
    p = _verdicts(text, "", "looks mean-reverting", "no evidence")
    (conclusion,) = re.findall(r"^Conclusion: (.*)$", text, re.M)
    if p["Simulator"] < 0.05 and p["Recording"] >= 0.05:
        assert "none in the recording" in conclusion
    elif p["Simulator"] < 0.05:
        assert "also a mean-reverting recorded spread" in conclusion
    else:
        assert "did not find the relation" in conclusion
    # the simulator builds ETH = 0.8 BTC in: the fitted hedge ratio is near it
    beta = float(re.search(r"fitted β ([\d.]+), built in: 0\.8", text).group(1))
    assert 0.6 < beta < 1.0


def _check_volatility_conclusion(text: str) -> None:
    p = _verdicts(text, "ARCH LM ", "shows volatility clustering", "no evidence")
    (conclusion,) = re.findall(r"^Conclusion: (.*)$", text, re.M)
    clusters = p["Recording"] < 0.05
    assert ("volatility clusters in the recording" in conclusion) == clusters
    assert ("shows no clustering" in conclusion) == (not clusters)
    # the simulator switches between a calm and a stressed regime: clustering is built in
    assert p["Simulator"] < 0.05


def _check_clustering_conclusion(text: str) -> None:
    a, b = re.search(r"^Simulator: first merge (\w+) \+ (\w+) at distance", text, re.M).groups()
    (conclusion,) = re.findall(r"^Conclusion: (.*)$", text, re.M)
    recovered = {a, b} == {"ETHUSDT", "BTCUSDT"}
    assert ("recovers the ETH-BTC tie" in conclusion) == recovered
    if not recovered:
        assert f"merges {a} and {b} first" in conclusion
    k = int(re.search(r"^Simulator: (\d+) clusters: (.*)$", text, re.M).group(1))
    assert k >= 2  # five symbols are never lumped into one cluster
    # two real symbols are one pair, not "1 cluster"
    assert re.search(r"^Recording: only 2 symbols .*one pair, not a clustering", text, re.M)
    assert "1 clusters" not in text


def _check_pairs_adf(text: str, db: Path) -> None:
    from statsmodels.tsa.stattools import adfuller

    from lq.store import Store

    m = re.search(r"ADF p-value (\d\.\d{3}), half-life ([\d.]+) bars", text)
    assert m, text
    # reference: numpy polyfit OLS of log ETH on log BTC (ffill-aligned 5 s closes), then
    # statsmodels adfuller with AIC lag search; the notebook prints 3 decimals (tol 5e-4)
    with Store(db) as store:
        a = store.bars("ETHUSDT", "5s")["close"]
        b = store.bars("BTCUSDT", "5s")["close"]
    px = np.log(a.to_frame("y").join(b.rename("x"), how="outer").ffill().dropna())
    beta, alpha = np.polyfit(px["x"], px["y"], 1)
    p_ref = adfuller(px["y"] - alpha - beta * px["x"], autolag="AIC", result_object=False)[1]
    assert abs(float(m.group(1)) - p_ref) <= 5e-4


def test_a_clean_database_gets_no_wal_content_from_a_notebook(tmp_path: Path, data_dir) -> None:
    """A database with no -wal (its writer closed it): the read-only connection may create
    the empty -wal/-shm pair SQLite needs to read a WAL file, but writes nothing to either
    the database or the -wal."""
    db = _record(tmp_path / "closed.sqlite", data_dir)
    assert not Path(f"{db}-wal").exists()
    before = _fingerprint(db)["db"]
    _run("pairs_research", tmp_path, db=str(db), interval="5s")
    assert _fingerprint(db)["db"] == before
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_backtest_notebook_without_data_says_how_to_get_some(tmp_path: Path) -> None:
    """Run on its own (no db, none at store.db): a message, a clean stop, no traceback, and
    no database created where the settings point."""
    default = Path(os.environ["LQ_DB"])
    assert not default.exists()
    listed = _listing()
    nb = _run("backtest", tmp_path)  # papermill treats the notebook's SystemExit() as a stop
    text = _text(nb)
    assert "No data to work on" in text and "make demo" in text and "-p db PATH" in text
    tracebacks = [o for c in nb.cells for o in c.get("outputs", []) if o.get("traceback")]
    assert all(o.get("ename") == "SystemExit" for o in tracebacks)
    assert not default.exists()
    assert _listing() == listed


def test_open_store_refuses_a_missing_database_and_is_read_only(tmp_path: Path, data_dir) -> None:
    import sqlite3

    from lq.research import NoDataError, open_store

    with pytest.raises(NoDataError, match=r"no such database.*make demo"):
        open_store(tmp_path / "typo.sqlite")
    assert not (tmp_path / "typo.sqlite").exists()
    db = _record(tmp_path / "r.sqlite", data_dir)
    with open_store(db) as store, pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.conn.execute("DELETE FROM ticks")
    with open_store(db) as store, pytest.raises(Exception, match=r"read-only|READ_ONLY|read only"):
        store.sql("DELETE FROM ticks")


def test_research_notebooks_pass_nbval_lax(tmp_path: Path, data_dir: Path) -> None:
    """Also the notebooks' default: no db, the recordings parsed into a temporary file
    (nothing left in notebooks/)."""
    import papermill as pm

    prepared = []
    for name in ("pairs_research", "clustering"):
        out = tmp_path / f"{name}.ipynb"
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(out),
            parameters={"data_dir": str(data_dir)},
            prepare_only=True,
        )
        prepared.append(str(out))
    listed = _listing()
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
    assert _listing() == listed
