"""Configuration as dataclasses: defaults < YAML file < command-line flags.

A command declares its config as a dataclass; :func:`add_dataclass_arguments` turns its fields into argparse
options (help text from ``field(metadata={"help": ...})``) and :func:`build_config` merges the three layers.
Booleans are ``--flag/--no-flag`` (never ``type=bool``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add one option per dataclass field. Defaults are left as ``None`` so that YAML values are not masked."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        help_text = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        origin = typing.get_origin(tp)
        if tp is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        elif origin in (list, tuple):
            (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis} or {str}
            parser.add_argument(_flag(f.name), nargs="+", type=item, **kwargs)
        elif tp in (int, float, str):
            parser.add_argument(_flag(f.name), type=tp, **kwargs)
        elif tp is Path:
            parser.add_argument(_flag(f.name), type=Path, **kwargs)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported config field type {tp!r}")


def _coerce(cls: type, name: str, value: Any) -> Any:
    hints = typing.get_type_hints(cls)
    tp, optional = _unwrap_optional(hints[name])
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def build_config(cls: type[T], args: argparse.Namespace | None = None, yaml_path: str | Path | None = None,
                 base: dict[str, Any] | None = None, **overrides: Any) -> T:
    """defaults < base (e.g. a preset's defaults) < YAML < flags < overrides.

    Unknown YAML keys are an error naming the key and the file.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = dict(base or {})
    if yaml_path is not None:
        data = yaml.safe_load(Path(yaml_path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{yaml_path}: expected a mapping of config keys, got {type(data).__name__}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{yaml_path}: unknown config keys {unknown}; known: {sorted(names)}")
        values.update(data)
    if args is not None:
        for name in names:
            v = getattr(args, name, None)
            if v is not None:
                values[name] = v
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})  # type: ignore[call-arg]


def config_to_dict(cfg: Any) -> dict:
    def convert(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [convert(x) for x in v]
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    return {k: convert(v) for k, v in dataclasses.asdict(cfg).items()}
