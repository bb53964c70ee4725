"""Delivery channels: Telegram Bot API, e-mail over SMTP, a JSON webhook, the dashboard.

Each channel has ``name`` and ``async send(event)``, raising on failure: the delivery queue
retries, except after :class:`PermanentDeliveryError` (a body that cannot be encoded, an
HTTP 4xx other than 408/425/429, an SMTP 5xx), which the same request would meet again. Base URLs and servers come from :class:`lq.config.Settings` so tests point them at
local servers. Secrets (the bot token, the SMTP password) are only read from the settings
(environment or config file) and never logged: the token is part of Telegram's URL, so a
logging filter on ``httpx``/``httpcore`` masks every registered secret, and errors are
reported through :func:`redact`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import httpx

from lq.alerts.store import AlertEvent
from lq.config import Settings

__all__ = [
    "AlertChannel",
    "DashboardChannel",
    "EmailChannel",
    "PermanentDeliveryError",
    "TelegramChannel",
    "WebhookChannel",
    "channels_from_settings",
    "encode_json",
    "finite_json",
    "format_text",
    "redact",
    "webhook_body",
]

log = logging.getLogger(__name__)

_SECRETS: set[str] = set()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and ``secrets``) replaced by ``****``."""
    for s in (*_SECRETS, *secrets):
        if s:
            text = text.replace(s, "****")
    return text


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            try:
                msg = record.getMessage()
            except Exception:
                return True
            clean = redact(msg)
            if clean != msg:
                record.msg, record.args = clean, ()
        return True


_FILTER = _RedactFilter()


def _register_secret(secret: str) -> None:
    if secret and secret not in _SECRETS:
        _SECRETS.add(secret)
        for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection"):
            lg = logging.getLogger(name)
            if _FILTER not in lg.filters:
                lg.addFilter(_FILTER)


class PermanentDeliveryError(RuntimeError):
    """A send that cannot succeed by trying again (the delivery queue does not retry it)."""


#: HTTP statuses worth a retry: request timeout, too early, too many requests, and 5xx.
RETRYABLE_HTTP = frozenset({408, 425, 429})


def http_error(service: str, status: int) -> RuntimeError:
    """The exception for a non-2xx answer: permanent for 4xx (but 408/425/429)."""
    if 400 <= status < 500 and status not in RETRYABLE_HTTP:
        return PermanentDeliveryError(f"{service}: HTTP {status} (not retried: a client error)")
    return RuntimeError(f"{service}: HTTP {status}")


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf, -inf) replaced by ``None``.

    JSON has no NaN or infinity, so strict encoders (httpx, most webhook receivers) refuse
    them. A dict that held one gains a ``"non_finite"`` entry naming each replaced field
    with its value as text, so nothing is hidden: ``{"value": NaN}`` becomes
    ``{"value": null, "non_finite": {"value": "NaN"}}``, and a band ``[-inf, 2.0]`` becomes
    ``[null, 2.0]`` with ``"non_finite": {"band[0]": "-inf"}``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        found: dict[str, str] = {}
        for k, v in obj.items():
            if isinstance(v, float) and not math.isfinite(v):
                found[str(k)] = _spell(v)
            elif isinstance(v, list | tuple):
                for i, x in enumerate(v):
                    if isinstance(x, float) and not math.isfinite(x):
                        found[f"{k}[{i}]"] = _spell(x)
            out[k] = finite_json(v)
        if found:
            out["non_finite"] = {**dict(out.get("non_finite") or {}), **found}
        return out
    if isinstance(obj, list | tuple):
        return [finite_json(x) for x in obj]
    return obj


