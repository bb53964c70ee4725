"""What every venue's sans-I/O parser does the same way: the rules of the frame boundary.

A parser (``lq.venues.<venue>.parser``) turns one raw frame into events and raises
:class:`~lq.errors.FrameError`, never anything else, whatever the bytes: the connection
loop dead-letters that frame and goes on with the next. The venue knows its messages; this
module holds the parts that must not differ between venues:

- :class:`GuardedParser`: ``parse()`` turns any exception of a venue's ``_parse`` into a
  one-line :class:`FrameError` (a JSON frame nested too deeply included);
- :func:`decode`: a msgspec decode whose failure is a :class:`FrameError` naming what was
  being decoded, with JSON syntax errors told apart from frames of another shape;
- :func:`subscribed`: the checked set of symbols a parser accepts trades of;
- :func:`reason` and :func:`as_bytes`: the error text and the frame's bytes.

Binance's parser keeps its own inlined ``parse`` (its hot path is measured per call) but
uses the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import msgspec

from lq.errors import FrameError
from lq.feeds.events import Event

__all__ = ["GuardedParser", "as_bytes", "as_frame_error", "decode", "reason", "subscribed"]

T = TypeVar("T")


def reason(exc: BaseException) -> str:
    """An exception's text on one line."""
    return str(exc).replace("\n", " ")


def as_bytes(raw: object) -> bytes:
    """A frame as bytes (text frames may come as ``str``); ``TypeError`` for anything else."""
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw)
    raise TypeError(f"expected bytes or str, got {type(raw).__name__}")


def as_frame_error(exc: Exception, raw: bytes | str) -> FrameError:
    """The :class:`FrameError` for an unexpected exception while parsing ``raw``."""
    if isinstance(exc, RecursionError):
        return FrameError("invalid JSON: nested too deeply", raw)
    return FrameError(f"unparseable frame: {type(exc).__name__}: {reason(exc)}", raw)


def decode(
    decoder: msgspec.json.Decoder[T], b: bytes, raw: bytes | str, what: str, *, shape: str = ""
) -> T:
    """``decoder.decode(b)``, failing with a :class:`FrameError`.

    A frame that is not JSON says ``invalid JSON: ...``; JSON of the wrong shape says
    ``bad <what>: ...``, or ``<shape>: ...`` when ``shape`` is given (``"not a Kraken
    frame"``).
    """
    try:
        return decoder.decode(b)
    except msgspec.ValidationError as exc:
        raise FrameError(f"{shape or 'bad ' + what}: {reason(exc)}", raw) from None
    except msgspec.DecodeError as exc:
        if shape:
            raise FrameError(f"invalid JSON: {reason(exc)}", raw) from None
        raise FrameError(f"bad {what}: {reason(exc)}", raw) from None


def subscribed(
    symbols: Iterable[str], problem: Callable[[str], str | None], what: str
) -> frozenset[str]:
    """The symbols a parser accepts, each checked by ``problem`` (``ValueError`` naming the
    first bad one); ``what`` names them in the error for a plain string (``"pairs"``)."""
    if isinstance(symbols, str):
        raise ValueError(f"symbols={symbols!r}: expected a list of {what}, not a string")
    syms = frozenset(symbols)
    for s in sorted(syms):
        why = problem(s)
        if why is not None:
            raise ValueError(f"symbols: {why}")
    return syms


class GuardedParser:
    """Base of a venue parser: :meth:`parse` runs the venue's ``_parse`` on the frame's
    bytes and lets only :class:`FrameError` out."""

    def _parse(self, b: bytes, raw: bytes | str, recv_ts: int) -> list[Event]:
        raise NotImplementedError

    def parse(self, raw: bytes | str, recv_ts: int) -> list[Event]:
        """Parse one frame; raises :class:`~lq.errors.FrameError` and nothing else."""
        try:
            return self._parse(raw if type(raw) is bytes else as_bytes(raw), raw, recv_ts)
        except FrameError:
            raise
        except Exception as exc:  # whatever the bytes, only FrameError leaves the parser
            raise as_frame_error(exc, raw) from None
