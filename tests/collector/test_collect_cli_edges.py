"""`lq collect` at its edges, as real processes: a SIGTERM while it is still starting is an
orderly stop (exit 0, not 143); a duration that is not positive and a database or recording in
a folder that does not exist are refused in one line (exit 2), and no folder is created."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _lq(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.mark.parametrize("after", [0.0, 0.15, 0.5])
def test_a_sigterm_while_it_starts_is_an_orderly_stop(tmp_path, after):
    # the process holds SIGTERM from its first lines (before that, no Python runs at all): sent
    # as soon as it is caught, it lands while the collector is still importing and opening the
    # database, which used to be exit 143; the stop must then be honoured, not forgotten (with
    # no --duration, a forgotten stop would run forever)
    db = tmp_path / "early.sqlite"
    p = subprocess.Popen(
        [sys.executable, "-m", "lq.cli", "collect", "--db", str(db), "--source", "local",
         "--symbols", "BTCUSDT", "--no-alerts", "--no-forecasts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _catches_sigterm(p.pid):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.002)
    time.sleep(after)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, (p.returncode, err[-2000:])
    assert "Traceback" not in err
    assert "stored" in out.splitlines()[-1]


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "soon"])
def test_a_duration_that_is_not_positive_is_refused(tmp_path, value):
    r = _lq("collect", "--db", str(tmp_path / "d.sqlite"), "--source", "local",
            f"--duration={value}")  # fmt: skip
    assert r.returncode == 2
    assert "positive duration" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d.sqlite").exists()


@pytest.mark.parametrize("flag", ["--db", "--record"])
def test_a_file_in_a_folder_that_does_not_exist_is_refused_and_no_folder_is_made(tmp_path, flag):
    typo = tmp_path / "tyop" / "deeper"
    args = ["collect", "--source", "local", "--duration", "1", "--no-alerts"]
    if flag == "--db":
        args += ["--db", str(typo / "lq.sqlite")]
    else:
        args += ["--db", str(tmp_path / "ok.sqlite"), "--record", str(typo / "frames.gz")]
    r = _lq(*args)
    assert r.returncode == 2, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.strip()]
    assert f"{typo} does not exist" in line and "mkdir -p" in line and flag in line
    assert not (tmp_path / "tyop").exists()


def test_a_directory_given_as_the_database_is_refused(tmp_path):
    r = _lq("collect", "--db", str(tmp_path), "--source", "local", "--duration", "1")
    assert r.returncode == 2
    assert "is a directory" in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(tmp_path) == []


def test_an_existing_folder_is_fine(tmp_path):
    r = _lq("collect", "--db", str(tmp_path / "x.sqlite"), "--source", "local", "--duration",
            "1.5s", "--no-alerts", "--no-forecasts")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert Path(tmp_path / "x.sqlite").exists()


def test_the_last_line_counts_every_duplicate_the_feed_dropped(tmp_path):
    # it said "0 duplicates ignored" while feed_status counted the ones the sequencer dropped
    import json
    import re

    sys.path.insert(0, str(Path(__file__).parent))
    from procs import ExchangeThread, collect, count, query, wait_for

    ex = ExchangeThread(rate=80.0)
    try:
        db = tmp_path / "dups.sqlite"
        p = collect(db, ex)
        wait_for(lambda: count(db) > 20, 30, "first trades", p)
        ex.inject("duplicate", count=12)
        wait_for(
            lambda: (
                sum(
                    json.loads(d).get("duplicates_dropped", 0)
                    for (d,) in query(db, "SELECT detail FROM feed_status")
                )
                >= 12
            ),
            30,
            "the duplicates to be counted",
            p,
        )
        assert p.stop() == 0, p.stderr()[-2000:]
    finally:
        ex.stop()
    dropped = sum(
        json.loads(d).get("duplicates_dropped", 0)
        for (d,) in query(db, "SELECT detail FROM feed_status")
    )
    [said] = [int(m.replace(",", "")) for m in re.findall(r"\(([\d,]+) duplicates ignored", p.out)]
    assert said >= dropped >= 12
    assert f"{said} duplicates ignored" in p.last_log_line()
