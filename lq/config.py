"""Settings: one TOML file plus environment variables, validated, secrets masked on display.

Where settings come from, last one wins:

1. defaults (below);
2. the TOML file: ``$LQ_CONFIG`` or ``<user config dir>/lq/config.toml``;
3. environment variables ``LQ_<SECTION>_<KEY>`` (e.g. ``LQ_STORE_DB``,
   ``LQ_EMAIL_PASSWORD``, ``LQ_TELEGRAM_TOKEN``), plus the short alias ``LQ_DB``;
4. command-line flags such as ``--db``.

Unknown sections or keys are refused with a message naming them, so a typo never silently
falls back to a default. Secrets (keys named ``token``, ``password``, ``secret``,
``api_key``) are only read from the file or the environment, and are shown masked by
``lq config``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from lq.errors import ConfigError, ValidationError

__all__ = [
    "BinanceSettings",
    "CollectorSettings",
    "DashboardSettings",
    "EmailSettings",
    "Settings",
    "StoreSettings",
    "TelegramSettings",
    "WebhookSettings",
    "check_http_url",
    "check_source",
    "config_path",
    "load_settings",
    "parse_duration",
]

SECRET_KEYS = frozenset({"token", "password", "secret", "api_key"})


def default_db() -> Path:
    return Path(platformdirs.user_data_dir("lq", appauthor=False)) / "lq.sqlite"


def config_path() -> Path:
    env = os.environ.get("LQ_CONFIG")
    return (
        Path(env)
        if env
        else Path(platformdirs.user_config_dir("lq", appauthor=False)) / "config.toml"
    )


def check_source(source: str, *, field: str = "--source") -> str:
    """The one check of a collector source (``lq collect``, ``lq dashboard``, the config):
    ``live``, ``local`` or ``replay:FILE[,FILE]``; anything else is a one-line
    :class:`ValidationError` listing those forms."""
    if source in ("live", "local") or (
        source.startswith("replay:") and any(f.strip() for f in source[7:].split(","))
    ):
        return source
    raise ValidationError(field, source, "expected live, local or replay:FILE[,FILE]")


def check_http_url(url: str, *, field: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (a webhook, the Telegram API base);
    anything else is a one-line :class:`ConfigError` naming the field and the form."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        why = (
            "not a URL"
            if parts is None
            else "the scheme must be http or https"
            if parts.scheme.lower() not in ("http", "https")
            else "it has no host"
        )
        env = "$LQ_" + field.replace(".", "_").upper()
        raise ConfigError(
            f"{field}={url!r}: {why}: expected a URL such as https://hooks.example.com/lq "
            f"(set it in {config_path()} or {env})"
        )
    return url


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|min|h|d|w)?\s*$")
_UNIT_S = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    None: 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


def parse_duration(value: str | float | int, *, field: str = "duration") -> float:
    """``"100ms"``, ``"15m"``, ``"24h"``, ``"7d"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{field}={value!r}: expected a duration such as '24h'")
    if isinstance(value, int | float):
        secs = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ConfigError(
                f"{field}={value!r}: expected a duration such as '100ms', '15m', '24h' or '7d'"
            )
        secs = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not secs >= 0 or secs == float("inf"):
        raise ConfigError(f"{field}={value!r}: must be a finite, non-negative duration")
    return secs


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    db: str = field(default_factory=lambda: str(default_db()))
    retention_ticks: str = "7d"  # "" keeps ticks forever
    retention_bars: str = ""  # bars, alert history and backtest runs are kept by default
    purge_every: str = "10m"
    archive: str = ""  # Parquet archive: a folder or fsspec URL (s3://...); "": <db>.archive
    import_max_size: str = "4GiB"  # lq import / uploads: refuse files inflating to more
    import_max_ratio: int = 200  # ... or, past 64 MiB, inflating more than this many times


@dataclass(frozen=True, kw_only=True)
class CollectorSettings:
    source: str = "live"  # live | local | replay:FILE
    endpoint: str = "spot"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    channels: tuple[str, ...] = ("trade",)
    # [[collector.feeds]] tables: several venues in one collector (see FEED_KEYS); when
    # given, they replace `symbols`/`channels`
    feeds: tuple[dict[str, Any], ...] = ()
    flush_interval: str = "100ms"
    status_interval: str = "1s"
    spill_dir: str = ""  # where events wait while the database fails ("": <db>.spill/)
    max_buffer: int = 200_000  # events kept in memory while the database fails, then spilled


@dataclass(frozen=True, kw_only=True)
class BinanceSettings:
    # Sent as X-MBX-APIKEY with historicalTrades, which needs it on the usdm and us presets.
    # A read-only key is enough; set it in LQ_BINANCE_API_KEY or the config file.
    api_key: str = ""


@dataclass(frozen=True, kw_only=True)
class TelegramSettings:
    token: str = ""
    chat_id: str = ""
    base_url: str = "https://api.telegram.org"


@dataclass(frozen=True, kw_only=True)
class EmailSettings:
    host: str = ""
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str = ""
    password: str = ""
    sender: str = ""
    to: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    url: str = ""
    format: str = "json"  # json | slack | discord


@dataclass(frozen=True, kw_only=True)
class DashboardSettings:
    host: str = "127.0.0.1"
    port: int = 8866
    token: str = ""  # the dashboard server's token (LQ_DASHBOARD_TOKEN); never on a command line


