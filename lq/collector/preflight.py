"""Checks ``lq collect`` makes before it starts anything: streams, symbols, the data's label.

* **Streams.** Every ``--channels`` name is checked (``trades`` is refused, naming the valid
  ones and the closest) before a local exchange or a connection is started.
* **What the endpoint is.** With ``--ws-url``, the server behind it is asked for
  ``exchangeInfo`` over HTTP on the same host and port. lq's local exchange answers with an
  ``lqExchange`` field and an ``X-LQ-Exchange`` header that real Binance never sends
  (:mod:`lq.venues.binance.local.rest`); its rows are then labelled with what it says (``local`` or
  ``replay``), and its own REST side is used for backfill unless ``--rest-url`` says
  otherwise. A Binance host is ``binance``. Anything else must be named with
  ``--exchange-label``: rows from an unknown endpoint are never labelled as live Binance.
* **Symbols.** On a live endpoint the symbols are checked against ``exchangeInfo`` (only the
  ones asked for: Binance's full list is megabytes). When the endpoint cannot be reached the
  check is skipped with a warning, and the collector's own reconnect loop takes over.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from lq.errors import ValidationError
from lq.venues.binance.endpoints import ENDPOINTS, Endpoint, resolve_endpoint, stream_name

__all__ = ["CHANNEL_HELP", "Preflight", "check_channels", "preflight"]

log = logging.getLogger(__name__)

_KLINES = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
#: The stream kinds ``--channels`` takes, for messages.
CHANNEL_HELP = (
    "trade, aggTrade, bookTicker, depth@100ms, depth or kline_<interval> ("
    + ", ".join(f"kline_{i}" for i in _KLINES[:4])
    + ", ...)"
)
_IDENTITY_FIELD = (
    "lqExchange"  # lq.venues.binance.local.rest.IDENTITY_FIELD (not imported: no server code)
)
_BINANCE_HOSTS = frozenset(
    h
    for ep in ENDPOINTS.values()
    for h in (urlsplit(ep.ws_url).hostname, urlsplit(ep.rest_url).hostname)
)


def check_channels(channels: Sequence[str], symbols: Sequence[str]) -> None:
    """Refuse unknown stream names and malformed symbols, naming the valid choices."""
    if not channels:
        raise ValidationError("--channels", "", f"at least one channel: {CHANNEL_HELP}")
    known = [
        "trade", "aggTrade", "bookTicker", "depth@100ms", "depth", *(f"kline_{i}" for i in _KLINES)
    ]  # fmt: skip
    for ch in channels:
        try:
            stream_name("BTCUSDT", ch)
        except ValidationError:
            close = difflib.get_close_matches(ch, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValidationError(
                "--channels", ch, f"unknown stream; expected {CHANNEL_HELP}{hint}"
            ) from None
    for s in symbols:
        try:
            stream_name(s, "trade")
        except ValidationError:
            raise ValidationError(
                "--symbols", s, "expected Binance symbols such as BTCUSDT,ETHUSDT"
            ) from None


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the checks decided: the ``exchange`` label of stored rows and the REST base."""

    exchange_label: str
    rest_url: str | None
    checked_symbols: bool


def _http_base(ws_url: str) -> str:
    u = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
    return f"{scheme}://{u.netloc}"


