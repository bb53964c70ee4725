"""Every exception lq raises on purpose derives from :class:`LqError`.

The tree::

    LqError
    ├── ConfigError            bad setting in the TOML file or the environment
    ├── ValidationError        a value refused at the door (names ``field`` and ``value``)
    │   └── RuleError          an alert rule that cannot be stored or evaluated
    ├── FrameError             a feed frame that cannot be parsed (carries ``raw`` and ``reason``)
    ├── StoreError             the SQLite/DuckDB store
    │   ├── WriterLockedError  a second writer on the same database (names the running process)
    │   ├── SchemaError        a database from a newer lq, or a failed migration
    │   └── StorageFailedError the database itself cannot take writes (disk full, I/O error,
    │                          read-only, file replaced or deleted, corrupt): a state, retried
    ├── FeedError              the live-data transport
    │   ├── ExhaustedRetriesError   the connection-attempt budget is spent
    │   └── RestError          a REST call failed (carries ``status`` and ``code``)
    │       └── RateLimitError 429/418 with ``retry_after`` seconds
    ├── ImportFormatError      a file ``lq import`` does not understand (names the file and line)
    │   └── SymbolRequiredError  a file that does not say which symbol it holds
    ├── BacktestError          a strategy or parameter set that cannot be run
    └── ForecastError          a forecast that cannot be trained, loaded or deployed
        └── ModelFileError     a model file that is damaged or does not match this lq

Messages name the field and the value, so that a user can fix the input without reading code.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BacktestError",
    "ConfigError",
    "ExhaustedRetriesError",
    "FeedError",
    "ForecastError",
    "FrameError",
    "ImportFormatError",
    "LqError",
    "ModelFileError",
    "RateLimitError",
    "RestError",
    "RuleError",
    "SchemaError",
    "StorageFailedError",
    "StoreError",
    "SymbolRequiredError",
    "ValidationError",
    "WriterLockedError",
]


class LqError(Exception):
    """Base of every error lq raises on purpose."""


class ConfigError(LqError):
    """A setting in the config file or the environment is invalid."""


class ValidationError(LqError, ValueError):
    """A value refused at the door; ``field`` and ``value`` say which and what."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class RuleError(ValidationError):
    """An alert rule that cannot be stored or evaluated."""


class FrameError(LqError):
    """A feed frame that cannot be parsed. The collector stores it in the dead-letter table."""

    def __init__(self, reason: str, raw: bytes | str = b"") -> None:
        self.reason = reason
        self.raw = raw
        super().__init__(reason)


class StoreError(LqError):
    """Something went wrong in the SQLite/DuckDB store."""


class WriterLockedError(StoreError):
    """Another process already writes this database."""

    def __init__(self, path: str, pid: int | None, detail: str = "") -> None:
        self.path = path
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        msg = f"{path} is already being written by {who}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg + "; only one writer (collector) may run per database file")


class SchemaError(StoreError):
    """The database schema is newer than this lq, or a migration failed."""


class StorageFailedError(StoreError):
    """The database itself cannot take writes now: ``reason`` is SQLite's own words
    ("database or disk is full", "disk I/O error", ...) or what the file check found
    ("database file deleted"). Nothing of the batch was stored; the collector keeps the events
    (memory, then the spill directory) and retries."""

    def __init__(self, reason: str, *, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class FeedError(LqError):
    """The live-data transport failed."""


class ExhaustedRetriesError(FeedError):
    """The connection-attempt budget is spent."""


class RestError(FeedError):
    """A REST call failed."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class RateLimitError(RestError):
    """HTTP 429 or 418: wait ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, status: int, retry_after: float, code: int | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code)


class ImportFormatError(LqError):
    """A file ``lq import`` does not understand, or refuses (over a size limit)."""


class SymbolRequiredError(ImportFormatError):
    """The file does not say which symbol it holds (no Binance file name): pass one."""


class BacktestError(LqError):
    """A strategy or parameter set that cannot be run."""


class ForecastError(LqError):
    """A forecast that cannot be trained, loaded, deployed or scored."""


class ModelFileError(ForecastError):
    """A saved model that is damaged, not an lq model, or made for other features/versions."""
