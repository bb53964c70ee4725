"""Real servers on 127.0.0.1 for the alert channels: an HTTP recorder and aiosmtpd."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data" / "binance"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    t: float = 0.0  # time.monotonic() when the request reached the server (its body read)

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class HttpRecorder:
    """Records every request; ``mode`` decides the answer: ok, hang (no answer), or an HTTP
    status given as digits ("500", "404", "429")."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    mode: str = "ok"
    reply: bytes = b'{"ok": true, "result": {"message_id": 1}}'
    hang_s: float = 3.0


@pytest.fixture
def http_server() -> Iterator[HttpRecorder]:
    rec = HttpRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(n)
            t = time.monotonic()
            rec.requests.append(Recorded("POST", self.path, dict(self.headers), body, t))
            if rec.mode == "hang":
                time.sleep(rec.hang_s)
            code = int(rec.mode) if rec.mode.isdigit() else 200
            out = rec.reply if code == 200 else b'{"ok": false}'
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    rec.url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield rec
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def refused_url() -> str:
    """A loopback port with nothing listening (connection refused)."""
    return f"http://127.0.0.1:{_free_port()}"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


@dataclass
class SmtpBox:
    host: str
    port: int
    messages: list[tuple[str, list[str], bytes]]
    logins: list[tuple[str, str]]
    client_context: ssl.SSLContext | None = None


def _cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl command (the
    ``cryptography`` package is not installed in this environment)."""
    key, crt = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(crt), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, crt


def _smtp(tmp: Path, security: str) -> Iterator[SmtpBox]:
    import shutil

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    messages: list[tuple[str, list[str], bytes]] = []
    logins: list[tuple[str, str]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            return "250 OK"

    def auth(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            logins.append((auth_data.login.decode(), auth_data.password.decode()))
            ok = auth_data.password == b"s3cret-pw"
            return AuthResult(success=ok)
        return AuthResult(success=False)

    client_ctx = None
    kw: dict[str, object] = {}
    if security in ("starttls", "ssl"):
        if shutil.which("openssl") is None:
            pytest.skip("openssl command not found: cannot make a test certificate")
        key, crt = _cert(tmp)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(crt, key)
        client_ctx = ssl.create_default_context(cafile=str(crt))
        if security == "starttls":
            kw = {"tls_context": server_ctx, "require_starttls": True}
        else:
            # implicit TLS: aiosmtpd only knows about STARTTLS when deciding to offer AUTH
            kw = {"ssl_context": server_ctx, "auth_require_tls": False}
    else:
        kw = {"auth_require_tls": False}
    ctl = Controller(
        Handler(), hostname="127.0.0.1", port=_free_port(), authenticator=auth,
        server_hostname="127.0.0.1", **kw,
    )  # fmt: skip
    ctl.start()
    try:
        yield SmtpBox("127.0.0.1", ctl.port, messages, logins, client_ctx)
    finally:
        ctl.stop()


@pytest.fixture
def smtp_plain(tmp_path: Path) -> Iterator[SmtpBox]:
    yield from _smtp(tmp_path, "none")


@pytest.fixture
def smtp_starttls(tmp_path: Path) -> Iterator[SmtpBox]:
    yield from _smtp(tmp_path, "starttls")


@pytest.fixture
def smtp_ssl(tmp_path: Path) -> Iterator[SmtpBox]:
    yield from _smtp(tmp_path, "ssl")


@pytest.fixture
def recordings() -> Path:
    if not (SHARED_DATA / "spot_btcusdt_20240808.gz").exists():
        pytest.skip(f"real recordings not found at {SHARED_DATA.resolve()}")
    return SHARED_DATA