class _Clients:
    """One client per scheme, made on first use: plain ``http`` (an lq exchange on loopback)
    skips loading the CA bundle, which costs about a second on a busy machine."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._made: dict[bool, httpx.Client] = {}

    def get(self, url: str, params: dict[str, str]) -> httpx.Response:
        tls = url.startswith("https:")
        if tls not in self._made:
            self._made[tls] = httpx.Client(timeout=self.timeout, trust_env=False, verify=tls)
        return self._made[tls].get(url, params=params)

    def __enter__(self) -> _Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self._made.values():
            c.close()


def _get(client: _Clients, url: str, params: dict[str, str]) -> httpx.Response | None:
    try:
        return client.get(url, params=params)
    except httpx.HTTPError as exc:
        log.debug("GET %s failed: %s", url, exc)
        return None


def _identity(
    client: _Clients, base: str, ep: Endpoint
) -> tuple[str | None, bool, list[str] | None]:
    """One ``GET exchangeInfo``: ``(label the server gives itself or None, whether it answered,
    the symbols it lists, or None when the answer carries no list)``. Only for endpoints that
    are not Binance hosts (small answers). An lq exchange names itself in a header on every
    answer, a 429/418 too: that answer lists nothing, which must not read as "no symbols"."""
    r = _get(client, f"{base}{ep.rest_prefix}/exchangeInfo", {})
    if r is None:
        return None, False, None
    body: object = {}
    if r.status_code == 200:
        try:
            body = r.json()
        except ValueError:
            body = {}
    label = r.headers.get("X-LQ-Exchange")
    listed: list[str] | None = None
    if isinstance(body, dict):
        if label is None and isinstance(body.get(_IDENTITY_FIELD), str):
            label = body[_IDENTITY_FIELD]
        try:
            if isinstance(body.get("symbols"), list):
                listed = sorted(str(x["symbol"]) for x in body["symbols"])
        except (KeyError, TypeError):
            listed = None
    return label, True, listed


def _unknown_symbols(
    client: _Clients, base: str, ep: Endpoint, symbols: Sequence[str]
) -> list[str] | None:
    """The symbols ``exchangeInfo`` does not list (asking only about them: Binance's whole
    list is megabytes), or None when it cannot be reached."""
    url = f"{base}{ep.rest_prefix}/exchangeInfo"
    r = _get(client, url, {"symbols": json.dumps(list(symbols), separators=(",", ":"))})
    if r is None or r.status_code not in (200, 400):
        return None
    if r.status_code == 200:
        try:
            listed = {s["symbol"] for s in r.json().get("symbols", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return [s for s in symbols if s not in listed]
    # 400 (-1121 "Invalid symbol."): ask one by one to name the culprits
    bad = []
    for s in symbols:
        one = _get(client, url, {"symbol": s})
        if one is None:
            return None
        if one.status_code == 400:
            bad.append(s)
    return bad


def preflight(
    *,
    source: str,
    endpoint: str,
    symbols: Sequence[str],
    ws_url: str | None = None,
    rest_url: str | None = None,
    exchange_label: str | None = None,
    timeout: float = 3.0,
) -> Preflight:
    """Decide the rows' label and check the symbols on a live endpoint (see the module doc).

    ``source`` ``local``/``replay:...`` start their own exchange in process: nothing to ask.
    """
    ep = resolve_endpoint(endpoint, ws_url=ws_url, rest_url=rest_url)  # names the presets
    if source != "live":
        return Preflight(
            exchange_label=exchange_label or "", rest_url=rest_url, checked_symbols=False
        )
    label = exchange_label
    base = rest_url.rstrip("/") if rest_url else ep.rest_url
    local = False
    quiet = logging.getLogger("httpx")  # one INFO line per probe request is noise here
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        return _probe(ep, base, symbols, ws_url, rest_url, label, local, timeout)
    finally:
        quiet.setLevel(level)


def _probe(
    ep: Endpoint,
    base: str,
    symbols: Sequence[str],
    ws_url: str | None,
    rest_url: str | None,
    label: str | None,
    local: bool,
    timeout: float,
) -> Preflight:
    listed: list[str] | None = None  # the symbols an lq exchange listed (one request)
    with _Clients(timeout) as client:
        if ws_url is not None and urlsplit(ws_url).hostname in _BINANCE_HOSTS:
            label = label or "binance"
        elif ws_url is not None:
            ws_base = _http_base(ws_url)
            ident, answered, names = _identity(client, ws_base, ep)
            if ident is not None:  # names is None if it did not list them (a 429): ask again
                local, listed = True, names
                label = label or ident
                if rest_url is None:  # backfill from the same exchange, not from Binance
                    base = ws_base
            elif label is None:
                why = "does not answer as an lq exchange" if answered else "cannot be reached"
                raise ValidationError(
                    "--ws-url",
                    ws_url,
                    f"not a Binance host, and it {why}: name the exchange of its rows with "
                    "--exchange-label NAME (they are never labelled as live Binance)",
                )
        if rest_url is not None and not local and urlsplit(base).hostname not in _BINANCE_HOSTS:
            ident, _, _ = _identity(client, base, ep)
            if ident is not None and label in (None, "binance"):
                raise ValidationError(
                    "--rest-url",
                    rest_url,
                    f"is an lq {ident} exchange while the streams are live Binance: backfill "
                    "would mix simulated and real trades; point --ws-url at it too",
                )
        label = label or "binance"
        rest = base if local else rest_url
        if listed is not None:
            bad = [s for s in symbols if s not in listed]
        else:
            found = _unknown_symbols(client, base, ep, symbols)
            if found is None:
                log.warning(
                    "could not check the symbols against %s%s/exchangeInfo; collecting anyway",
                    base,
                    ep.rest_prefix,
                )
                return Preflight(exchange_label=label, rest_url=rest, checked_symbols=False)
            bad = found
    if bad:
        names = listed or []
        hints = []
        for s in bad:
            close = difflib.get_close_matches(s, names, n=1, cutoff=0.6)
            if close:
                hints.append(f"{s} -> {close[0]}?")
        more = f"; it lists {', '.join(names)}" if names and len(names) <= 30 else ""
        guess = f" ({', '.join(hints)})" if hints else ""
        where = _http_base(ws_url) if listed is not None and ws_url else base
        raise ValidationError(
            "--symbols",
            ",".join(bad),
            f"not listed by {where}{ep.rest_prefix}/exchangeInfo{guess}{more}; check the "
            "spelling (Binance symbols look like BTCUSDT)",
        )
    return Preflight(exchange_label=label, rest_url=rest, checked_symbols=True)
