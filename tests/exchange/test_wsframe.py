"""The exchange's batched send path: the bytes are websockets' own, over a real socket too."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from lq.exchange.wsframe import send_batch, text_frames

# lengths around each of RFC 6455's three length encodings (7-bit, 16-bit, 64-bit)
LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


@pytest.mark.parametrize("n", LENGTHS)
def test_a_frame_is_byte_for_byte_what_websockets_writes(n: int) -> None:
    payload = (b"0123456789abcdef" * (n // 16 + 1))[:n]
    ours = text_frames([payload])
    theirs = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert ours == theirs


def test_frames_are_concatenated_in_order() -> None:
    payloads = [b"a" * n for n in LENGTHS]
    expected = b"".join(
        Frame(Opcode.TEXT, p).serialize(mask=False, extensions=[]) for p in payloads
    )
    assert text_frames(payloads) == expected


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_a_real_client_reads_every_frame_in_order(compression: str | None) -> None:
    payloads = [f'{{"i":{i},"pad":"{"x" * (i % 300)}"}}'.encode() for i in range(3000)]
    payloads.append(b"y" * 70_000)

    async def main() -> list[str]:
        async def handler(ws: ServerConnection) -> None:
            box = deque(payloads)
            while box:
                await send_batch(ws, box, limit=512)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=compression) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            got = []
            async with connect(
                f"ws://127.0.0.1:{port}/", compression=compression, max_size=None
            ) as ws:
                for _ in payloads:
                    got.append(await ws.recv())
            return got

    got = asyncio.run(asyncio.wait_for(main(), 60))
    assert got == [p.decode() for p in payloads]
