"""Frozen, keyword-only configuration objects with a JSON round trip and a content-hash id.

Every backtest setting (:class:`~lq.backtest.costs.Costs`, :class:`~lq.backtest.sizing.Sizing`,
:class:`~lq.backtest.stops.Stops`) derives from :class:`Config`. Unknown fields are refused
with a :class:`~lq.errors.ValidationError` naming the field, both by the constructor and by
:meth:`Config.from_dict` / :meth:`Config.from_json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from lq.errors import ValidationError

__all__ = ["Config", "canonical_json", "content_hash"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN/inf: NaN (undefined) -> null, infinities -> "inf" / "-inf"
        return None if math.isnan(value) else repr(value)
    return value


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same settings always give the same text."""
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))


def content_hash(value: Any, *, length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Base class: frozen, keyword-only, validated in ``_validate``, JSON round trip."""

    def __post_init__(self) -> None:
        # 10 and 10.0 are the same setting: store floats as floats so the hash agrees
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", "float | None") and type(v) is int:
                object.__setattr__(self, f.name, float(v))
        self._validate()

    def _validate(self) -> None:  # pragma: no cover - overridden
        return None

    def to_dict(self) -> dict[str, Any]:
        """Field values as plain Python objects."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a mapping; an unknown key raises :class:`~lq.errors.ValidationError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ValidationError(
                    f"{cls.__name__}.{key}", data[key], f"unknown field; known: {sorted(known)}"
                )
        return cls(**cls._coerce(dict(data)))

    @classmethod
    def _coerce(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Turn nested plain values back into objects (override in composite configs)."""
        return data

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValidationError(cls.__name__, text[:60], "expected a JSON object")
        return cls.from_dict(data)

    @property
    def id(self) -> str:
        """Content hash of the settings (16 hex digits); equal settings give equal ids."""
        return content_hash({"type": type(self).__name__, **self.to_dict()})


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    exclusive: bool = False,
    allow_none: bool = False,
) -> None:
    """Raise :class:`ValidationError` unless ``value`` is a finite real above ``minimum``."""
    field = f"{owner}.{name}"
    if value is None:
        if allow_none:
            return
        raise ValidationError(field, value, "a number is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, value, "must be a number")
    if not math.isfinite(value):
        raise ValidationError(field, value, "must be finite")
    if minimum is not None:
        if exclusive and value <= minimum:
            raise ValidationError(field, value, f"must be > {minimum}")
        if not exclusive and value < minimum:
            raise ValidationError(field, value, f"must be >= {minimum}")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise :class:`ValidationError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValidationError(f"{owner}.{name}", value, f"must be one of {list(choices)}")
