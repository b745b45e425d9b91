"""Running another project's reference code beside ours (the parity scripts): stand-in modules for the imports its
code paths never call, and the commit of the checkout it came from."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Callable


def unavailable(what: str) -> Callable[..., Any]:
    """A callable that fails loudly: the stand-in for an attribute of a package that is not installed."""
    def call(*_a, **_k):
        raise RuntimeError(f"{what} is a placeholder in this parity script (the package is not installed)")
    return call


def placeholder_modules(specs: dict[str, dict[str, Any] | tuple[str, ...]]) -> list[str]:
    """Install an empty module for each name of ``specs`` that cannot be imported: its attributes are the given
    objects, or (for a tuple of names) :func:`unavailable` stand-ins. Returns the names added (to remove later)."""
    added = []
    for name, attrs in specs.items():
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        mod = types.ModuleType(name)
        values = attrs if isinstance(attrs, dict) else {a: unavailable(f"{name}.{a}") for a in attrs}
        for attr, value in values.items():
            setattr(mod, attr, value)
        sys.modules[name] = mod
        added.append(name)
    return added


def checkout_commit(path: Path) -> str:
    """The HEAD commit of a git checkout, or ``unknown``."""
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
