"""`lq alerts ...` through lq.cli.main, on a real database (LQ_DB from the conftest)."""

from __future__ import annotations

import json
import os

from lq.cli import main
from lq.feeds.events import Trade
from lq.store import Batch, Writer

S = 1_000_000
T0 = 1_723_161_600 * S


def configure(monkeypatch, *channels: str) -> None:
    """Settings for the given channels (nothing listens there: delivery would fail)."""
    env = {
        "email": {"LQ_EMAIL_HOST": "127.0.0.1", "LQ_EMAIL_TO": "me@example.com"},
        "webhook": {"LQ_WEBHOOK_URL": "http://127.0.0.1:9/hook"},
        "telegram": {"LQ_TELEGRAM_TOKEN": "123:abc", "LQ_TELEGRAM_CHAT_ID": "42"},
    }
    for ch in channels:
        for k, v in env[ch].items():
            monkeypatch.setenv(k, v)


def test_add_list_disable_enable_rm(capsys, monkeypatch):
    configure(monkeypatch, "email", "webhook")
    assert main(["alerts", "add", "eth-btc", "--metric", "spread_zscore", "--symbol",
                 "ETHUSDT/BTCUSDT", "--condition", "crosses_above", "--threshold", "2",
                 "--rearm", "0", "--window", "120", "--cooldown", "5m",
                 "--channels", "email,webhook"]) == 0  # fmt: skip
    assert "added rule 1" in capsys.readouterr().out
    assert main(["alerts", "list", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["id"] == 1 and row["enabled"] is True
    assert row["cooldown"] == 300.0 and row["channels"] == ["email", "webhook"]
    assert row["window"] == 120 and row["rearm"] == 0.0
    assert main(["alerts", "disable", "eth-btc"]) == 0
    assert main(["alerts", "list"]) == 0
    assert " off " in capsys.readouterr().out
    assert main(["alerts", "enable", "1"]) == 0
    assert main(["alerts", "rm", "eth-btc"]) == 0
    capsys.readouterr()
    assert main(["alerts", "list"]) == 0
    assert "no alert rules" in capsys.readouterr().out


def test_refused_rule_exits_2_naming_the_field_and_stores_nothing(capsys):
    assert main(["alerts", "add", "x", "--metric", "zscore", "--symbol", "BTCUSDT",
                 "--threshold", "inf"]) == 2  # fmt: skip
    assert "threshold=inf" in capsys.readouterr().err
    assert main(["alerts", "add", "x", "--metric", "zscore", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--window", "1"]) == 2  # fmt: skip
    assert "window=1" in capsys.readouterr().err
    assert main(["alerts", "add", "x", "--metric", "zscore", "--symbol", "FOOUSDT",
                 "--threshold", "1"]) == 2  # fmt: skip
    assert "FOOUSDT is not collected" in capsys.readouterr().err
    assert main(["alerts", "list"]) == 0
    assert "no alert rules" in capsys.readouterr().out


def _sawtooth_and_rule(capsys) -> None:
    """7 minutes of a saw-tooth price that crosses 115 once per 21 s (20 firings), and a
    rule `up` on it."""
    db = os.environ["LQ_DB"]
    px = [100.0 + (i % 21) for i in range(420)]
    with Writer(db) as w:
        w.write_batch(Batch(trades=[
            Trade(symbol="BTCUSDT", trade_id=i, price=p, qty=1.0, ts=T0 + i * S,
                  event_ts=T0 + i * S, is_buyer_maker=False) for i, p in enumerate(px)
        ]))  # fmt: skip
    assert main(["alerts", "add", "up", "--metric", "price", "--symbol", "BTCUSDT",
                 "--condition", "crosses_above", "--threshold", "115"]) == 0  # fmt: skip
    capsys.readouterr()


def test_history_reports_count_and_forward_returns(capsys):
    _sawtooth_and_rule(capsys)
    assert main(["alerts", "history", "up", "--horizons", "3s,1m"]) == 0
    out = capsys.readouterr().out
    assert "would have fired 20 times" in out  # 420 s / 21 s per cycle
    assert "3s" in out and "1m" in out


def test_test_command_reports_unconfigured_channels(capsys, monkeypatch):
    configure(monkeypatch, "webhook")
    assert main(["alerts", "add", "p", "--metric", "price", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--channels", "dashboard,webhook"]) == 0  # fmt: skip
    monkeypatch.delenv("LQ_WEBHOOK_URL")  # the setting went away after the rule was added
    assert main(["alerts", "test", "p"]) == 1
    out = capsys.readouterr().out
    assert "dashboard  sent" in out and "webhook    failed" in out


# ------------------------------------------------------------- errors name the way out
def test_a_channel_that_is_not_configured_is_refused_at_add_naming_what_to_set(capsys):
    assert main(["alerts", "add", "tg", "--metric", "price", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--channels", "dashboard,telegram,email"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    assert "telegram needs telegram.token (or $LQ_TELEGRAM_TOKEN)" in err
    assert "telegram.chat_id (or $LQ_TELEGRAM_CHAT_ID)" in err
    assert "email needs email.host (or $LQ_EMAIL_HOST) and email.to (or $LQ_EMAIL_TO)" in err
    assert os.environ["LQ_CONFIG"] in err  # where the file is
    assert main(["alerts", "list"]) == 0
    assert "no alert rules" in capsys.readouterr().out  # nothing half-applied


def test_configured_channels_are_accepted(capsys, monkeypatch):
    configure(monkeypatch, "telegram")
    assert main(["alerts", "add", "tg", "--metric", "price", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--channels", "telegram"]) == 0  # fmt: skip


def test_rsi_above_150_is_refused_with_the_range(capsys):
    assert main(["alerts", "add", "r", "--metric", "rsi", "--symbol", "BTCUSDT",
                 "--threshold", "150"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err == (
        "lq alerts: error: threshold=150.0: rsi lies between 0 and 100, so 150 is never "
        "reached; choose one between 0 and 100\n"
    )


def test_enum_errors_list_the_choices(capsys):
    assert main(["alerts", "add", "x", "--metric", "zscor", "--symbol", "BTCUSDT",
                 "--threshold", "1"]) == 2  # fmt: skip
    assert "unknown metric; expected one of ['price', 'return', 'zscore'" in (
        capsys.readouterr().err
    )
    assert main(["alerts", "add", "x", "--metric", "zscore", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--condition", "abov"]) == 2  # fmt: skip
    assert (
        "condition='abov': unknown condition; expected one of ['above', 'below', "
        "'crosses_above', 'crosses_below', 'outside']"
    ) in capsys.readouterr().err
    assert main(["alerts", "add", "x", "--metric", "zscore", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--channels", "slack"]) == 2  # fmt: skip
    assert "unknown channel; expected one of ['dashboard', 'telegram', 'email', 'webhook']" in (
        capsys.readouterr().err
    )
    # argparse's own enums: one line, the choices, exit 2
    assert main(["alerts", "add", "x", "--metric", "zscore", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--severity", "loud"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --severity: invalid choice: 'loud' (choose from " in err
    assert all(c in err for c in ("info", "warning", "critical"))
    assert "see `lq alerts add --help`" in err


def test_list_shows_every_setting_of_a_rule(capsys):
    from lq.alerts.rules import Rule

    assert main(["alerts", "add", "z", "--metric", "zscore", "--symbol", "BTCUSDT",
                 "--condition", "crosses_above", "--threshold", "2.5", "--rearm", "1",
                 "--window", "90", "--sample", "5s", "--cooldown", "30s",
                 "--severity", "critical"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["alerts", "list"]) == 0
    out = capsys.readouterr().out
    for field in Rule.__struct_fields__:
        if field != "name":
            assert f" {field}=" in out, field
    for shown in ("threshold=2.5", "rearm=1", "window=90", "sample=5s", "cooldown=30s",
                  "severity=critical", "band=none", "lookback=none", "channels=dashboard"):  # fmt: skip
        assert shown in out


def test_history_greys_a_per_day_rate_from_under_a_day_of_data(capsys):
    _sawtooth_and_rule(capsys)
    assert main(["alerts", "history", "up", "--horizons", "3s"]) == 0
    out = capsys.readouterr().out
    # 20 firings over 419 s (the samples' span): 20 / (419 / 86400) = 4124.1 per day
    assert (
        "would have fired 20 times (4124.1 per day: not meaningful, per-day rate from "
        "7.0 min of data (under 1 day))"
    ) in out
