"""`lq alerts ...` through lq.cli.main, on a real database (LQ_DB from the conftest)."""

from __future__ import annotations

import json
import os

from lq.cli import main
from lq.feeds.events import Trade
from lq.store import Batch, Writer

S = 1_000_000
T0 = 1_723_161_600 * S


def test_add_list_disable_enable_rm(capsys):
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


def test_history_reports_count_and_forward_returns(capsys):
    db = os.environ["LQ_DB"]
    px = [100.0 + (i % 21) for i in range(420)]  # saw-tooth: crosses 115 once per 21 s
    with Writer(db) as w:
        w.write_batch(Batch(trades=[
            Trade(symbol="BTCUSDT", trade_id=i, price=p, qty=1.0, ts=T0 + i * S,
                  event_ts=T0 + i * S, is_buyer_maker=False) for i, p in enumerate(px)
        ]))  # fmt: skip
    assert main(["alerts", "add", "up", "--metric", "price", "--symbol", "BTCUSDT",
                 "--condition", "crosses_above", "--threshold", "115"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["alerts", "history", "up", "--horizons", "3s,1m"]) == 0
    out = capsys.readouterr().out
    assert "would have fired 20 times" in out  # 420 s / 21 s per cycle
    assert "3s" in out and "1m" in out


def test_test_command_reports_unconfigured_channels(capsys):
    assert main(["alerts", "add", "p", "--metric", "price", "--symbol", "BTCUSDT",
                 "--threshold", "1", "--channels", "dashboard,webhook"]) == 0  # fmt: skip
    assert main(["alerts", "test", "p"]) == 1
    out = capsys.readouterr().out
    assert "dashboard  sent" in out and "webhook    failed" in out
