"""A WAL database copied without its ``-shm`` to a folder nobody can write (read-only media):
``lq export`` reads its rows, or says exactly why it cannot; never "no rows are stored".

The folder is made read-only for real: ``chmod``, and, since root ignores file modes, as root the
command runs in a private mount namespace where the folder is bind-mounted read-only
(``unshare -m``; the mount ends with the process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from trade_factory import make_trades

from lq.store import Writer


def _readonly_runner(folder: Path) -> list[str]:
    """The prefix that runs a command with ``folder`` read-only for it."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("running as root without unshare/mount: cannot make a folder read-only")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}' && ! touch '{folder}/x'"],
        capture_output=True,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {probe.stderr.decode().strip()}")
    return ["unshare", "-m", "sh", "-c",
            f"mount --bind -o ro '{folder}' '{folder}' && exec \"$@\"", "sh"]  # fmt: skip


def lq_readonly(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_readonly_runner(folder), sys.executable, "-m", "lq.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "media"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)


def _seal(folder: Path) -> None:
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)


@pytest.mark.parametrize("wal", ["absent", "empty"])
def test_export_reads_a_copy_without_shm_on_read_only_media(tmp_path, media, wal):
    src = tmp_path / "src.sqlite"
    with Writer(src) as w:
        w.write_trades(make_trades(50))
    assert not Path(f"{src}-wal").exists()  # closed: everything is in the main file
    shutil.copy(src, media / "a.sqlite")
    if wal == "empty":
        (media / "a.sqlite-wal").write_bytes(b"")
    _seal(media)
    out = tmp_path / "out.csv"
    r = lq_readonly(media, "export", "--db", str(media / "a.sqlite"), "ticks", "BTCUSDT", str(out))
    assert r.returncode == 0, r.stderr
    assert "wrote 50 rows of ticks to" in r.stdout
    got = pd.read_csv(out)
    assert len(got) == 50 and got["trade_id"].tolist() == list(range(1, 51))
    assert not (media / "a.sqlite-shm").exists()


def test_export_says_why_when_the_rows_are_in_a_wal_it_cannot_index(tmp_path, media):
    src = tmp_path / "src.sqlite"
    with Writer(src) as w:
        w.write_trades(make_trades(50))
        # copied while the writer is open: the rows are in the -wal, not yet in the main file
        shutil.copy(src, media / "a.sqlite")
        shutil.copy(f"{src}-wal", media / "a.sqlite-wal")
    wal_bytes = (media / "a.sqlite-wal").stat().st_size
    assert wal_bytes > 0
    _seal(media)
    out = tmp_path / "out.csv"
    r = lq_readonly(media, "export", "--db", str(media / "a.sqlite"), "ticks", "BTCUSDT", str(out))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    line = r.stderr.strip()
    assert "no ticks" not in line and "stored: none" not in line  # not "nothing is stored"
    assert f"a.sqlite-wal holds {wal_bytes:,} bytes of rows not yet in the main file" in line
    assert "its folder is read-only, SQLite cannot create a.sqlite-shm" in line
    assert "copy the database with its -wal to a writable folder" in line
    assert not out.exists()
