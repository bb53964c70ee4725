from __future__ import annotations

import fcntl
import inspect
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lq.feeds import Parser
from lq.feeds.events import Trade
from lq.feeds.recording import read_frames

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "binance"

# A module that drives Chromium against a real Voila costs a server, its kernels and a
# browser: three at once on a 2-core CI machine starved one so long that its page never
# drew within minutes. At most BROWSER_SLOTS such modules run at a time across the xdist
# workers (a file lock per slot in the run's shared temporary directory). A module that
# measures the page (tick -> visible, refits) or loads the server on purpose sets
# ``BROWSER_EXCLUSIVE = True`` and holds every slot: no other browser module beside it.
BROWSER_SLOTS = 2


@pytest.fixture(scope="module", autouse=True)
def _browser_slot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    try:
        source = inspect.getsource(request.module)
    except (OSError, TypeError):
        source = ""
    if "sync_playwright" not in source:
        yield
        return
    root = tmp_path_factory.getbasetemp().parent  # shared by the workers of one run
    files = [open(root / f"lq-browser-slot-{i}.lock", "a") for i in range(BROWSER_SLOTS)]  # noqa: SIM115
    held = []
    # the wait for a slot is not the test's time: pytest-timeout (signal method) armed an
    # interval timer for setup + call; it is stopped while waiting (a module queued behind
    # two exclusive ones waited past 300 s in CI) and given back in full once slots are held
    armed = signal.getitimer(signal.ITIMER_REAL)[0]
    if armed > 0:
        signal.setitimer(signal.ITIMER_REAL, 0)  # the wait itself must not time the test out
    give_up = time.monotonic() + 1800
    try:
        if getattr(request.module, "BROWSER_EXCLUSIVE", False):
            # every slot, taken in order and kept while waiting for the next: two exclusive
            # modules queue on slot 0 and never hold half each
            for f in files:
                while time.monotonic() < give_up:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        time.sleep(0.5)
                        continue
                    held.append(f)
                    break
        else:
            while not held and time.monotonic() < give_up:
                for f in files:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    held.append(f)
                    break
                else:
                    time.sleep(0.5)
        if armed > 0:
            signal.setitimer(signal.ITIMER_REAL, armed)
        yield
    finally:
        for f in held:
            fcntl.flock(f, fcntl.LOCK_UN)
        for f in files:
            f.close()


def recorded_trades() -> list[Trade]:
    """Every trade of the two real recordings (BTCUSDT 9,757, ETHUSDT 6,106), by time."""
    files = sorted(DATA.glob("spot_*_20240808.gz"))
    if len(files) < 2:
        pytest.skip(f"real recordings not found at {DATA.resolve()} (shared/ beside the repo)")
    parser = Parser()
    trades = [
        e
        for f in files
        for ns, raw in read_frames(f)
        for e in parser.parse(raw, recv_ts=ns // 1000)
        if isinstance(e, Trade)
    ]
    return sorted(trades, key=lambda t: (t.ts, t.trade_id))


@pytest.fixture(scope="session")
def trades() -> list[Trade]:
    return recorded_trades()


@pytest.fixture
def real_db(tmp_path: Path, trades: list[Trade]) -> Path:
    from lq.store import Writer

    db = tmp_path / "real.sqlite"
    with Writer(db) as w:
        w.write_trades(trades)
    return db
