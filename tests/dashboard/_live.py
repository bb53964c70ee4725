"""Helpers for tests that run a real ``lq dashboard``: processes, RSS, a raw websocket client.

The websocket client is written on a plain socket on purpose: it must speak the kernel
websocket's plain JSON protocol (no subprotocol), send any Origin header, stop reading
and end with a TCP reset (SO_LINGER 0, no close frame), which no websocket library does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# -- processes ------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            found.append(c)
            todo.append(c)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def kernels(root: int) -> list[int]:
    """ipykernel processes anywhere under ``root`` (lq dashboard -> server -> kernels)."""
    return [p for p in descendants(root) if any("ipykernel" in a for a in cmdline(p))]


def server_pid(root: int) -> int:
    for p in descendants(root):
        if "lq.dashboard.server" in cmdline(p) or any(a.endswith("voila") for a in cmdline(p)):
            return p
    raise AssertionError(f"no dashboard server under pid {root}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] != "Z"


# -- lq dashboard ---------------------------------------------------------------------------
@dataclass
class Dash:
    proc: subprocess.Popen[str]
    url: str
    db: Path
    log: Path
    stdout: list[str] = field(default_factory=list)
    stderr: Path | None = None

    @property
    def port(self) -> int:
        m = re.match(r"http://[^/]*:(\d+)/", self.url)
        assert m, self.url
        return int(m.group(1))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def warm_kernel(self, timeout: float = 240) -> int:
        """Wait until the server has its warm kernel; return its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "lq dashboard: a kernel is warm" in self.log_text():
                ks = kernels(self.proc.pid)
                if len(ks) == 1:
                    return ks[0]
            time.sleep(0.25)
        raise AssertionError(f"no warm kernel after {timeout} s: {self.log_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_dashboard(
    tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> Dash:
    """``lq dashboard --source local`` on a new database in ``tmp``; waits for its URL."""
    db = tmp / "live.sqlite"
    cmd = [sys.executable, "-m", "lq.cli", "dashboard", "--source", "local", "--db", str(db)]
    cmd += list(args)
    if "--port" not in args:
        cmd += ["--port", "0"]
    err = tmp / "dashboard.stderr"
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=err.open("w"),
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=REPO,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    url = None
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"lq dashboard: (http://\S+)", line)
        if m:
            url = m.group(1)
            break
        if time.monotonic() > deadline:
            break
    if url is None:
        proc.kill()
        raise AssertionError(f"lq dashboard printed no URL: {lines} {err.read_text()[-3000:]}")
    log = Path(f"{db}.dashboard.log")
    return Dash(proc=proc, url=url, db=db, log=log, stdout=lines, stderr=err)


# -- a raw websocket client -----------------------------------------------------------------
class RawWebSocket:
    """A websocket client on a plain socket: handshake, masked text frames, frame reads,
    and an abortive close (TCP RST, no close frame)."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        origin: str | None = None,
        subprotocol: str | None = None,
        host_header: str | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host_header or f'{host}:{port}'}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin:
            lines.append(f"Origin: {origin}")
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self._buf = head.partition(b"\r\n\r\n")
        self.response = head.decode(errors="replace")
        self.status = int(self.response.split()[1]) if self.response else 0

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def send_json(self, obj: Any) -> None:
        payload = json.dumps(obj).encode()
        head = bytes([0x81])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 2**16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        return b0 & 0x0F, self._read(n)

    def reset(self) -> None:
        """Close with a TCP reset: SO_LINGER 0, no websocket close frame."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def kernel_info_request(session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": "test",
            "session": session,
            "msg_type": "kernel_info_request",
            "version": "5.3",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "parent_header": {},
        "metadata": {},
        "content": {},
        "channel": "shell",
        "buffers": [],
    }


def legacy_binary_msg_type(frame: bytes) -> str | None:
    """The msg_type of a binary frame in the plain JSON protocol's layout (a big-endian
    32-bit buffer count, 32-bit offsets, the JSON message, then its buffers)."""
    (nbufs,) = struct.unpack("!I", frame[:4])
    offsets = struct.unpack(f"!{nbufs}I", frame[4 : 4 + 4 * nbufs])
    end = offsets[1] if nbufs > 1 else len(frame)
    return json.loads(frame[offsets[0] : end]).get("msg_type")


def kernel_ids(html: str) -> list[str]:
    return re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", html)
