"""The one schema of the hub's TOML settings file: every key, its type, its allowed values.

:func:`check` walks a parsed TOML document against :data:`SCHEMA` and raises
:class:`ConfigError` naming the first key that is unknown or of the wrong type
(``namespaces.chat.history: expected a boolean, got 'no'``), so a typo is
refused rather than silently ignored. :mod:`hubbub.hub.settings` builds the
:class:`~hubbub.hub.core.config.HubConfig` from a checked document only.

The schema is data: top-level settings come from the command-line settings
(``settings.SETTINGS``, passed in), ``[limits]`` from the fields of
:class:`~hubbub.hub.core.config.HubConfig`, so a new field is accepted and
type-checked without touching this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .core.config import HubConfig

__all__ = ["SCHEMA_TABLES", "ConfigError", "Kind", "check"]


class ConfigError(ValueError):
    """A settings file that does not follow the schema; the message names the key."""


@dataclass(frozen=True)
class Kind:
    """What one key accepts.

    Attributes:
        types: the TOML types accepted (``bool`` is never taken for a number).
        name: how the type is named in errors.
        choices: the only values allowed, if any.
        minimum: the smallest number allowed, if any.
        items: for a list, what each item accepts.
    """

    types: tuple[type, ...]
    name: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    items: Kind | None = None


BOOL = Kind((bool,), "a boolean")
STR = Kind((str,), "a string")
INT = Kind((int,), "an integer", minimum=0)
NUMBER = Kind((int, float), "a number", minimum=0)
STRINGS = Kind((list,), "a list of strings", items=STR)
#: ``workers``: a count or "auto" (checked further by ``hubbub.hub.workers.worker_count``).
WORKERS = Kind((int, str), 'a number of workers or "auto"')

#: Keys of a ``[namespaces.NAME]`` table (``NamespaceRules``; history flattened).
NAMESPACE: dict[str, Kind] = {
    "subscribe": Kind((str,), "a string", choices=("all", "private")),
    "publish": Kind((str,), "a string", choices=("subscribers", "all", "none")),
    "presence": BOOL,
    "join_leave": BOOL,
    "history": BOOL,  # false: keep no history (history_size = 0)
    "history_size": INT,
    "history_ttl": NUMBER,  # 0: no age limit
    "recover_max": INT,
}

#: Keys of the ``[inbox]`` table.
INBOX: dict[str, Kind] = {"max_len": INT, "max_age": NUMBER}


def _limits() -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}
    for f in dataclasses.fields(HubConfig):
        if f.name in ("namespaces", "inbox"):
            continue
        default = f.default
        kinds[f.name] = INT if type(default) is int else NUMBER
    return kinds


#: Keys of the ``[limits]`` table: every number of ``HubConfig``.
LIMITS = _limits()

#: The tables of the file; top-level keys come from the command-line settings.
SCHEMA_TABLES: dict[str, dict[str, Kind]] = {"limits": LIMITS, "inbox": INBOX}


def _is(value: Any, kind: Kind) -> bool:
    # TOML's true is a Python bool, which is an int: never a number here.
    return isinstance(value, kind.types) and (bool in kind.types or type(value) is not bool)


def _check_value(path: str, value: Any, kind: Kind) -> None:
    if not _is(value, kind):
        raise ConfigError(f"{path}: expected {kind.name}, got {value!r}")
    if kind.choices and value not in kind.choices:
        allowed = ", ".join(repr(c) for c in kind.choices)
        raise ConfigError(f"{path}: expected one of {allowed}, got {value!r}")
    if kind.minimum is not None and value < kind.minimum:
        raise ConfigError(f"{path}: must be at least {kind.minimum:g}, got {value!r}")
    if kind.items is not None:
        for i, item in enumerate(value):
            _check_value(f"{path}[{i}]", item, kind.items)


def _check_table(path: str, table: Any, keys: Mapping[str, Kind]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {table!r}")
    for key, value in table.items():
        kind = keys.get(key)
        if kind is None:
            raise ConfigError(f"{path}.{key}: unknown key (known: {', '.join(sorted(keys))})")
        _check_value(f"{path}.{key}", value, kind)


def check(document: Mapping[str, Any], settings: Mapping[str, Kind]) -> None:
    """Check a parsed TOML document against the schema.

    Args:
        document: what ``tomllib`` returned.
        settings: the top-level keys (the command-line settings) and their kinds.

    Raises:
        ConfigError: an unknown key or a value of the wrong type, named by its path.
    """
    tables = {**SCHEMA_TABLES, "namespaces": {}}
    for key, value in document.items():
        if key in settings:
            _check_value(key, value, settings[key])
        elif key == "namespaces":
            if not isinstance(value, dict):
                raise ConfigError(f"namespaces: expected a table, got {value!r}")
            for name, table in value.items():
                _check_table(f"namespaces.{name}", table, NAMESPACE)
                if table.get("history") is False and table.get("history_size", 0) != 0:
                    raise ConfigError(
                        f"namespaces.{name}: history = false contradicts history_size"
                    )
        elif key in tables:
            _check_table(key, value, SCHEMA_TABLES[key])
        else:
            known = sorted([*settings, *tables])
            raise ConfigError(f"{key}: unknown key (known: {', '.join(known)})")
