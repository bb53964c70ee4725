"""The Data tab's download of a symbol stored under several exchange labels: the error names the
tab's own control (its 'exchange' menu), never the CLI's ``--exchange`` flag, and the menu picks
one label's rows (never spliced). A real store written by :class:`lq.store.Writer`."""

from __future__ import annotations

import base64
import html
import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from trade_factory import make_trades

from lq.dashboard import DataPanel
from lq.errors import ValidationError
from lq.store import Store, Writer
from lq.store.export import select


@pytest.fixture
def two_labels(tmp_path: Path) -> Path:
    db = tmp_path / "two.sqlite"
    with Writer(db) as w:
        w.write_trades(make_trades(30, exchange="binance"))
        w.write_trades(make_trades(20, start_id=1, exchange="local"))
    return db


def _rows(link: str) -> pd.DataFrame:
    b64 = re.search(r'base64,([^"]+)"', link).group(1)
    return pd.read_csv(io.BytesIO(base64.b64decode(b64)))


def test_the_data_tab_names_its_exchange_menu_and_the_menu_picks_the_rows(two_labels):
    with Store(two_labels) as store:
        p = DataPanel(store, db=two_labels, symbols=["BTCUSDT"])
        p.kind.value = "ticks"
        p.range.value = "everything"
        assert [v for _k, v in p.exchange.options] == [None, "binance", "local"]
        err = html.unescape(p.make_download())
        assert "lq-error" in err and "stored from 2 exchanges (binance, local)" in err
        assert "--exchange" not in err  # the CLI's flag means nothing on this page
        assert "choose one with the 'exchange' menu beside 'symbol' above" in err
        p.exchange.value = "local"
        got = _rows(p.make_download())
        assert len(got) == 20 and set(got["exchange"]) == {"local"}
        p.exchange.value = "binance"
        got = _rows(p.make_download())
        assert len(got) == 30 and set(got["exchange"]) == {"binance"}
        # the command line keeps naming its flag
        with pytest.raises(ValidationError, match="choose one with --exchange LABEL"):
            select(store, "ticks", "BTCUSDT")


def test_one_label_needs_no_choice(tmp_path):
    db = tmp_path / "one.sqlite"
    with Writer(db) as w:
        w.write_trades(make_trades(10))
    with Store(db) as store:
        p = DataPanel(store, db=db, symbols=["BTCUSDT"])
        p.kind.value = "ticks"
        p.range.value = "everything"
        assert p.exchange.value is None and len(p.exchange.options) == 2  # "(the only one)"
        assert len(_rows(p.make_download())) == 10
