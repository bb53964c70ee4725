"""anywidget's 2 s model timeout, raised where the dashboard serves anywidget's front-end.

On a loaded machine the first chart's plotly module (5 MB inline) took longer than 2 s to
compile; anywidget then failed the model for good and the chart dropped every later message:
the Market tab's newest point froze while the status bar above it advanced (seen in CI under
a full suite). The server's handler serves the same files with the timeout raised. These tests
serve the installed anywidget through the real handler over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from jupyter_core.paths import jupyter_path

from lq.dashboard.server import (
    ANYWIDGET_INIT_TIMEOUT,
    ANYWIDGET_INIT_TIMEOUT_MS,
    ANYWIDGET_STATIC,
    _anywidget_handler,
    anywidget_static_dirs,
    patched_anywidget,
)


def _dirs() -> list[Path]:
    return [d for d in anywidget_static_dirs(jupyter_path("labextensions")) if d.is_dir()]


def test_the_installed_anywidget_still_has_the_2_s_model_timeout() -> None:
    """The fix patches one exact text: an anywidget that changed it must fail here, loudly,
    not leave the dashboard silently unprotected."""
    dirs = _dirs()
    assert dirs, "anywidget's labextension is not installed"
    hits = [
        f.name for d in dirs for f in d.glob("*.js") if ANYWIDGET_INIT_TIMEOUT in f.read_bytes()
    ]
    assert hits, f"no anywidget script holds {ANYWIDGET_INIT_TIMEOUT!r}: check the new version"


def test_patched_anywidget_changes_only_the_model_timeout() -> None:
    body = (
        b'a(); AbortSignal.timeout(2000).addEventListener("abort", f); AbortSignal.timeout(2000);'
    )
    new, n = patched_anywidget(body)
    assert n == 1
    assert new == body.replace(
        b"timeout(2000).add", f"timeout({ANYWIDGET_INIT_TIMEOUT_MS}).add".encode()
    )
    assert patched_anywidget(b"no timeout here") == (b"no timeout here", 0)


def _serve_and_get(names: list[str]) -> list[tuple[int, bytes]]:
    import tornado.httpserver
    import tornado.netutil
    import tornado.web

    handler = _anywidget_handler()
    handler.cache.clear()
    app = tornado.web.Application([(ANYWIDGET_STATIC, handler, {"dirs": _dirs()})])

    async def main() -> list[tuple[int, bytes]]:
        [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
        port = sock.getsockname()[1]
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets([sock])

        def get(name: str) -> tuple[int, bytes]:
            url = f"http://127.0.0.1:{port}/voila/labextensions/anywidget/static/{name}"
            try:
                with urllib.request.urlopen(url, timeout=120) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, b""

        try:
            return [await asyncio.to_thread(get, n) for n in names]
        finally:
            server.stop()

    return asyncio.run(main())


def test_the_dashboard_serves_anywidget_with_the_raised_timeout_over_http() -> None:
    files = sorted({f.name: f for d in _dirs() for f in d.glob("*.js")}.items())
    assert files
    got = _serve_and_get([name for name, _ in files] + ["..%2F..%2Fpackage.json", "nope.js"])
    raised = f'AbortSignal.timeout({ANYWIDGET_INIT_TIMEOUT_MS}).addEventListener("abort"'.encode()
    patched = 0
    for (name, f), (status, body) in zip(files, got, strict=False):
        assert status == 200, name
        original = f.read_bytes()
        assert ANYWIDGET_INIT_TIMEOUT not in body, name
        if ANYWIDGET_INIT_TIMEOUT in original:
            patched += 1
            # the same script around every place it was, only the number changed
            assert body.split(raised) == original.split(ANYWIDGET_INIT_TIMEOUT), name
        else:
            assert body == original, name  # a script without it is served as it is
    assert patched >= 1
    # no way out of anywidget's directory, and a missing file is a 404
    assert [s for s, _ in got[len(files) :]] == [404, 404]


@pytest.mark.parametrize("name", ["../x.js", "a/b.js"])
def test_only_plain_file_names_reach_the_handler(name: str) -> None:
    import re

    assert re.fullmatch(ANYWIDGET_STATIC, f"/voila/labextensions/anywidget/static/{name}") is None
