"""Configuration in three layers: dataclass schema → YAML recipe → CLI overrides.

Every component has a ``@dataclass`` config whose fields carry help text in
``field(metadata={"help": ...})``. :func:`load_config` builds one from an
optional YAML file and a dict of overrides (unknown keys are errors, values
are type-checked against the field's default type), and
:func:`write_resolved` writes the resolved config next to an output.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from qprobe.errors import ConfigError

C = TypeVar("C")


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"config field {name!r}: {value!r} does not fit {annotation}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config field {name!r}: expected true/false, got {value!r}")
    if annotation in (int, float, str):
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"config field {name!r}: expected an integer, got {value!r}")
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config field {name!r}: expected {annotation.__name__}, got {value!r}") from None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field {name!r}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [v if inner is Any else _coerce(name, v, inner) for v in value]
        return items if origin is list else tuple(items)
    return value


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys raise with the valid ones listed."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{cls.__name__}: unknown option(s) {unknown}; valid options: {sorted(fields)}"
        )
    kwargs = {}
    for key, value in data.items():
        ann = hints.get(key, Any)
        if dataclasses.is_dataclass(ann) and isinstance(value, dict):
            kwargs[key] = from_dict(ann, value)  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(key, value, ann)
    return cls(**kwargs)


def load_config(cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data.update(loaded or {})
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return from_dict(cls, data)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def write_resolved(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from qprobe._fs import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=True))


def help_of(cls: type, name: str) -> str:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


SECRET_WORDS = ("key", "token", "secret", "password")


def plain_settings(obj: Any) -> dict[str, Any]:
    """An object's settings as plain data, for result-cache identities.

    Its dataclass ``config`` when it has one, else its public attributes of
    plain types (numbers, strings, paths, ``None``). Attributes whose name
    suggests a secret (API keys, tokens) are never included.
    """
    cfg = getattr(obj, "config", None)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        items = dataclasses.asdict(cfg).items()
    else:
        items = ((k, v) for k, v in vars(obj).items() if not k.startswith("_"))
    out = {}
    for k, v in sorted(items):
        if any(w in k.lower() for w in SECRET_WORDS):
            continue
        if isinstance(v, Path):
            v = str(v)
        if v is None or isinstance(v, (bool, int, float, str, list, tuple, dict)):
            out[k] = v
    return out

