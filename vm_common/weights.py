"""Resolve pretrained components named by local path or Hugging Face id.

Every pretrained thing the toolkit uses is described by a :class:`WeightSpec` in a registry (the packages register
theirs on import of their ``registry`` module). :func:`resolve_source` turns a user-given source into a local
path or raises :class:`MissingWeightsError`, which says what was asked for, where we looked and how to get it.
``HF_HUB_OFFLINE`` is honoured: when set we never try the network.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import UserError

logger = logging.getLogger(__name__)

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class MissingWeightsError(UserError, FileNotFoundError):
    """A pretrained component could not be found locally (and could not, or may not, be downloaded)."""

    def __init__(self, what: str, source: str, looked: Iterable[str], how: str):
        self.what, self.source, self.looked, self.how = what, source, list(looked), how
        lines = [f"{what}: '{source}' is not available.", "Looked in:"]
        lines += [f"  - {p}" for p in self.looked] or ["  - (nowhere)"]
        lines.append(f"How to get it: {how}")
        super().__init__("\n".join(lines))


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


def looks_like_path(source: str) -> bool:
    """A source is a path when it exists (relative to the working directory or after ``~``: a path that exists is
    a path, even one spelled like ``owner/name``), is absolute/relative-explicit, or is not of the form
    ``owner/name``; anything else is a Hugging Face id."""
    if os.path.exists(os.path.expanduser(source)):
        return True
    return source.startswith(("/", "./", "../", "~")) or not _HF_ID.match(source)


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_source(
    source: str | os.PathLike,
    *,
    what: str,
    filename: str | None = None,
    subfolder: str | None = None,
    how: str | None = None,
) -> Path:
    """Return a local path for ``source`` (a directory, or a file when ``filename`` is given).

    ``source`` is a local path or a Hugging Face repo id. A string that looks like a path but does not exist is an
    error, never a silent fall-back to the hub.
    """
    source = str(source)
    expanded = os.path.expanduser(source)
    if looks_like_path(source):
        path = Path(expanded)
        if filename is not None and path.is_dir():
            path = path / (f"{subfolder}/{filename}" if subfolder else filename)
        elif subfolder is not None and path.is_dir():
            path = path / subfolder
        if path.exists():
            return path
        raise MissingWeightsError(
            what, source, [str(path.resolve())], how or "check the path, or pass a Hugging Face id instead"
        )

    offline = hf_offline()
    from huggingface_hub import hf_hub_download, snapshot_download

    looked = [f"Hugging Face cache {_hf_cache_dir()} (repo {source})"]
    if not offline:
        looked.append(f"https://huggingface.co/{source}")
    try:
        if filename is not None:
            local = hf_hub_download(source, filename, subfolder=subfolder, local_files_only=offline)
            return Path(local)
        patterns = [f"{subfolder}/*"] if subfolder else None
        local = snapshot_download(source, allow_patterns=patterns, local_files_only=offline)
        path = Path(local) / subfolder if subfolder else Path(local)
        if not path.exists():
            raise FileNotFoundError(path)
        return path
    except MissingWeightsError:
        raise
    except Exception as exc:  # network errors, missing cache entries, gated repos ...
        logger.debug("resolving %s failed: %r", source, exc)
        wanted = f" {subfolder + '/' if subfolder else ''}{filename}" if filename else ""
        hint = how or (
            f"run `hf download {source}{wanted}` on a machine with network access and copy the Hugging Face cache "
            f"(~/.cache/huggingface), or pass a local path"
        )
        if offline:
            hint += " (HF_HUB_OFFLINE is set, so the hub was not contacted)"
        target = f"{subfolder}/{filename}" if subfolder and filename else (filename or subfolder or "")
        if target:
            looked = [f"{entry} [{target}]" for entry in looked]
        raise MissingWeightsError(what, source, looked, hint) from exc


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained component the toolkit can use."""

    key: str
    description: str
    default: str
    used_by: tuple[str, ...]
    filename: str | None = None
    subfolder: str | None = None
    how: str | None = None
    # A custom locator for components that do not live in the HF cache (insightface packs, torch hub files).
    locate: Callable[[str], Path] | None = field(default=None, compare=False)

    def resolve(self, source: str | None = None) -> Path:
        source = source or self.default
        if self.locate is not None:
            return self.locate(source)
        return resolve_source(source, what=self.description, filename=self.filename, subfolder=self.subfolder, how=self.how)

    def is_present(self, source: str | None = None) -> tuple[bool, str]:
        """(present, where-or-why) without touching the network."""
        prev = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            return True, str(self.resolve(source))
        except MissingWeightsError as exc:
            return False, "; ".join(exc.looked)
        finally:
            if prev is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = prev


REGISTRY: dict[str, WeightSpec] = {}


def register(spec: WeightSpec) -> WeightSpec:
    REGISTRY[spec.key] = spec
    return spec


def get_spec(key: str) -> WeightSpec:
    _load_registries()
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown weight '{key}'; known: {', '.join(sorted(REGISTRY))}") from None


def _load_registries() -> None:
    import importlib

    for mod in ("vm_model.registry", "vm_data.registry", "vm_eval.registry"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def all_specs() -> list[WeightSpec]:
    _load_registries()
    return [REGISTRY[k] for k in sorted(REGISTRY)]
