"""Many WebSocket text frames in one socket write: the local exchange's send path.

``await ws.send(frame)`` costs a coroutine, websockets' frame object and its serialisation,
and one ``transport.write`` (a ``send`` syscall on an idle socket) per frame: on loopback that
bounded the exchange at ~20k frames/s. :func:`send_batch` frames a batch of payloads itself
and hands them to the transport in one write, inside websockets' ``send_context()`` (which
checks that the connection is open, and applies its flow control: it waits for the buffer
to drain below the write limit), so the bytes on the wire are exactly those of
``ws.send(payload, text=True)`` per payload: a FIN text frame, unmasked (a server never
masks, RFC 6455 §5.1), 7-bit, 16-bit or 64-bit length. When an extension (permessage-deflate)
was negotiated the frames go through websockets' own protocol object instead, which
compresses them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from websockets.asyncio.connection import Connection

__all__ = ["send_batch", "text_frames"]

_SMALL = [bytes((0x81, n)) for n in range(126)]
BATCH = 512
"""Frames per write at most (a few tens of kB: one write, then the loop runs again)."""


def text_frames(payloads: Iterable[bytes]) -> bytes:
    """The bytes of one unmasked FIN text frame per payload (RFC 6455 §5.2), concatenated."""
    parts: list[bytes] = []
    add = parts.append
    small = _SMALL
    for p in payloads:
        n = len(p)
        if n < 126:
            add(small[n])
        elif n < 65536:
            add(b"\x81\x7e" + n.to_bytes(2, "big"))
        else:
            add(b"\x81\x7f" + n.to_bytes(8, "big"))
        add(p)
    return b"".join(parts)


async def send_batch(ws: Connection, box: deque[bytes], limit: int = BATCH) -> int:
    """Send up to ``limit`` payloads from the left of ``box`` (UTF-8 text) in one write.

    Returns how many were sent; raises websockets' ``ConnectionClosed`` like ``ws.send``."""
    n = min(len(box), limit)
    pop = box.popleft
    batch = [pop() for _ in range(n)]
    async with ws.send_context():
        protocol = ws.protocol
        if protocol.extensions:  # compression: websockets frames (and deflates) them
            for p in batch:
                protocol.send_text(p)
        else:
            ws.transport.write(text_frames(batch))
    return n