@dataclass(frozen=True, kw_only=True)
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    binance: BinanceSettings = field(default_factory=BinanceSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)

    def with_db(self, db: str | os.PathLike[str] | None) -> Settings:
        """A copy with ``store.db`` overridden (``--db``); None keeps the setting."""
        if db is None:
            return self
        return replace(self, store=replace(self.store, db=str(Path(db).expanduser())))

    @property
    def db(self) -> Path:
        return Path(self.store.db).expanduser()

    def as_dict(self, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for f in fields(self):
            section = dataclasses.asdict(getattr(self, f.name))
            if mask_secrets:
                for k, v in section.items():
                    if k in SECRET_KEYS and v:
                        section[k] = "****"
            out[f.name] = section
        return out

    def to_toml(self, *, mask_secrets: bool = True) -> str:
        lines: list[str] = []
        for name, section in self.as_dict(mask_secrets=mask_secrets).items():
            lines.append(f"[{name}]")
            tables = section.pop("feeds", ()) if name == "collector" else ()
            for k, v in section.items():
                lines.append(f"{k} = {_toml_value(v)}")
            lines.append("")
            for table in tables:  # [[collector.feeds]] come after the section's keys
                lines.append(f"[[{name}.feeds]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
                lines.append("")
        return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


#: The keys a ``[[collector.feeds]]`` table takes.
FEED_KEYS = ("venue", "symbols", "channels", "label", "ws_url", "rest_url", "endpoint")


def _coerce_feeds(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(
            "collector.feeds: expected [[collector.feeds]] tables, e.g. "
            'venue = "coinbase" and symbols = ["BTC-USD"]'
        )
    out = []
    for i, table in enumerate(value):
        where = f"collector.feeds[{i}]"
        unknown = sorted(set(table) - set(FEED_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown}; expected some of {list(FEED_KEYS)}"
            )
        feed: dict[str, Any] = {}
        for k, v in table.items():
            if k in ("symbols", "channels"):
                if isinstance(v, str):
                    v = [x.strip() for x in v.split(",") if x.strip()]
                if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
                    raise ConfigError(f"{where}.{k}={v!r}: expected a non-empty list of strings")
                feed[k] = tuple(v)
            elif not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{where}.{k}={v!r}: expected a non-empty string")
            else:
                feed[k] = v.strip()
        if "symbols" not in feed:
            raise ConfigError(f"{where}: needs symbols = [...]")
        feed.setdefault("venue", "binance")
        out.append(feed)
    return tuple(out)


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    where = f"{section}.{f.name}"
    if section == "collector" and f.name == "feeds":
        return _coerce_feeds(value)
    default = getattr(Settings(), section)
    current = getattr(default, f.name)
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}={value!r}: expected a list of strings")
        return tuple(value)
    if isinstance(current, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={value!r}: expected true or false")
        return value
    if isinstance(current, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}={value!r}: expected an integer") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where}={value!r}: expected a string")
    return value


def load_settings(
    path: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file, then ``LQ_*`` environment variables.

    Only the default location may be absent: a file named by ``path`` or ``$LQ_CONFIG``
    that does not exist is a :class:`ConfigError` (a typo never falls back to defaults)."""
    env = dict(os.environ if env is None else env)
    named = os.environ.get("LQ_CONFIG")  # what config_path() follows
    p = Path(path) if path is not None else config_path()
    data: dict[str, Any] = {}
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a config file: name a TOML file")
    if p.exists():  # a file, or /dev/null and other readable non-directories (no settings)
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    elif path is not None:
        raise ConfigError(f"{p}: no such config file (--config): create it, or leave --config out")
    elif named:  # the user named a file: a typo must not silently fall back to the defaults
        raise ConfigError(
            f"{p}: no such config file ($LQ_CONFIG): create it (it may be empty), "
            "or unset LQ_CONFIG to use the default location"
        )
    sections = {f.name: f for f in fields(Settings)}
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for name, body in data.items():
        if name not in sections:
            raise ConfigError(f"{p}: unknown section [{name}]; expected one of {sorted(sections)}")
        if not isinstance(body, dict):
            raise ConfigError(f"{p}: [{name}] must be a table")
        values[name].update(body)
    if "LQ_DB" in env:
        values["store"]["db"] = env["LQ_DB"]
    for key, value in env.items():
        if not key.startswith("LQ_") or key in ("LQ_DB", "LQ_CONFIG"):
            continue
        rest = key[3:].lower()
        for name in sections:
            if rest.startswith(name + "_"):
                values[name][rest[len(name) + 1 :]] = value
                break
    built: dict[str, Any] = {}
    for name, sf in sections.items():
        cls = sf.default_factory  # type: ignore[misc]
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {}
        for k, v in values[name].items():
            if k not in known:
                raise ConfigError(f"unknown setting {name}.{k}; expected one of {sorted(known)}")
            kwargs[k] = _coerce(name, known[k], v)
        if name == "collector" and "symbols" in kwargs:
            kwargs["symbols"] = tuple(x.upper() for x in kwargs["symbols"])
        built[name] = cls(**kwargs)  # type: ignore[operator]
    settings = Settings(**built)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    for name in ("retention_ticks", "retention_bars", "purge_every"):
        v = getattr(s.store, name)
        if v:
            parse_duration(v, field=f"store.{name}")
    parse_duration(s.collector.flush_interval, field="collector.flush_interval")
    if s.email.security not in ("starttls", "ssl", "none"):
        raise ConfigError(
            f"email.security={s.email.security!r}: expected 'starttls', 'ssl' or 'none'"
        )
    if s.webhook.format not in ("json", "slack", "discord"):
        raise ConfigError(
            f"webhook.format={s.webhook.format!r}: expected 'json', 'slack' or 'discord'"
        )
    try:
        check_source(s.collector.source, field="collector.source")
    except ValidationError as exc:  # a setting: the config error, in the same words
        raise ConfigError(str(exc)) from None
    if s.webhook.url:
        check_http_url(s.webhook.url, field="webhook.url")
    check_http_url(s.telegram.base_url, field="telegram.base_url")
