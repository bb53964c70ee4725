"""Issue 11, QA's defects: careless input is refused in one line naming the problem and the way
out (exit 2, no traceback), before anything is started, opened or written.

Real processes (``python -m lq.cli``), real files; the database holds real rows written by
:class:`lq.store.Writer`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "store"))
from trade_factory import make_trades


def lq(*args: str, cwd: Path | None = None, timeout: float = 120, drop: tuple[str, ...] = (),
       **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``python -m lq.cli ARGS`` with the test's environment plus ``env``, minus ``drop``."""
    base = {k: v for k, v in os.environ.items() if k not in drop}
    try:
        return subprocess.run(
            [sys.executable, "-m", "lq.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**base, **env},
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:  # it started instead of refusing
        pytest.fail(f"lq {' '.join(args)} was still running after {timeout} s: {exc.stderr!r}")


def one_line_error(r: subprocess.CompletedProcess[str], command: str) -> str:
    """The refusal: exit 2, nothing but one ``lq <command>: error: ...`` line on stderr."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"lq {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    from lq.store import Writer

    path = tmp_path / "a.sqlite"
    with Writer(path) as w:
        w.write_trades(make_trades(200))  # BTCUSDT, 2024-08-08 23:54:15.342 UTC on
    return path


# ------------------------------------------------------------- 1. a missing $LQ_CONFIG
@pytest.mark.parametrize(
    "command",
    [
        ["config"],
        ["status"],
        ["export", "ticks", "BTCUSDT", "OUT"],
        ["alerts", "list"],
        ["forecast", "models"],
        ["dashboard", "--no-collector", "--port", "0"],
    ],
)
def test_a_missing_lq_config_file_fails_every_command_naming_it_and_the_way_out(
    db, tmp_path, command
):
    missing = tmp_path / "typo" / "conifg.toml"
    out = tmp_path / "out.csv"
    args = [str(out) if a == "OUT" else a for a in command]
    line = one_line_error(lq(*args, "--db", str(db), LQ_CONFIG=str(missing)), command[0])
    assert f"{missing}: no such config file ($LQ_CONFIG)" in line
    assert "create it" in line and "unset LQ_CONFIG" in line
    assert not out.exists()


def test_the_default_config_location_may_be_absent(db, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = lq("config", drop=("LQ_CONFIG",), HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    assert r.returncode == 0, r.stderr
    assert f"file: {home / '.config' / 'lq' / 'config.toml'}" in r.stdout


def test_the_library_refuses_a_missing_lq_config_too(tmp_path, monkeypatch):
    from lq.config import load_settings
    from lq.errors import ConfigError

    monkeypatch.setenv("LQ_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file \(\$LQ_CONFIG\)"):
        load_settings()
    monkeypatch.setenv("LQ_CONFIG", str(tmp_path))  # a directory
    with pytest.raises(ConfigError, match="not a config file"):
        load_settings()
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("LQ_CONFIG", str(tmp_path / "empty.toml"))
    assert load_settings().collector.source == "live"  # an empty file: the defaults
    monkeypatch.setenv("LQ_CONFIG", os.devnull)  # the usual "no settings": read as empty
    assert load_settings().collector.source == "live"


# ---------------------------------------------------------- 2. lq dashboard --source typo
def test_dashboard_refuses_an_unknown_source_listing_the_forms_before_starting(tmp_path):
    db = tmp_path / "d.sqlite"
    r = lq("dashboard", "--db", str(db), "--source", "lcoal", "--port", "0", timeout=60)
    line = one_line_error(r, "dashboard")
    # the very check (and words) of `lq collect --source`
    assert "--source='lcoal': expected live, local or replay:FILE[,FILE]" in line
    assert not db.exists() and not Path(f"{db}.dashboard.log").exists()  # nothing started
    line = one_line_error(lq("collect", "--db", str(db), "--source", "replay:"), "collect")
    assert "--source='replay:': expected live, local or replay:FILE[,FILE]" in line


def test_a_configured_source_typo_is_refused_by_every_command(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[collector]\nsource = "lcoal"\n')
    line = one_line_error(lq("config", LQ_CONFIG=str(conf)), "config")
    assert "collector.source='lcoal': expected live, local or replay:FILE[,FILE]" in line


# --------------------------------------------------------------- 3. empty time ranges
@pytest.mark.parametrize(
    ("start", "end"), [("2024-08-09T00:00", "2024-08-08T23:55"), ("2024-08-08T23:55",) * 2]
)
def test_export_refuses_a_start_at_or_after_the_end(db, tmp_path, start, end):
    out = tmp_path / "x.csv"
    r = lq("export", "--db", str(db), "ticks", "BTCUSDT", str(out), "--start", start, "--end", end)
    line = one_line_error(r, "export")
    assert f"--start='{start}': is not before --end='{end}'" in line
    assert "the range [--start, --end) is empty" in line and "earlier than the --end" in line
    assert not out.exists()
    # the range the wrong way round is not an export of "0 rows" in the library either
    from lq.errors import ValidationError
    from lq.store import Store
    from lq.store.export import select

    with Store(db) as store, pytest.raises(ValidationError, match="is not before end="):
        select(store, "ticks", "BTCUSDT", start=start, end=end)


def test_a_backtest_and_a_forecast_refuse_a_start_after_the_end(db):
    from lq.backtest.runs import load_bars
    from lq.errors import ValidationError

    with pytest.raises(ValidationError, match=r"start='2024-08-09': is not before end="):
        load_bars(db, ["BTCUSDT"], start="2024-08-09", end="2024-08-08")
    ok = load_bars(db, ["BTCUSDT"], start="2024-08-08", end="2024-08-10", min_bars=1)
    assert len(ok) == 1  # control: the right way round, the one 1 s bar of the 200 trades


def test_alerts_history_refuses_a_start_after_the_end(db):
    r = lq("alerts", "add", "p", "--db", str(db), "--metric", "price", "--symbol", "BTCUSDT",
           "--threshold", "1", "--channels", "dashboard")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = lq(
        "alerts", "history", "p", "--db", str(db), "--start", "2024-08-09", "--end", "2024-08-08"
    )
    line = one_line_error(r, "alerts")
    assert "--start='2024-08-09': is not before --end='2024-08-08'" in line


# ------------------------------------------------------------ 3. a webhook that is no URL
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("notaurl", "the scheme must be http or https"),
        ("ftp://hooks.example.com/x", "the scheme must be http or https"),
        ("https://", "it has no host"),
        ("http://[::1", "not a URL"),
    ],
)
def test_a_webhook_url_that_is_not_http_is_refused_at_config_time(db, tmp_path, url, why):
    line = one_line_error(lq("config", LQ_WEBHOOK_URL=url), "config")
    assert f"webhook.url={url!r}: {why}" in line and "https://hooks.example.com/lq" in line
    assert "$LQ_WEBHOOK_URL" in line
    conf = tmp_path / "c.toml"
    conf.write_text(f'[webhook]\nurl = "{url}"\n')
    r = lq("alerts", "add", "w", "--db", str(db), "--metric", "price", "--symbol", "BTCUSDT",
           "--threshold", "1", "--channels", "webhook", LQ_CONFIG=str(conf))  # fmt: skip
    assert f"webhook.url={url!r}: {why}" in one_line_error(r, "alerts")
    r = lq("alerts", "list", "--db", str(db))
    assert r.returncode == 0 and "no alert rules" in r.stdout  # nothing was stored


def test_a_webhook_channel_built_in_code_refuses_a_bad_url_too():
    from lq.alerts.channels import WebhookChannel
    from lq.errors import ConfigError

    with pytest.raises(ConfigError, match="the scheme must be http or https"):
        WebhookChannel(url="notaurl")
    assert WebhookChannel(url="http://127.0.0.1:9/hook").url == "http://127.0.0.1:9/hook"


# ------------------------------------------------------------------ 7. unclear errors
def test_status_of_a_directory_says_it_is_a_directory_and_names_a_file(tmp_path):
    line = one_line_error(lq("status", "--db", str(tmp_path)), "status")
    assert f"--db='{tmp_path}': is a directory, not a database file" in line
    assert f"--db {tmp_path / 'lq.sqlite'}" in line
    line = one_line_error(lq("status", LQ_DB=str(tmp_path)), "status")
    assert f"store.db='{tmp_path}': is a directory" in line


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("folds", "0", "must be an integer >= 1 (the number of walk-forward test blocks, e.g. -p folds 5)"),
        ("folds", "-2", "must be an integer >= 1"),
        ("embargo", "-1", "must be an integer >= 0"),
        ("workers", "0", "must be an integer >= 1"),
    ],
)  # fmt: skip
def test_forecast_refuses_impossible_walk_forward_parameters_before_papermill(
    db, tmp_path, name, value, words
):
    r = lq("forecast", "train", "--db", str(db), "-p", name, value, cwd=tmp_path)
    line = one_line_error(r, "forecast")
    assert f"-p {name}={int(value)}: {words}" in line
    assert not (tmp_path / "runs").exists()  # no notebook was run


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("1,2,3", "no NAME= before the values"),
        ("=1,2", "no parameter name before '='"),
        ("2x=1,2", "'2x' is not a parameter name before '='"),
        ("entry=", "no values after 'entry='"),
        ("entry=1.5,,2", "value 2 of entry is empty"),
        ("entry=1.5,2 lookback=60", "value 2 of entry, '2 lookback=60', is not one value"),
        ("entyr=1.5,2", "'entyr' is not a parameter of pairs_zscore ["),
    ],
)
def test_a_bad_grid_token_is_named_with_the_form(tmp_path, spec, words):
    missing_db = tmp_path / "none.sqlite"  # the grid is checked before any data is read
    r = lq("backtest", "--db", str(missing_db), "--grid", spec, cwd=tmp_path)
    line = one_line_error(r, "backtest")
    assert f"--grid={spec!r}: {words}" in line
    assert "expected NAME=V1,V2,... (one --grid per parameter), e.g. --grid entry=1.5,2,2.5" in line
    assert not (tmp_path / "runs").exists()


def test_good_grid_specs_still_become_axes():
    from lq.backtest.cli import parse_grid

    assert parse_grid(["entry=1.5, 2", "lookback=60,120"], strategy="pairs_zscore") == {
        "entry": [1.5, 2],
        "lookback": [60, 120],
    }
