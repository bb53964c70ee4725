"""The `lq` command, run as a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest


def lq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_config_prints_effective_settings_with_secrets_masked(monkeypatch, tmp_path):
    import os

    env = {
        **os.environ,
        "LQ_EMAIL_PASSWORD": "s3cret-password",
        "LQ_BINANCE_API_KEY": "s3cret-binance-key",
        "LQ_DB": str(tmp_path / "x.sqlite"),
    }
    r = lq("config", env=env)
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "x.sqlite") in r.stdout
    assert "s3cret" not in r.stdout + r.stderr
    assert 'password = "****"' in r.stdout
    assert '[binance]\napi_key = "****"' in r.stdout


def test_status_of_a_missing_database_is_a_clear_error(tmp_path):
    r = lq("status", "--db", str(tmp_path / "none.sqlite"))
    assert r.returncode == 2
    assert "no such database" in r.stderr


def test_purge_and_export_work_on_a_real_file(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "store"))
    from trade_factory import make_trades

    from lq.store import Writer

    db = tmp_path / "a.sqlite"
    with Writer(db) as w:
        w.write_trades(make_trades(1_000))
    r = lq("export", "--db", str(db), "ticks", "BTCUSDT", str(tmp_path / "t.csv"))
    assert r.returncode == 0, r.stderr
    assert "wrote 1,000 rows" in r.stdout
    r = lq("purge", "--db", str(db), "--older-than", "1d")
    assert r.returncode == 0, r.stderr
    assert "ticks: 1,000" in r.stdout  # 2024 trades are older than a day


@pytest.mark.parametrize("bad", ["soon", "-5m"])
def test_purge_refuses_a_bad_duration(tmp_path, bad):
    r = lq("purge", "--db", str(tmp_path / "a.sqlite"), f"--older-than={bad}")
    assert r.returncode == 2
    assert "--older-than" in r.stderr


def test_config_before_the_command_is_the_settings_file_not_the_command(tmp_path):
    # `lq --config FILE collect ...`: FILE is --config's value; the command is the next word
    cfg = tmp_path / "lq.toml"
    cfg.write_text('[collector]\nsource = "local"\nsymbols = ["SOLUSDT"]\n')
    r = lq("--config", str(cfg), "config", "--db", str(tmp_path / "c.sqlite"))
    assert r.returncode == 0, r.stderr
    assert f"(file: {cfg};" in r.stdout.splitlines()[0]
    assert 'source = "local"' in r.stdout and '"SOLUSDT"' in r.stdout
    r = lq("--config", str(cfg), "collect", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: lq collect")
