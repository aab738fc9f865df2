"""Configuration for strata.Manager: the TOML tables of docs/configuration.md, from a file, a
dict and keyword overrides, resolved by the same C++ code as the C API and ``strata serve``."""

from __future__ import annotations

import json
import math
import os
import tomllib
from typing import Any, Mapping

# The tables a BlockManager reads ([server], [engine] and [metrics] are `strata serve`'s).
TABLES = ("model", "layout", "keys", "host", "manager", "disk", "hierarchy", "shared", "daemon")


def _split_key(name: str) -> tuple[str, str]:
    """'host.capacity_gb' or 'host_capacity_gb' -> ('host', 'capacity_gb')."""
    if "." in name:
        table, _, key = name.partition(".")
    else:
        table = next((t for t in TABLES if name.startswith(t + "_")), "")
        key = name[len(table) + 1:] if table else ""
    if not table or not key:
        raise TypeError(
            f"unknown Strata setting {name!r}: name it as <table>_<key> or '<table>.<key>' "
            f"with a table of {', '.join(TABLES)} (docs/configuration.md)")
    return table, key


def _value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (str, os.PathLike)):
        return json.dumps(os.fspath(v))  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x, where) for x in v) + "]"
    raise TypeError(f"{where}: {type(v).__name__} is not a TOML value")


def to_toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for table, keys in tables.items():
        if not isinstance(keys, Mapping):
            raise TypeError(f"config table [{table}] must be a mapping, got {type(keys).__name__}")
        lines.append(f"[{table}]")
        for key, v in keys.items():
            if v is None:
                continue
            lines.append(f"{key} = {_value(v, f'{table}.{key}')}")
    return "\n".join(lines) + "\n"


def resolve(config: Any = None, overrides: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """(TOML text, name for error messages) from ``config`` and ``overrides``.

    ``config`` is None, a path to a TOML file, or a dict of tables ({"host": {"capacity_gb": 1}});
    ``overrides`` map 'table_key' or 'table.key' names to values and win over ``config``.
    """
    overrides = dict(overrides or {})
    if config is None:
        tables: dict[str, dict[str, Any]] = {}
        name = "<python>"
    elif isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            from . import _strata
            raise _strata.IoError(f"config file {path}: {e.strerror}") from e
        if not overrides:
            return raw.decode("utf-8", errors="replace"), path
        try:
            tables = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            from . import _strata
            raise _strata.InvalidArgumentError(f"config file {path}: {e}") from e
        name = f"{path} (with overrides)"
    elif isinstance(config, Mapping):
        tables = {t: dict(v) if isinstance(v, Mapping) else v for t, v in config.items()}
        name = "<python dict>"
    else:
        raise TypeError(f"config must be None, a path or a dict, not {type(config).__name__}")
    for k, v in overrides.items():
        table, key = _split_key(k)
        tables.setdefault(table, {})[key] = v
    return to_toml(tables), name
