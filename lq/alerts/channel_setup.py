"""Which settings each delivery channel needs, and the refusal of a rule whose channel has none.

A rule that names ``telegram`` while no bot token is set would be stored, fire, and deliver
nothing: ``lq alerts add`` (and the dashboard's Save) refuse it instead, naming the settings
and environment variables to set. The settings are the ones
:func:`lq.alerts.channels.channels_from_settings` builds each channel from (a test checks that
the two agree); secrets (the bot token, the SMTP password) belong only in the environment or
the config file.
"""

from __future__ import annotations

from collections.abc import Iterable

from lq.config import Settings, config_path
from lq.errors import RuleError

__all__ = ["CHANNEL_SETTINGS", "check_channels_configured", "unconfigured_channels"]

#: Channel -> the ``(setting, environment variable)`` pairs that must all be set for it.
CHANNEL_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "dashboard": (),
    "telegram": (
        ("telegram.token", "LQ_TELEGRAM_TOKEN"),
        ("telegram.chat_id", "LQ_TELEGRAM_CHAT_ID"),
    ),
    "email": (("email.host", "LQ_EMAIL_HOST"), ("email.to", "LQ_EMAIL_TO")),
    "webhook": (("webhook.url", "LQ_WEBHOOK_URL"),),
}


def _value(settings: Settings, key: str) -> object:
    section, name = key.split(".")
    return getattr(getattr(settings, section), name)


def unconfigured_channels(
    channels: Iterable[str], settings: Settings
) -> dict[str, list[tuple[str, str]]]:
    """For each channel in ``channels`` that cannot deliver, the settings it still needs."""
    out: dict[str, list[tuple[str, str]]] = {}
    for ch in channels:
        missing = [(k, env) for k, env in CHANNEL_SETTINGS.get(ch, ()) if not _value(settings, k)]
        if missing:
            out[ch] = missing
    return out


def check_channels_configured(channels: Iterable[str], settings: Settings) -> None:
    """Raise :class:`~lq.errors.RuleError` naming what to set for each unconfigured channel."""
    channels = tuple(channels)
    missing = unconfigured_channels(channels, settings)
    if not missing:
        return
    parts = [
        f"{ch} needs " + " and ".join(f"{k} (or ${env})" for k, env in need)
        for ch, need in missing.items()
    ]
    raise RuleError(
        "channels",
        ",".join(channels),
        f"{'; '.join(parts)}: set them in {config_path()} or the environment (see "
        "`lq config`), or leave those channels out (dashboard always works)",
    )