def _spell(x: float) -> str:
    return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def encode_json(body: Any) -> bytes:
    """The exact bytes lq POSTs: compact UTF-8 JSON of :func:`finite_json` of ``body``.

    Raises :class:`PermanentDeliveryError` for a body JSON cannot represent (retrying
    would encode it the same way)."""
    try:
        return json.dumps(
            finite_json(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PermanentDeliveryError(f"the alert cannot be encoded as JSON: {exc}") from None


_JSON = {"Content-Type": "application/json"}


class AlertChannel(Protocol):
    name: str

    async def send(self, event: AlertEvent) -> None: ...


def format_text(event: AlertEvent) -> str:
    """The one-paragraph text every human channel sends."""
    d = event.as_dict()
    return (
        f"[{event.severity.upper()}] {event.rule.name}: {event.rule.describe()}\n"
        f"value {event.value:.6g} at {d['time']} (exchange time)"
    )


class DashboardChannel:
    """The stored event *is* the delivery: the Alerts tab shows it."""

    name = "dashboard"

    async def send(self, event: AlertEvent) -> None:
        return None


class _Http:
    def __init__(self, *, timeout: float, client: httpx.AsyncClient | None) -> None:
        self.timeout = timeout
        self._client = client

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class TelegramChannel(_Http):
    """Telegram Bot API ``sendMessage`` (``POST {base_url}/bot{token}/sendMessage``)."""

    name = "telegram"

    def __init__(
        self,
        *,
        token: str,
        chat_id: str,
        base_url: str = "https://api.telegram.org",
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self._token = token
        _register_secret(token)
        self.chat_id = chat_id
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"TelegramChannel(chat_id={self.chat_id!r}, base_url={self.base_url!r})"

    def body(self, event: AlertEvent) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "text": format_text(event)}

    async def send(self, event: AlertEvent) -> None:
        url = f"{self.base_url}/bot{self._token}/sendMessage"
        content = encode_json(self.body(event))
        r = await self.client().post(url, content=content, headers=_JSON, timeout=self.timeout)
        if r.status_code != 200:
            raise http_error("telegram", r.status_code)
        try:
            ok = r.json().get("ok", False)
        except ValueError:
            ok = False
        if not ok:
            raise RuntimeError("telegram: reply without ok=true")


def webhook_body(event: AlertEvent, fmt: Literal["json", "slack", "discord"]) -> dict[str, Any]:
    """The JSON body: the event (``json``), ``{"text"}`` (Slack) or ``{"content"}`` (Discord).

    Non-finite numbers are sent as ``null`` with their text under ``"non_finite"``
    (:func:`finite_json`); :func:`encode_json` makes the bytes."""
    if fmt == "slack":
        return {"text": format_text(event)}
    if fmt == "discord":
        return {"content": format_text(event)[:2000]}
    return {"event": event.as_dict(), "text": format_text(event)}


class WebhookChannel(_Http):
    """POST a JSON body to ``url``; any 2xx is success."""

    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        format: Literal["json", "slack", "discord"] = "json",
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        from lq.config import check_http_url

        check_http_url(url, field="webhook.url")  # "notaurl" is refused here, not at send
        super().__init__(timeout=timeout, client=client)
        self.url = url
        self.format = format

    def __repr__(self) -> str:
        return f"WebhookChannel(url={self.url!r}, format={self.format!r})"

    async def send(self, event: AlertEvent) -> None:
        content = encode_json(webhook_body(event, self.format))
        # a retry after a timeout may reach a receiver that already has the event: the same
        # key on every attempt lets it keep one (rule id + exchange time, unique per firing)
        headers = {**_JSON, "Idempotency-Key": f"lq-{event.fired_key}"}
        r = await self.client().post(
            self.url, content=content, headers=headers, timeout=self.timeout
        )
        if not 200 <= r.status_code < 300:
            raise http_error("webhook", r.status_code)


class EmailChannel:
    """E-mail over SMTP with STARTTLS, implicit TLS (``ssl``) or none, and optional login.

    ``smtplib`` blocks, so each message is sent on a worker thread (never on the loop).
    """

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        to: Iterable[str],
        security: Literal["starttls", "ssl", "none"] = "starttls",
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.to = tuple(to)
        self.security = security
        self.username = username
        self._password = password
        _register_secret(password)
        self.timeout = timeout
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"EmailChannel(host={self.host!r}, port={self.port}, security={self.security!r})"

    def message(self, event: AlertEvent) -> EmailMessage:
        m = EmailMessage()
        m["Subject"] = f"[lq {event.severity}] {event.rule.name}"
        m["From"] = self.sender
        m["To"] = ", ".join(self.to)
        m.set_content(format_text(event) + "\n")
        return m

    def _send_sync(self, msg: EmailMessage) -> None:
        ctx = self.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=ctx)
            if self.username:
                smtp.login(self.username, self._password)
            smtp.send_message(msg)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    async def send(self, event: AlertEvent) -> None:
        try:
            await asyncio.to_thread(self._send_sync, self.message(event))
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:  # SMTP 5xx: permanent by RFC 5321
                raise PermanentDeliveryError(
                    f"email: SMTP {exc.smtp_code} {exc.smtp_error!r} (not retried)"
                ) from None
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            if codes and all(500 <= c < 600 for c in codes):
                raise PermanentDeliveryError(
                    f"email: every recipient refused ({sorted(set(codes))}; not retried)"
                ) from None
            raise


def channels_from_settings(
    settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> dict[str, AlertChannel]:
    """The configured channels (``dashboard`` always; the others when their settings are set)."""
    out: dict[str, AlertChannel] = {"dashboard": DashboardChannel()}
    t = settings.telegram
    if t.token and t.chat_id:
        out["telegram"] = TelegramChannel(token=t.token, chat_id=t.chat_id, base_url=t.base_url)
    e = settings.email
    if e.host and e.to:
        out["email"] = EmailChannel(
            host=e.host,
            port=e.port,
            sender=e.sender or (e.username or "lq@localhost"),
            to=e.to,
            security=e.security,  # type: ignore[arg-type]
            username=e.username,
            password=e.password,
            ssl_context=ssl_context,
        )
    w = settings.webhook
    if w.url:
        out["webhook"] = WebhookChannel(url=w.url, format=w.format)  # type: ignore[arg-type]
    return out
