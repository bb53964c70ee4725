"""Files for the import tests, made fast: large Binance-layout CSVs, zip and gzip bombs, and a
``lq import`` run as a real process with its peak memory (imported by name)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROWS_PER_BLOCK = 100_000
FIRST_ID = 370_000_000_000  # ids 37BBBBBiiiii: block B, row i
# spot trades as data.binance.vision ships them before 2025 (ms, 7 columns), ~80 bytes a line
_TEMPLATE = "".join(
    f"37@@@@@{i:05d},{61000 + (i * 37) % 2000}.{(i * 7) % 100:02d}000000,0.00{1 + i % 997:03d}000,"
    f"{1 + i % 500}.{(i * 13) % 10**8:08d},1723####{i:05d},{'true' if i % 3 else 'false'},True\n"
    for i in range(ROWS_PER_BLOCK)
).encode()


def write_trades_csv(path: Path, megabytes: float) -> int:
    """A spot trades CSV of at least ``megabytes`` MiB with distinct, contiguous-per-block ids;
    returns the number of rows. Block ``B`` holds ids ``37BBBBB00000..37BBBBB99999`` and times
    ``1723BBBB00000..`` ms (2024-08)."""
    blocks = 0
    size = 0
    with open(path, "wb") as f:
        while size < megabytes * 2**20:
            data = _TEMPLATE.replace(b"@@@@@", b"%05d" % blocks).replace(b"####", b"%04d" % blocks)
            f.write(data)
            size += len(data)
            blocks += 1
    return blocks * ROWS_PER_BLOCK


_BLOCK0 = _TEMPLATE.replace(b"@@@@@", b"00000").replace(b"####", b"0000").splitlines(keepends=True)


def trade_row(i: int) -> bytes:
    """Row ``i`` (< 100,000) of the first block, id ``FIRST_ID + i`` (for hand-made files)."""
    return _BLOCK0[i]


def write_zip_bomb(
    path: Path, inflated_mb: int, member: str = "BTCUSDT-trades-2024-08-08.csv"
) -> None:
    """A zip whose one member is the same valid trade row repeated: ~1000x compression."""
    row = trade_row(0)
    block = row * (2**20 // len(row))
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open(member, "w", force_zip64=True) as f,
    ):
        for _ in range(inflated_mb):
            f.write(block)


def write_gzip_bomb(path: Path, inflated_mb: int) -> None:
    """A .gz of NUL bytes."""
    zeros = b"\0" * 2**20
    with gzip.open(path, "wb", compresslevel=6) as f:
        for _ in range(inflated_mb):
            f.write(zeros)


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # the lq process's own peak resident memory (getrusage via wait4)


#: Forks and execs ARGV, waits with wait4 and prints the child's ru_maxrss (KiB). A small
#: process in between because Linux carries the forking process's high-water RSS into the
#: exec'd child: spawned straight from a pytest worker that has grown to 600 MB, every child
#: reported 600 MB whatever it used.
_RSS_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_pid, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_lq(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """``python -m lq.cli ARGS`` as its own process, with that process's own peak RSS (read
    by a small launcher, see ``_RSS_LAUNCHER``; not the test process's, nor the maximum over
    every child of it)."""
    tag = f"lq-{os.getpid()}"
    out, err, rss = cwd / f"{tag}.out", cwd / f"{tag}.err", cwd / f"{tag}.rss"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        p = subprocess.Popen(
            [sys.executable, "-c", _RSS_LAUNCHER, str(rss), sys.executable, "-m", "lq.cli", *args],
            stdout=fo,
            stderr=fe,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
        try:
            p.wait()
        except BaseException:
            p.kill()
            p.wait()
            raise
    code, maxrss_kib = (int(v) for v in rss.read_text().split())
    run = Run(code, out.read_text(), err.read_text(), maxrss_kib / 1024)
    for f in (out, err, rss):
        f.unlink()
    return run


class CollectorProcess:
    """``lq collect --source local`` as a real process (stdout and stderr to files, so a
    chatty log can never block it), stopped with SIGTERM."""

    def __init__(
        self, db: Path, *args: str, cwd: Path, env: dict[str, str] | None = None, rate: float = 30
    ) -> None:
        self.db = db
        self.out, self.err = cwd / "collector.out", cwd / "collector.err"
        self._fo, self._fe = open(self.out, "wb"), open(self.err, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lq.cli",
                "collect",
                "--db",
                str(db),
                "--source",
                "local",
                "--symbols",
                "BTCUSDT",
                "--rate",
                str(rate),
                "--no-alerts",
                *args,
            ],
            stdout=self._fo,
            stderr=self._fe,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )

    def log(self) -> str:
        return self.err.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, what: str, check, timeout: float = 60.0, poll: float = 0.2):
        """Poll ``check()`` until it is truthy (returns it); fails naming ``what``."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            assert self.alive(), f"collector died while waiting for {what}:\n{self.log()[-3000:]}"
            time.sleep(poll)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()[-3000:]}")

    def stop(self) -> int:
        import signal

        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._fo.close()
        self._fe.close()
        return rc


def count(db: Path, sql: str, params: tuple = ()) -> int:
    """One number from the database (a reader while the collector writes)."""
    import sqlite3

    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        got = conn.execute(sql, params).fetchone()[0]
    except sqlite3.OperationalError:  # the collector has not created the tables yet
        return 0
    finally:
        conn.close()
    return int(got or 0)
