"""Venue name -> adapter. A venue registers by existing: ``lq/venues/<name>/``.

:func:`get_venue` imports ``lq.venues.<name>`` on first use. A package that defines
``VENUE`` (an object with the :class:`~lq.venues.base.Venue` attributes) is used as it is;
a package made of the pure protocol modules (``protocol.py``, ``parser.py``, ``rest.py`` and
optionally ``instruments.py``, ``imitation.py``) is wrapped in a
:class:`~lq.venues.base.ProtocolVenue`. :func:`register` adds a venue defined elsewhere (a
test's fake venue, a plug-in). Nothing in the collector, the store or the dashboard names a
venue.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from lq.errors import ValidationError
from lq.venues.base import ProtocolVenue, Venue

__all__ = ["DEFAULT_VENUE", "get_venue", "register", "unregister", "venue_names"]

DEFAULT_VENUE = "binance"

_REGISTERED: dict[str, Any] = {}
_PACKAGE = "lq.venues"
_NOT_VENUES = frozenset({"base", "registry", "instrument"})


def register(venue: Any, *, replace: bool = False) -> Any:
    """Make ``venue`` available under ``venue.name`` (returns it, so it can decorate)."""
    name = getattr(venue, "name", None)
    if not isinstance(name, str) or not name or name != name.lower():
        raise ValidationError("venue.name", name, "expected a lower-case venue name")
    missing = [
        a
        for a in ("id_rule", "ws_url", "rest_url", "client", "local_exchange")
        if not hasattr(venue, a)
    ]
    if missing:
        raise ValidationError("venue", name, f"is not a venue adapter: missing {missing}")
    if name in _REGISTERED and not replace and _REGISTERED[name] is not venue:
        raise ValidationError("venue", name, "is already registered (replace=True to override)")
    _REGISTERED[name] = venue
    return venue


def unregister(name: str) -> None:
    """Remove a venue added with :func:`register` (tests)."""
    _REGISTERED.pop(name, None)


def _folders() -> list[str]:
    """Packages under ``lq/venues/`` that are venues: pure protocol modules
    (``protocol.py``) or an adapter object of their own (``venue.py``)."""
    here = Path(__file__).parent
    out = []
    for m in pkgutil.iter_modules([str(here)]):
        if not m.ispkg or m.name in _NOT_VENUES:
            continue
        d = here / m.name
        if (d / "protocol.py").exists() or (d / "venue.py").exists():
            out.append(m.name)
    return sorted(out)


def venue_names() -> list[str]:
    """Every venue lq knows: the folders under ``lq/venues/`` and the registered ones."""
    return sorted(set(_folders()) | set(_REGISTERED))


def _load(name: str) -> Any:
    pkg = importlib.import_module(f"{_PACKAGE}.{name}")
    venue = getattr(pkg, "VENUE", None)
    if venue is not None:
        return venue

    def sub(mod: str, required: bool = True) -> Any:
        try:
            return importlib.import_module(f"{_PACKAGE}.{name}.{mod}")
        except ModuleNotFoundError as exc:
            if required or exc.name != f"{_PACKAGE}.{name}.{mod}":
                raise
            return None

    return ProtocolVenue(
        protocol=sub("protocol"),
        parser=sub("parser"),
        rest=sub("rest"),
        instruments=sub("instruments", required=False),
        imitation=sub("imitation", required=False),
    )


def get_venue(name: str) -> Venue:
    """The adapter of venue ``name`` (``binance``, ``coinbase``, ``kraken``, ``okx``...)."""
    key = str(name).strip().lower()
    if key in _REGISTERED:
        return _REGISTERED[key]  # type: ignore[no-any-return]
    if key not in _folders():
        raise ValidationError(
            "venue", name, f"unknown venue; expected one of {', '.join(venue_names())}"
        )
    venue = _load(key)
    _REGISTERED[key] = venue
    return venue  # type: ignore[no-any-return]
