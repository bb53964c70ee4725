from __future__ import annotations

import pytest

from lq.config import load_settings, parse_duration
from lq.errors import ConfigError


def test_defaults_then_file_then_environment(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[store]\ndb = "/data/a.sqlite"\nretention_ticks = "24h"\n[collector]\nsymbols = ["btcusdt"]\n'
    )
    s = load_settings(cfg, env={"LQ_STORE_RETENTION_TICKS": "48h"})
    assert s.store.db == "/data/a.sqlite"
    assert s.store.retention_ticks == "48h"  # the environment wins over the file
    assert s.collector.symbols == ("BTCUSDT",)  # symbols are uppercase inside lq
    assert s.collector.source == "live"  # the default user gets live Binance


def test_lq_db_alias_and_with_db_override(tmp_path):
    s = load_settings(None, env={"LQ_DB": "/x/y.sqlite"})
    assert str(s.db) == "/x/y.sqlite"
    assert str(s.with_db(tmp_path / "z.sqlite").db) == str(tmp_path / "z.sqlite")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[stor]\ndb = 'x'\n", r"unknown section \[stor\]"),
        ("[store]\ndbb = 'x'\n", "unknown setting store.dbb"),
        ("[store]\nretention_ticks = 'soon'\n", "store.retention_ticks='soon'"),
        ("[email]\nsecurity = 'tls'\n", "email.security='tls'"),
        ("[email]\nport = 'abc'\n", "email.port='abc'"),
        ("[collector]\nsource = 'binance'\n", "collector.source='binance'"),
        ("[store\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(tmp_path, text, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, env={})


def test_secrets_are_masked_when_shown(tmp_path):
    s = load_settings(
        None, env={"LQ_EMAIL_PASSWORD": "hunter2-very-secret", "LQ_TELEGRAM_TOKEN": "123:ABC"}
    )
    shown = s.to_toml()
    assert "hunter2" not in shown and "123:ABC" not in shown
    assert 'password = "****"' in shown
    assert s.email.password == "hunter2-very-secret"  # still usable by the code


def test_binance_api_key_from_env_or_file_is_masked_when_shown(tmp_path):
    s = load_settings(None, env={"LQ_BINANCE_API_KEY": "vmPUZE6mv9SD5VNHk4HlWFsOr"})
    assert s.binance.api_key == "vmPUZE6mv9SD5VNHk4HlWFsOr"  # usable by the code
    shown = s.to_toml()
    assert "vmPUZE6mv9SD5VNHk4HlWFsOr" not in shown
    assert '[binance]\napi_key = "****"' in shown
    cfg = tmp_path / "c.toml"
    cfg.write_text('[binance]\napi_key = "from-the-file-123"\n')
    s = load_settings(cfg, env={})
    assert s.binance.api_key == "from-the-file-123"
    assert "from-the-file-123" not in s.to_toml()
    assert load_settings(None, env={}).to_toml().count('api_key = ""') == 1  # unset: shown empty


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100ms", 0.1), ("15m", 900), ("24h", 86_400), ("7d", 604_800), ("2.5s", 2.5), (3, 3.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_duration_names_the_field():
    with pytest.raises(ConfigError, match="--older-than='1 fortnight'"):
        parse_duration("1 fortnight", field="--older-than")
