"""The Voila server ``lq dashboard`` runs (``python -m lq.dashboard.server NOTEBOOK ...``).

It is Voila 0.5 with four changes, each one a subclass or a setting, checked against the
installed versions at start (:func:`check_versions`):

* **Kernel websocket frames are never misparsed.** Voila 0.5's
  ``VoilaKernelWebsocketHandler.write_message`` reads the header of every binary frame as if
  it used the ``v1.kernel.websocket.jupyter.org`` layout (a little-endian 64-bit count of
  offsets first). A client on the plain JSON protocol (no subprotocol) gets binary frames
  in the legacy layout (a big-endian 32-bit buffer count, then 32-bit offsets): read as a
  64-bit little-endian number, ``00 00 00 02 00 00 00 0c`` is 8.6e17, and the handler builds
  a list of that many offsets on the server's only thread. The event loop never comes back
  (no HTTP answer, no socket close, no culling) and the list grows by tens of MB/s until the
  machine runs out of memory. :class:`LqKernelWebsocketHandler` drops ``execute_input``
  (what Voila's parser was for) in the connection, where the message is already decoded,
  so no frame is parsed again.
* **A client that does not read is disconnected**, instead of the server buffering the
  kernel's widget traffic for it without bound: each kernel websocket's write buffer is
  capped at :data:`MAX_PENDING_BYTES`; past it the connection is closed (Tornado's
  ``max_write_buffer_size``).
* **Browsers' websockets must come from the dashboard's own page**: a websocket whose
  ``Origin`` is not one of the addresses the server is reached at is refused (403), also
  when the request carries the token (jupyter_server skips its own Origin check for
  token-authenticated requests).
* **The token comes from the environment** (``LQ_DASHBOARD_TOKEN``, removed before any
  kernel starts), never from the command line, and never reaches the log (jupyter_server's
  request logger, which scrubs ``?token=``, replaces Tornado's); and **the port really bound is reported**
  to ``lq dashboard`` through a file (``LQ_DASH_READY_FILE``), so the printed URL is the one
  served even when the asked-for port was busy. SIGINT and SIGTERM both stop the server
  the same way: kernels end at once, exit 0, no traceback (Voila's own shutdown printed a
  ZMQError traceback for a kernel that was executing).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

__all__ = [
    "MAX_BUFFERED_BYTES",
    "MAX_PENDING_BYTES",
    "MAX_UPLOAD_BYTES",
    "ORIGINS_ENV",
    "PLOTLY_MODULE_PATH",
    "READY_ENV",
    "TOKEN_ENV",
    "allowed_origins",
    "check_versions",
    "is_loopback",
    "main",
    "tornado_settings",
]

log = logging.getLogger(__name__)

#: The token's environment variable (also ``dashboard.token`` in the settings).
TOKEN_ENV = "LQ_DASHBOARD_TOKEN"
#: Where the server writes ``{"port": ..., "pid": ...}`` once it listens.
READY_ENV = "LQ_DASH_READY_FILE"
#: Extra allowed websocket origins, space separated (``lq dashboard --allow-origin``).
ORIGINS_ENV = "LQ_DASH_ALLOWED_ORIGINS"
#: Bytes a kernel websocket may have queued for a client before it is disconnected.
#: The largest single frame is a FigureWidget's comm_open with plotly's 5 MB bundle; a
#: page that opens every tab at once queues about 30 MB on a slow link.
MAX_PENDING_BYTES = 64 * 2**20
#: Bytes of a disconnected page's messages kept for its reconnection (jupyter_server keeps
#: them in an unbounded list: "the buffer should likely be a memory bounded queue"); past
#: this the buffer is dropped, and a page that comes back reloads instead of replaying.
MAX_BUFFERED_BYTES = 32 * 2**20

#: The largest upload the Data tab takes (one websocket message; larger: ``lq import FILE``).
MAX_UPLOAD_BYTES = 256 * 2**20

#: Versions the subclasses below were written and tested against.
SUPPORTED = {"voila": "0.5.", "jupyter_server": "2.", "tornado": "6."}

V1 = "v1.kernel.websocket.jupyter.org"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tornado_settings(host: str) -> dict[str, object]:
    """The Tornado settings the server adds to Voila's."""
    # uploads travel as one websocket message: Tornado's 10 MiB default closes the socket on
    # anything larger (the browser reconnects and the file is silently lost)
    out: dict[str, object] = {"websocket_max_message_size": MAX_UPLOAD_BYTES}
    if is_loopback(host):
        # a closed tab's shutdown beacon carries no _xsrf (voila#1458): accept it on loopback
        out["disable_check_xsrf"] = True
        # and answer only requests addressed to a loopback name (Voila turns this check
        # off): a page of another site that a DNS rebinding points at 127.0.0.1 gets 403
        out["allow_remote_access"] = False
    return out


