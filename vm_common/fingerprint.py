"""Fingerprints that prove a result on disk came from the same inputs and settings as the run now asking for it.

A fingerprint is a mapping ``part -> digest`` (say ``protocol``, ``sources``, ``reference``, ``prompt``,
``seed``), stored beside the result (a sidecar, a row). Comparing two fingerprints part by part names what
changed, so a command can refuse with a message such as "protocol (steps: 30 -> 4) changed" instead of silently
keeping a stale result or silently replacing it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

DIGEST_CHARS = 16


def digest(value: Any) -> str:
    """A short stable digest of JSON-like data (dict keys sorted, paths and other objects as strings)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def array_digest(array) -> str:
    """Digest of an array's bytes, shape and dtype (say, the reference pixels a video was made from)."""
    h = hashlib.sha256(f"{array.shape}|{array.dtype}|".encode("utf-8"))
    h.update(array.tobytes())
    return h.hexdigest()[:DIGEST_CHARS]


def file_digest(path: str | Path) -> str:
    """Digest of a file's bytes (``missing`` when it does not exist)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        return "missing"
    return h.hexdigest()[:DIGEST_CHARS]


def fingerprint(parts: Mapping[str, Any]) -> dict[str, str]:
    """``part -> digest`` of each part."""
    return {name: digest(value) for name, value in sorted(parts.items())}


def changed_parts(stored: Mapping[str, str] | None, current: Mapping[str, str]) -> list[str]:
    """The parts whose digests differ (every part when nothing was stored)."""
    if not isinstance(stored, Mapping):
        return sorted(current)
    return sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))


def diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings, as ``key: old -> new``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += diff_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if _normal(old) == _normal(new):
        return []
    return [f"{prefix.rstrip('.')}: {_short(old)} -> {_short(new)}"]


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any], *, ignore: tuple[str, ...] = (),
                   paths: tuple[str, ...] = ()) -> list[str]:
    """``key: old -> new`` for every config key (dotted for nested mappings) that differs between a recorded config
    (say ``run.json``'s) and the current one, leaving out the ``ignore`` keys (options that change speed, not
    results). ``paths``: top-level keys holding paths, compared absolute (relative ones from the working folder)."""
    def prepared(config: Mapping[str, Any]) -> dict:
        out = json.loads(json.dumps(config, default=str))
        for key in ignore:
            node, _, rest = key.partition(".")
            if rest:
                if isinstance(out.get(node), dict):
                    out[node].pop(rest, None)
            else:
                out.pop(node, None)
        for key in paths:
            if out.get(key):
                out[key] = os.path.abspath(os.path.expanduser(str(out[key])))
        return out

    return diff_keys(prepared(stored), prepared(current))


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
