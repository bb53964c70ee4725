"""Recorded-frame files: one frame per line, ``<local receive time, ns since epoch> <raw frame>``.

This is the format of the real recordings in ``shared/data/binance/`` (gzip text) and also
lq's own ``--record`` format, so any session, recorded here or elsewhere, replays the same
way. Files ending in ``.gz`` are gzip-compressed; anything else is plain text.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from lq.errors import ImportFormatError

__all__ = ["FrameRecorder", "read_frames"]


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return open(path, mode + "b")


def read_frames(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(recv_ns, raw_frame)`` for each line of a recording.

    Raises :class:`~lq.errors.ImportFormatError` naming the file and line for a line that
    is not ``<integer> <frame>``. Blank lines are skipped.
    """
    p = Path(path)
    if not p.exists():
        raise ImportFormatError(f"{p}: no such recording")
    with _open(p, "r") as f:
        for lineno, line in enumerate(io.BufferedReader(f, 1 << 20), 1):  # type: ignore[arg-type,type-var]
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            head, sep, raw = line.partition(b" ")
            if not sep or not head.isdigit():
                raise ImportFormatError(
                    f"{p}:{lineno}: expected '<receive time ns> <frame>', got {line[:60]!r}"
                )
            yield int(head), raw


class FrameRecorder:
    """Append raw frames to a recording file (``--record FILE``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[bytes] | None = _open(self.path, "a")
        self.frames = 0

    def write(self, recv_ns: int, raw: bytes | str) -> None:
        if self._f is None:
            raise ValueError(f"recorder for {self.path} is closed")
        if isinstance(raw, str):
            raw = raw.encode()
        self._f.write(b"%d %s\n" % (recv_ns, raw))
        self.frames += 1

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> FrameRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
