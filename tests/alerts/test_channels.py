"""Channels against real servers on 127.0.0.1: aiosmtpd, and an HTTP server standing in for
the Telegram Bot API and for a webhook. Bodies are compared byte for byte (after JSON
decoding) with what the Telegram/Slack/Discord APIs document."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging

import msgspec
import pytest

from lq.alerts.channels import (
    EmailChannel,
    TelegramChannel,
    WebhookChannel,
    channels_from_settings,
    format_text,
)
from lq.alerts.delivery import Delivery, RetryPolicy
from lq.config import load_settings

from ._events import RULE, TS, event

TOKEN = "123456:AAH-very-secret-bot-token"
PASSWORD = "s3cret-pw"
EXPECTED_TEXT = (
    "[WARNING] eth-btc-z: spread_zscore(ETHUSDT/BTCUSDT, w=30, ols) crosses_above 2\n"
    "value 2.25 at 2024-08-09T00:00:00+00:00 (exchange time)"
)


def test_format_text_names_rule_condition_value_and_exchange_time():
    assert format_text(event()) == EXPECTED_TEXT


def _mail(box) -> email.message.EmailMessage:
    assert len(box.messages) == 1, box.messages
    sender, rcpts, raw = box.messages[0]
    assert sender == "lq@example.org"
    assert rcpts == ["quant@example.org", "desk@example.org"]
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_email_is_received_by_a_real_smtp_server_with_login(security, request):
    box = request.getfixturevalue({"none": "smtp_plain", "starttls": "smtp_starttls",
                                   "ssl": "smtp_ssl"}[security])  # fmt: skip
    ch = EmailChannel(
        host=box.host, port=box.port, sender="lq@example.org",
        to=["quant@example.org", "desk@example.org"], security=security,
        username="quant", password=PASSWORD, ssl_context=box.client_context, timeout=5,
    )  # fmt: skip
    asyncio.run(ch.send(event()))
    m = _mail(box)
    assert m["Subject"] == "[lq warning] eth-btc-z"
    assert m.get_content().replace("\r\n", "\n").strip() == EXPECTED_TEXT
    assert box.logins == [("quant", PASSWORD)]


def test_starttls_server_refuses_a_client_that_skips_tls(smtp_starttls):
    ch = EmailChannel(
        host=smtp_starttls.host, port=smtp_starttls.port, sender="lq@example.org",
        to=["quant@example.org"], security="none", username="quant", password=PASSWORD,
    )  # fmt: skip
    with pytest.raises(Exception):  # noqa: B017 - smtplib raises SMTPException subclasses
        asyncio.run(ch.send(event()))
    assert smtp_starttls.messages == []


def test_telegram_send_message_request_is_exact(http_server):
    ch = TelegramChannel(token=TOKEN, chat_id="-100200300", base_url=http_server.url)

    async def go():
        await ch.send(event())
        await ch.aclose()

    asyncio.run(go())
    (req,) = http_server.requests
    # Bot API: POST https://api.telegram.org/bot<token>/sendMessage with chat_id and text
    assert req.path == f"/bot{TOKEN}/sendMessage"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {"chat_id": "-100200300", "text": EXPECTED_TEXT}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("slack", {"text": EXPECTED_TEXT}),  # Slack incoming webhooks: {"text": ...}
        ("discord", {"content": EXPECTED_TEXT}),  # Discord webhooks: {"content": ...}
        (
            "json",
            {
                "text": EXPECTED_TEXT,
                "event": {
                    "id": 7, "rule_id": 3, "rule": "eth-btc-z", "metric": "spread_zscore",
                    "symbol": "ETHUSDT/BTCUSDT", "condition": "crosses_above", "threshold": 2.0,
                    "band": None, "value": 2.25, "ts": TS,
                    "time": "2024-08-09T00:00:00+00:00", "local_ts": TS + 1500,
                    "severity": "warning", "message": event().message,
                },
            },
        ),
    ],
)  # fmt: skip
def test_webhook_bodies_are_exact(http_server, fmt, expected):
    ch = WebhookChannel(url=http_server.url + "/hook/abc", format=fmt)

    async def go():
        await ch.send(event())
        await ch.aclose()

    asyncio.run(go())
    (req,) = http_server.requests
    assert req.path == "/hook/abc"
    assert req.json() == expected


def test_http_500_raises_so_the_queue_retries(http_server):
    http_server.mode = "500"
    ch = WebhookChannel(url=http_server.url)
    with pytest.raises(RuntimeError, match="HTTP 500"):
        asyncio.run(ch.send(event()))


def test_channels_come_from_settings_and_env(monkeypatch, http_server):
    monkeypatch.setenv("LQ_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("LQ_TELEGRAM_CHAT_ID", "42")
    monkeypatch.setenv("LQ_TELEGRAM_BASE_URL", http_server.url)
    monkeypatch.setenv("LQ_WEBHOOK_URL", http_server.url + "/w")
    monkeypatch.setenv("LQ_WEBHOOK_FORMAT", "slack")
    chans = channels_from_settings(load_settings())
    assert sorted(chans) == ["dashboard", "telegram", "webhook"]  # e-mail: no host set
    assert TOKEN not in repr(chans["telegram"])


def test_token_and_password_never_appear_in_logs_or_stored_errors(
    caplog, http_server, refused_url, smtp_plain
):
    """Deliver successfully and unsuccessfully through every channel with DEBUG logging on
    (httpx logs request URLs, and Telegram's URL contains the token)."""
    caplog.set_level(logging.DEBUG)
    statuses: list[dict] = []

    async def record(_id, _ch, status):
        statuses.append(status)

    async def go():
        ok = {
            "telegram": TelegramChannel(token=TOKEN, chat_id="1", base_url=http_server.url),
            "email": EmailChannel(host=smtp_plain.host, port=smtp_plain.port,
                                  sender="lq@example.org", to=["q@example.org"],
                                  security="none", username="quant", password=PASSWORD),
        }  # fmt: skip
        bad = {
            "telegram": TelegramChannel(token=TOKEN, chat_id="1", base_url=refused_url),
            "email": EmailChannel(host="127.0.0.1", port=int(refused_url.rsplit(":", 1)[1]),
                                  sender="lq@example.org", to=["q@example.org"],
                                  security="starttls", username="quant", password=PASSWORD),
        }  # fmt: skip
        pol = RetryPolicy(attempts=2, initial=0.01, attempt_timeout=3.0, rate=100.0)
        for chans in (ok, bad):
            d = Delivery(chans, record=record, policy=pol)
            d.start()
            d.submit(event(rule=msgspec.structs.replace(RULE, channels=("telegram", "email"))))
            await d.drain()
            await d.stop()

    asyncio.run(go())
    assert [s["status"] for s in statuses].count("sent") == 2
    assert [s["status"] for s in statuses].count("failed") == 2
    text = "\n".join(r.getMessage() for r in caplog.records) + repr(statuses)
    assert any("httpx" in r.name for r in caplog.records), "httpx logging was not captured"
    assert TOKEN not in text
    assert PASSWORD not in text
    assert "****" in text  # the URL was logged, masked


def _fields(rule):
    return {f: getattr(rule, f) for f in rule.__struct_fields__}
