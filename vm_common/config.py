"""Configuration as dataclasses: defaults < preset < YAML file < command-line flags, resolved in one place.

A command declares its config as a dataclass. Fields whose type is itself a dataclass (``sources: ModelSources``,
``protocol: GenerationProtocol``) are nested: their fields become flags of their own (one argument group each) and a
mapping of the same name in the YAML file. :func:`add_dataclass_arguments` turns the fields into argparse options
(help from ``field(metadata={"help": ...})``, the flag name from ``metadata["flag"]`` when it differs from the field
name) and :func:`build_config` merges the layers:

    dataclass defaults < ``presets[preset]`` < YAML (``--config``) < flags < explicit overrides

The preset itself is read with the same precedence (flag, else YAML, else the dataclass default), so
``preset: tiny`` in a YAML file selects the tiny defaults exactly as ``--preset tiny`` does. Booleans are
``--flag/--no-flag`` (never ``type=bool``). Only ``yaml.safe_load`` reads YAML: a config file is data, never code.

Every value is validated where it is parsed, flags and YAML alike, before the config exists (so before anything is
written): its type (a string where a number is wanted is an error, not a crash later), ``choices``, and the bounds
a field declares in its metadata:

- ``"min"`` / ``"max"``: inclusive bounds; ``"gt"``: a strict lower bound;
- floats must be finite unless ``"finite": False``; integers must fit in 64 bits.

A dataclass's own ``__post_init__`` checks run next; their ``ValueError`` becomes the same :class:`ConfigError`.
Its message names the option as a flag and as a YAML key (``--steps (YAML generation.steps): must be >= 1, got
0``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from .errors import UserError

T = TypeVar("T")

Presets = Mapping[str, Mapping[str, Any]]


class ConfigError(UserError, ValueError):
    """A config file or value cannot be used; the message names the file or key."""


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: _unwrap_optional(hints[f.name])[0] for f in dataclasses.fields(cls)}


def _optional_fields(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if _unwrap_optional(hints[f.name])[1]}


def _is_nested(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _flag(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("flag", f.name).replace("_", "-")


def _lookup(tree: Mapping[str, Any] | None, path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57] + "...")
    return str(value)


def add_dataclass_arguments(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = (),
                            presets: Presets | None = None, _path: tuple[str, ...] = (),
                            _defaults: Any = None) -> None:
    """Add one option per field (nested dataclass fields recursively, each in its own argument group).

    Argparse defaults stay ``None`` so that YAML values are not masked; the help shows the default once and, for
    each preset that changes it, the preset's value.
    """
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        tp = types_[f.name]
        path = _path + (f.name,)
        default = getattr(_defaults, f.name) if _defaults is not None else _field_default(f)
        if _is_nested(tp):
            title = f.metadata.get("group", f.name.replace("_", " "))
            group = parser.add_argument_group(title, f.metadata.get("help")) if hasattr(parser, "add_argument_group") \
                else parser
            add_dataclass_arguments(group, tp, presets=presets, _path=path, _defaults=default)
            continue
        help_text = f.metadata.get("help", "")
        notes = [] if "default:" in help_text else [f"default: {_show(default)}"]
        for name, values in (presets or {}).items():
            found, value = _lookup(values, path)
            if found and value != default:
                notes.append(f"{name} preset: {_show(value)}")
        help_text = f"{help_text} ({'; '.join(notes)})".strip() if notes else help_text
        kwargs: dict[str, Any] = {"dest": ".".join(path), "default": None, "help": help_text.replace("%", "%%")}
        if tp is not bool and "choices" not in f.metadata:
            kwargs["metavar"] = f.metadata.get("flag", f.name).upper()
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        origin = typing.get_origin(tp)
        if tp is bool:
            parser.add_argument(_flag(f), action=argparse.BooleanOptionalAction, **kwargs)
        elif origin in (list, tuple):
            (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis} or {str}
            parser.add_argument(_flag(f), nargs="+", type=item, **kwargs)
        elif tp in (int, float, str, Path):
            parser.add_argument(_flag(f), type=tp, **kwargs)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported config field type {tp!r}")


def _check_keys(cls: type, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(f"{where}: unknown config keys {[prefix + k for k in unknown]}; "
                          f"known: {sorted(prefix + k for k in types_)}")
    for key, value in data.items():
        if _is_nested(types_[key]):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: '{prefix}{key}' must be a mapping of "
                                  f"{sorted(_field_types(types_[key]))}, got {type(value).__name__}")
            _check_keys(types_[key], value, where, prefix=f"{prefix}{key}.")


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return into


def _flags_tree(cls: type, args: argparse.Namespace, path: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        if _is_nested(types_[f.name]):
            sub = _flags_tree(types_[f.name], args, path + (f.name,))
            if sub:
                out[f.name] = sub
            continue
        value = getattr(args, ".".join(path + (f.name,)), None)
        if value is not None:
            out[f.name] = value
    return out


def _coerce(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _construct(cls: type[T], values: Mapping[str, Any], default: Any = None) -> T:
    types_ = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = types_[f.name]
        if _is_nested(tp):
            nested_default = getattr(default, f.name) if default is not None else _field_default(f)
            layer = values.get(f.name, {})
            if dataclasses.is_dataclass(layer):
                kwargs[f.name] = layer
                continue
            kwargs[f.name] = _construct(tp, {**_shallow(nested_default), **layer}, nested_default)
        elif f.name in values:
            kwargs[f.name] = _coerce(tp, values[f.name])
    return cls(**kwargs)  # type: ignore[call-arg]


def _shallow(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)} if obj is not None else {}


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """A YAML mapping (``safe_load``: data only). Errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def build_config(cls: type[T], args: argparse.Namespace | None = None, yaml_path: str | Path | None = None, *,
                 presets: Presets | None = None, base: Mapping[str, Any] | None = None, **overrides: Any) -> T:
    """defaults < base < ``presets[preset]`` < YAML < flags < overrides; nested dataclasses merge key by key.

    ``preset`` is read from overrides, else the flags, else the YAML file, else the dataclass default. Unknown YAML
    keys and unknown presets are a :class:`ConfigError` naming the key and the file.
    """
    yaml_values = read_yaml_config(yaml_path) if yaml_path is not None else {}
    _check_keys(cls, yaml_values, str(yaml_path))
    flag_values = _flags_tree(cls, args) if args is not None else {}
    explicit = {k: v for k, v in overrides.items() if v is not None}
    values: dict[str, Any] = _merge({}, base or {})
    if presets is not None:
        default_preset = next((_field_default(f) for f in dataclasses.fields(cls) if f.name == "preset"), None)
        preset = explicit.get("preset", flag_values.get("preset", yaml_values.get("preset", default_preset)))
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(presets)}")
        _merge(values, presets[preset])
        values["preset"] = preset
    for layer in (yaml_values, flag_values, explicit):
        _merge(values, layer)
    values = validate_values(cls, values)
    try:
        return _construct(cls, values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ checks
        raise ConfigError(f"invalid configuration: {exc}") from None


# ------------------------------------------------------------------------------------------------- validation
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _option_name(f: dataclasses.Field, path: tuple[str, ...]) -> str:
    key = ".".join(path)
    if f.metadata.get("cli") is False:
        return f"{key} (YAML)"
    return f"{_flag(f)} (YAML {key})"


def _scalar(tp: Any, value: Any, name: str) -> Any:
    """``value`` checked (and converted where unambiguous: ``"1e-5"`` for a float) against the type ``tp``."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: must be an integer, got {value!r}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            number = int(value.strip())
        else:
            raise ConfigError(f"{name}: must be an integer, got {type(value).__name__} {value!r}")
        if not INT64_MIN <= number <= INT64_MAX:
            raise ConfigError(f"{name}: {number} does not fit in 64 bits")
        return number
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{name}: must be a number, got {type(value).__name__} {value!r}")
    if tp in (str, Path):
        if isinstance(value, (str, Path)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and tp is str:
            return str(value)
        raise ConfigError(f"{name}: must be {'a path' if tp is Path else 'text'}, got {type(value).__name__} "
                          f"{value!r}")
    return value


def _check_bounds(f: dataclasses.Field, value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    meta = f.metadata
    if isinstance(value, float) and meta.get("finite", True) and not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{name}: must be >= {meta['min']}, got {value}")
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(f"{name}: must be > {meta['gt']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{name}: must be <= {meta['max']}, got {value}")


def validate_values(cls: type, values: Mapping[str, Any], _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``values`` (a merged tree of defaults, preset, YAML and flags) checked against ``cls``'s fields: types,
    ``choices`` and the bounds in the fields' metadata (see the module docstring). Returns the converted values;
    :class:`ConfigError` names the first offending option."""
    types_, optional = _field_types(cls), _optional_fields(cls)
    out: dict[str, Any] = dict(values)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        path, value, tp = _path + (f.name,), values[f.name], types_[f.name]
        name = _option_name(f, path)
        if _is_nested(tp):
            if isinstance(value, Mapping):
                out[f.name] = validate_values(tp, value, path)
            continue
        if value is None:
            if f.name not in optional:
                raise ConfigError(f"{name}: a value is required, got null")
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis} or {str}
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            checked = [_scalar(item, v, name) for v in items]
            for v in checked:
                _check_bounds(f, v, name)
            if "choices" in f.metadata:
                bad = [v for v in checked if v not in f.metadata["choices"]]
                if bad:
                    raise ConfigError(f"{name}: {bad[0]!r} is not one of {list(f.metadata['choices'])}")
            out[f.name] = checked
            continue
        checked = _scalar(tp, value, name)
        _check_bounds(f, checked, name)
        if "choices" in f.metadata and checked not in f.metadata["choices"]:
            raise ConfigError(f"{name}: {checked!r} is not one of {list(f.metadata['choices'])}")
        out[f.name] = checked
    return out


def config_to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config (nested dataclasses as nested dicts, paths as strings)."""
    def convert(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (tuple, list)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    return {k: convert(v) for k, v in dataclasses.asdict(cfg).items()}
