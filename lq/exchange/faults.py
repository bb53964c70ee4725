"""Fault injection for the local exchange: the switches and the garbage frames (pure).

Two ways to break things:

- :class:`Faults`, given to :class:`~lq.exchange.LocalExchange` at construction: steady
  random rates (seeded) of malformed, duplicated, skipped and reordered frames;
- ``LocalExchange.inject(kind, **params)`` at run time, one of :data:`FaultKind`:

  ================ =========================================================================
  kind             effect (on every open connection unless said otherwise)
  ================ =========================================================================
  ``close_1001``   close with 1001 ``going away`` (``reason=`` to change the text)
  ``drop_tcp``     abort the TCP connection, no close frame: the client sees 1006
  ``stall``        send no data for ``seconds`` (default 5); pings are still answered and
                   the frames of that time are lost for that connection (REST keeps them)
  ``duplicate``    send each of the next ``count`` data frames twice
  ``skip_ids``     keep the next ``count`` trades (of ``symbol``, or any) off the socket,
                   ``@trade`` and the ``@aggTrade`` holding them; REST still serves them
  ``drop_depth``   keep ``count`` (default 1) depth diffs of ``symbol`` (or any) off the
                   socket, from the first whose ``u`` is at least ``update_id`` (default: the
                   next one); the exchange's own book (REST ``/api/v3/depth``) still holds them
  ``duplicate_depth`` the same, but each such diff is sent twice
  ``cross_depth``  the same, but each such diff carries one more bid, 0.1 % above the best
                   ask (a crossed book on the wire only; REST keeps the right book)
  ``old_depth_snapshot`` answer the next ``count`` REST ``/api/v3/depth`` calls of
                   ``symbol`` with the source's first snapshot (older than the stream: a
                   cached answer)
  ``malformed``    insert ``count`` garbage frames before the next data frames
  ``out_of_order`` swap ``count`` pairs of consecutive frames of different streams
  ``shutdown``     send ``serverShutdown`` (raw, or ``!serverShutdown`` when combined), then
                   close with 1001
  ``rest_429``     answer the next ``count`` REST calls 429 with ``Retry-After: retry_after``
  ``rest_418``     the same with 418 (banned)
  ================ =========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lq.errors import ValidationError

__all__ = ["FAULT_KINDS", "FaultKind", "Faults", "garbage_frame"]

FaultKind = Literal[
    "close_1001",
    "drop_tcp",
    "stall",
    "duplicate",
    "skip_ids",
    "drop_depth",
    "duplicate_depth",
    "cross_depth",
    "old_depth_snapshot",
    "malformed",
    "out_of_order",
    "shutdown",
    "rest_429",
    "rest_418",
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Steady fault rates, each the probability per data frame (seeded by ``seed``).

    Parameters
    ----------
    malformed_rate
        A garbage frame is inserted before a data frame with this probability.
    duplicate_rate
        A data frame is sent twice.
    skip_rate
        A trade is kept off the socket (``@trade`` and its ``@aggTrade``); REST keeps it.
    out_of_order_rate
        A frame is held back and sent after the next frame of another stream.
    seed
        Seed of the fault decisions.
    """

    malformed_rate: float = 0.0
    duplicate_rate: float = 0.0
    skip_rate: float = 0.0
    out_of_order_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("malformed_rate", "duplicate_rate", "skip_rate", "out_of_order_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValidationError(name, v, "must be a probability in [0, 1]")

    @property
    def any(self) -> bool:
        return bool(
            self.malformed_rate or self.duplicate_rate or self.skip_rate or self.out_of_order_rate
        )


_GARBAGE = (
    b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":37356',  # truncated
    b'{"e":"trade","E":"soon","s":"BTCUSDT","t":"x","p":61837.63,"q":null,"T":[],"m":1}',
    b"garbage frame: not json",
)


def garbage_frame(i: int, *, stream: str, combined: bool) -> bytes:
    """The ``i``-th malformed frame (cycles through truncated JSON, wrong types, not JSON)."""
    body = _GARBAGE[i % len(_GARBAGE)]
    if combined and i % len(_GARBAGE) != 2:
        return b'{"stream":"' + stream.encode() + b'","data":' + body + b"}"
    return body
