"""Stopping the engine while its rules poll is still running on a worker thread.

``asyncio.to_thread`` cannot cancel the thread: a cancelled poll keeps querying. Closing the
connection under it crashed the whole process (a segfault in sqlite3, seen once in CI as a
dead xdist worker). Run in a child process so a crash is a failure here, not a lost worker.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sqlite3, sys, time
    from lq.alerts.engine import AlertEngine
    from lq.alerts.rules import Rule
    from lq.alerts.store import AlertStore

    db, N, ROUNDS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with AlertStore(db, known_symbols=["BTCUSDT"]) as s:
        s.add(Rule(name="r", metric="price", symbol="BTCUSDT", condition="above",
                   threshold=1e9, channels=("dashboard",)))
    c = sqlite3.connect(db)
    [spec] = c.execute("SELECT spec FROM alert_rules").fetchone()
    # many disabled rules: each poll's version query takes a while
    c.executemany(
        "INSERT INTO alert_rules(name, spec, enabled, created_ts, updated_ts)"
        " VALUES (?, ?, 0, 0, ?)",
        ((f"r{i}", spec, i) for i in range(N)),
    )
    c.commit(); c.close()

    async def once(delay: float) -> None:
        eng = AlertEngine(db=db, poll_interval=0.0, warmup=False)
        eng.start()
        await eng.wait_ready(60)
        await asyncio.sleep(delay)
        await eng.stop()

    async def main() -> None:
        for i in range(ROUNDS):
            await once((i % 10) * 0.0003)

    asyncio.run(main())
    print("ok")
    """
)


def test_stop_while_a_poll_is_running_on_its_thread_does_not_crash(tmp_path):
    p = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            SCRIPT,
            str(tmp_path / "a.sqlite"),
            "20000",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.returncode, p.stderr[-3000:])