def check_versions() -> None:
    """Refuse to start on a Voila/jupyter_server/Tornado the fixes were not checked on."""
    from importlib.metadata import version

    for pkg, prefix in SUPPORTED.items():
        found = version(pkg)
        if not found.startswith(prefix):
            raise SystemExit(
                f"lq dashboard: {pkg} {found} is installed; lq's server fixes were checked on "
                f"{pkg} {prefix}x (see lq/dashboard/server.py): install {pkg}=={prefix}*"
            )


def _local_addresses() -> set[str]:
    """Every address and name of this machine (for a server bound to 0.0.0.0 or ::)."""
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()}
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(a.address.split("%", 1)[0])
    except Exception as exc:  # psutil missing or no permission: names above only
        log.debug("no interface list: %s", exc)
    return names


def allowed_origins(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``scheme://host:port`` origins a page of this server can have.

    Loopback binds allow the loopback names; a wildcard bind allows every address and name
    of the machine; another address allows itself and the machine's names. ``extra`` adds
    origins (e.g. a reverse proxy's), given as URLs.
    """
    if host in ("", "0.0.0.0", "::"):
        names = _local_addresses()
    elif is_loopback(host):
        names = {"localhost", "127.0.0.1", "::1", host}
    else:  # one address: itself and the machine's names, never a loopback name (a page
        # from localhost cannot have been served by this address)
        names = {host} | {
            n
            for n in (socket.gethostname(), socket.getfqdn())
            if not is_loopback(n) and not n.startswith("localhost")
        }
    out = set()
    for n in names:
        netloc = f"[{n}]" if ":" in n else n
        out.add(f"http://{netloc}:{port}".lower())
        out.add(f"https://{netloc}:{port}".lower())
    for e in extra:
        p = urlsplit(e.strip())
        if p.scheme and p.netloc:
            out.add(f"{p.scheme}://{p.netloc}".lower())
    return frozenset(out)


def _origin_key(origin: str) -> str:
    p = urlsplit(origin.strip())
    netloc = p.netloc.lower()
    if p.port is None and p.hostname is not None:  # default ports are implicit in Origin
        netloc += ":443" if p.scheme == "https" else ":80"
    return f"{p.scheme.lower()}://{netloc}"


def _build_classes() -> tuple[Any, Any]:
    """The websocket handler and connection classes (imported late: Voila is heavy)."""
    from jupyter_server.services.kernels.connection.channels import (
        ZMQChannelsWebsocketConnection,
    )
    from tornado.iostream import StreamBufferFullError
    from tornado.websocket import WebSocketClosedError
    from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

    class LqChannelsConnection(ZMQChannelsWebsocketConnection):  # type: ignore[misc]
        """Drops ``execute_input`` (the notebook's code) before it is serialised."""

        def _on_zmq_reply(self, stream: Any, msg_list: Any) -> None:
            if isinstance(msg_list, dict):  # the JSON protocol: already decoded
                msg_type = msg_list.get("msg_type") or msg_list.get("header", {}).get("msg_type")
            else:  # v1: parts are [header, parent_header, metadata, content, buffers...]
                try:
                    msg_type = json.loads(msg_list[0]).get("msg_type")
                except (ValueError, IndexError, TypeError, AttributeError):
                    msg_type = None
            if msg_type == "execute_input":
                return
            try:
                super()._on_zmq_reply(stream, msg_list)
            except WebSocketClosedError:
                # the client has gone (a TCP reset, a killed browser) while the kernel still
                # talks; jupyter_server catches this for the JSON protocol only, and for v1
                # it escaped into the ZMQ callback as a logged traceback, once per frame
                channel = getattr(stream, "channel", None)
                self.log.debug("a %s message for a closed kernel websocket dropped", channel)

    class LqKernelWebsocketHandler(VoilaKernelWebsocketHandler):  # type: ignore[misc]
        """Voila's kernel websocket without its frame re-parsing, with a bounded write
        buffer and a strict Origin check (see the module docstring)."""

        origins: frozenset[str] = frozenset()

        def check_origin(self, origin: str | None = None) -> bool:
            if origin is None:  # not a browser: the token (where set) is the only gate
                return True
            ok = _origin_key(origin) in self.origins
            if not ok:
                self.log.warning(
                    "refused a kernel websocket from Origin %s (this server answers %s)",
                    origin,
                    sorted(self.origins)[:4],
                )
            return ok

        async def get(self, *args: Any, **kwargs: Any) -> None:
            # before anything else: jupyter_server connects to the kernel and waits for its
            # kernel_info reply (up to a minute for a busy kernel) before Tornado checks
            # the Origin; a refused page must not cost the kernel anything
            h = self.request.headers
            origin = h.get("Origin") or h.get("Sec-Websocket-Origin")
            if origin is not None and not self.check_origin(origin):
                # as Tornado refuses it (an HTTPError would render a page Voila lacks)
                self.set_status(403)
                self.finish("Cross origin websockets not allowed")
                return
            await super().get(*args, **kwargs)

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            # jupyter_server renders an HTML page from templates Voila does not install, and
            # logs three tracebacks for every refused (403) websocket instead
            self.finish(f"{status_code}: {self._reason}")

        async def open(self, kernel_id: str) -> None:  # type: ignore[override]
            ws = getattr(self, "ws_connection", None)
            stream = getattr(ws, "stream", None)
            if stream is not None:
                stream.max_write_buffer_size = MAX_PENDING_BYTES
            await super().open(kernel_id)

        def write_message(self, message: Any, binary: bool = False) -> Any:
            # skip VoilaKernelWebsocketHandler.write_message (the misparse); execute_input
            # was already dropped by LqChannelsConnection
            try:
                fut = super(VoilaKernelWebsocketHandler, self).write_message(message, binary)
            except StreamBufferFullError:
                self.log.warning(
                    "kernel websocket %s: the client has not read %d MB of messages; "
                    "disconnecting it",
                    self.request.path,
                    MAX_PENDING_BYTES // 2**20,
                )
                ws = getattr(self, "ws_connection", None)
                stream = getattr(ws, "stream", None)
                if stream is not None:
                    stream.close()
                raise WebSocketClosedError() from None
            # jupyter_server never awaits this future: when the client has gone (a TCP
            # reset, a killed browser) its WebSocketClosedError was logged with a
            # traceback as "Task exception was never retrieved", once per pending frame
            if isinstance(fut, asyncio.Future):
                fut.add_done_callback(self._write_done)
            return fut

        def _write_done(self, fut: asyncio.Future[None]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None and not isinstance(exc, WebSocketClosedError):
                self.log.error("kernel websocket %s: write failed: %r", self.request.path, exc)

    return LqKernelWebsocketHandler, LqChannelsConnection


#: Where the server offers plotly's FigureWidget module (below the base URL; see
#: :class:`lq.dashboard._widgets.Heartbeat`, which loads it once per page).
PLOTLY_MODULE_PATH = "/lq/static/plotly-widget.js"


def plotly_module_file() -> Path:
    """The installed plotly's FigureWidget module (found without importing plotly)."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("plotly is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "widgetbundle.js"


def _plotly_module_handler() -> Any:
    import tornado.web

    class PlotlyModuleHandler(tornado.web.RequestHandler):  # type: ignore[misc]
        """plotly's FigureWidget JavaScript module (its public ``widgetbundle.js``).

        anywidget loads a widget's module from the ``_esm`` of every model: plotly's is the
        5 MB bundle itself, so each FigureWidget sent 5 MB and the browser compiled it once
        per chart. A model whose module is not loaded within anywidget's 2 s
        (``[anywidget] Failed to initialize model``) drops every later message: a chart
        created after the page opened (a tab's first click) kept its empty first state on a
        loaded machine, with no error shown. Given as a URL instead, the module is fetched
        and compiled once per page, and a chart created later finds it loaded."""

        body: bytes | None = None

        def get(self) -> None:
            cls = type(self)
            if cls.body is None:
                cls.body = plotly_module_file().read_bytes()
            self.set_header("Content-Type", "text/javascript; charset=utf-8")
            self.set_header("Cache-Control", "max-age=86400")  # the URL names the version
            self.write(cls.body)

    return PlotlyModuleHandler


#: anywidget (0.9 - 0.11) gives a model 2 s to load its module and then fails it for good
#: (``[anywidget] Failed to initialize model``): the model drops every later message. The
#: first chart of a page brings plotly's 5 MB module inline, and on a loaded machine its
#: compile took longer: the chart kept its first state while the rest of the page went on
#: (the Market tab's newest point froze; the status bar above it advanced). The dashboard
#: serves anywidget's front-end with a timeout that a slow compile stays inside.
ANYWIDGET_INIT_TIMEOUT = b'AbortSignal.timeout(2000).addEventListener("abort"'
ANYWIDGET_INIT_TIMEOUT_MS = 120_000
ANYWIDGET_STATIC = r"/voila/labextensions/anywidget/static/([A-Za-z0-9_.-]+\.js)"


def anywidget_static_dirs(labextensions_path: list[str]) -> list[Path]:
    return [Path(p) / "anywidget" / "static" for p in labextensions_path]


def patched_anywidget(body: bytes) -> tuple[bytes, int]:
    """anywidget's front-end ``body`` with its model timeout raised; and how many places
    changed (0: a file without it, or an anywidget that no longer has it)."""
    new = f'AbortSignal.timeout({ANYWIDGET_INIT_TIMEOUT_MS}).addEventListener("abort"'.encode()
    return body.replace(ANYWIDGET_INIT_TIMEOUT, new), body.count(ANYWIDGET_INIT_TIMEOUT)


def _anywidget_handler() -> Any:
    import tornado.web

    class AnywidgetStaticHandler(tornado.web.RequestHandler):  # type: ignore[misc]
        """anywidget's labextension scripts, with :data:`ANYWIDGET_INIT_TIMEOUT_MS`."""

        cache: ClassVar[dict[str, bytes]] = {}

        def initialize(self, dirs: list[Path]) -> None:
            self.dirs = dirs

        def get(self, name: str) -> None:
            body = self.cache.get(name)
            if body is None:
                for d in self.dirs:
                    f = d / name
                    if f.is_file() and f.resolve().parent == d.resolve():
                        body, n = patched_anywidget(f.read_bytes())
                        if n:
                            log.info("anywidget's model timeout raised in %s", name)
                        self.cache[name] = body
                        break
                else:
                    raise tornado.web.HTTPError(404)
            self.set_header("Content-Type", "text/javascript; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")  # as Voila serves labextensions
            self.write(body)

    return AnywidgetStaticHandler


def _make_app_class() -> Any:
    import tornado.httpserver
    import tornado.ioloop
    import tornado.netutil
    from voila.app import Voila
    from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

    handler_cls, connection_cls = _build_classes()
    PlotlyModuleHandler = _plotly_module_handler()
    AnywidgetStaticHandler = _anywidget_handler()

    class LqVoila(Voila):  # type: ignore[misc]
        """Voila with lq's handler classes, the real port reported, quiet signals."""

        def initialize(self, argv: Any = None) -> None:
            super().initialize(argv)
            self.kernel_websocket_connection_class = connection_cls
            from jupyter_server.log import log_request

            given = dict(self.tornado_settings)  # type: ignore[has-type]
            # jupyter_server's request log scrubs ?token= from the URLs it logs; Voila keeps
            # Tornado's, which wrote the token into the log with every request
            self.tornado_settings = {
                "log_function": log_request,
                **tornado_settings(self.ip),
                **given,
            }
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handle_signal_stop)

        def init_handlers(self) -> list[Any]:
            from jupyter_server.utils import url_path_join

            handlers = list(super().init_handlers())
            # plotly's widget module once per page, by URL (see PlotlyModuleHandler)
            handlers.insert(
                0, (url_path_join(self.server_url, PLOTLY_MODULE_PATH), PlotlyModuleHandler)
            )
            # anywidget's front-end with a model timeout a loaded machine stays inside
            handlers.insert(
                0,
                (
                    url_path_join(self.server_url, ANYWIDGET_STATIC),
                    AnywidgetStaticHandler,
                    {"dirs": anywidget_static_dirs(list(self.labextensions_path))},
                ),
            )
            swapped = 0
            for i, h in enumerate(handlers):
                if len(h) >= 2 and h[1] is VoilaKernelWebsocketHandler:
                    handlers[i] = (h[0], handler_cls, *h[2:])
                    swapped += 1
            if swapped != 1:
                raise SystemExit(
                    f"lq dashboard: expected one kernel websocket route in Voila, found "
                    f"{swapped}; this Voila is not the one lq's fixes were checked on"
                )
            return handlers

        def listen(self) -> None:
            """Voila 0.5's ``listen`` (same port retries), except that the bound socket's
            real port is kept (``--port 0`` works) and reported to ``lq dashboard``."""
            sockets = None
            asked = int(self.port)  # type: ignore[has-type]
            for port in self.random_ports(asked, self.port_retries + 1):
                try:
                    sockets = tornado.netutil.bind_sockets(port, self.ip)
                except OSError as e:
                    if e.errno in (errno.EADDRINUSE, errno.EACCES):
                        self.log.info("port %i is not available, trying another", port)
                        continue
                    raise
                break
            if not sockets:
                self.log.critical("no free port found from %i", asked)
                self.exit(1)
            assert sockets is not None
            bound = int(sockets[0].getsockname()[1])
            self.port = bound
            handler_cls.origins = allowed_origins(
                self.ip, bound, os.environ.pop(ORIGINS_ENV, "").split()
            )
            server = tornado.httpserver.HTTPServer(self.app)
            server.add_sockets(sockets)
            self.log.info("Voila is running at %s", self.connection_url)
            ready = os.environ.pop(READY_ENV, "")
            if ready:
                tmp = Path(ready).with_suffix(".tmp")
                tmp.write_text(json.dumps({"port": bound, "pid": os.getpid()}))
                tmp.replace(ready)
            self.ioloop = tornado.ioloop.IOLoop.current()
            tornado.ioloop.PeriodicCallback(self._cap_offline_buffers, 5000).start()
            try:
                self.ioloop.start()
            finally:
                server.stop()
                self.stop()

        def stop(self) -> None:
            """Voila's ``stop`` with the kernels ended at once (``now=True``). A kernel that
            is executing when asked to shut down (the warm one waits in
            ``wait_for_viewer()``) answers its execute_request on a socket its shutdown
            has closed and prints a ZMQError traceback, after a 5 s wait; the kernels only
            read the database, so nothing is lost by ending them."""
            import shutil

            from jupyter_core.utils import run_sync

            shutil.rmtree(self.connection_dir, ignore_errors=True)
            run_sync(self.kernel_manager.shutdown_all)(now=True)

        def _cap_offline_buffers(self) -> None:
            """Drop a disconnected session's message buffer past MAX_BUFFERED_BYTES."""
            km = self.kernel_manager
            buffers = getattr(km, "_kernel_buffers", None)
            if not isinstance(buffers, dict):
                return
            for kid, info in list(buffers.items()):
                held = info.get("buffer") or []
                size = sum(len(part) for _channel, parts in held for part in parts)
                if size > MAX_BUFFERED_BYTES:
                    self.log.warning(
                        "kernel %s: dropping %d messages (%d MB) buffered for a page that "
                        "went away; if it comes back it reloads",
                        kid,
                        len(held),
                        size // 2**20,
                    )
                    km.stop_buffering(kid)

    return LqVoila


def main(argv: list[str] | None = None) -> int:
    check_versions()
    # the token must not reach the kernels' environment (nor anyone's argv)
    token = os.environ.pop(TOKEN_ENV, "")
    args = list(sys.argv[1:] if argv is None else argv)
    app_cls = _make_app_class()
    app = app_cls.instance()
    app.initialize(args)
    if token:
        app.token = token
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
