"""One writer per database file, enforced with an advisory lock beside it.

The lock is ``<db>.writer.lock``, held with ``flock`` for the life of the writer. The kernel
drops it when the process dies, even by ``kill -9``, so a crashed collector never blocks the
next one. The file holds the owner's pid and command line so that a refused writer can say
who is writing.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from lq.errors import WriterLockedError

__all__ = ["WriterLock", "lock_path", "writer_pid"]


def lock_path(db: str | os.PathLike[str]) -> Path:
    """``<db>.writer.lock`` beside the real file: a symlink (or a path through one) to a
    database names the same lock, so it cannot make a second writer."""
    return Path(os.path.realpath(db) + ".writer.lock")


class WriterLock:
    """Exclusive, non-blocking, process-wide lock on one database file."""

    def __init__(self, db: str | os.PathLike[str], *, role: str = "writer") -> None:
        self.db = Path(db)
        self.path = lock_path(db)
        self.role = role
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid, detail = _read_owner(self.path)
            raise WriterLockedError(str(self.db), pid, detail) from None
        os.ftruncate(fd, 0)
        cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        os.write(fd, f"{os.getpid()}\n{self.role}: {cmd}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_owner(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text()
    except OSError:
        return None, ""
    first, _, rest = text.partition("\n")
    pid = int(first) if first.strip().isdigit() else None
    return pid, rest.strip()


def writer_pid(db: str | os.PathLike[str]) -> int | None:
    """The pid of the process writing ``db``, or None when nobody holds the lock."""
    path = lock_path(db)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(path)[0]
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
