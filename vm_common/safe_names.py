"""Names taken from input files (ids, prompts, class words, method names) never become paths outside a folder.

:func:`safe_component` turns any text into one file-name component (no separators, no leading dot, never ``.`` or
``..``); :func:`is_safe_component` tells whether a text already is one; :func:`path_inside` joins components under
a root and refuses (:class:`UnsafeNameError`) any result that would leave it, the last line of defence wherever a
name from an input file becomes a path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UserError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
MAX_COMPONENT = 120


class UnsafeNameError(UserError, ValueError):
    """A name from an input file would name a file outside its folder (or is not a plain file name)."""


def safe_component(text: str, fallback: str = "item") -> str:
    """A file-name component made of ``A-Za-z0-9._-``, not starting with a dot (so never ``.``/``..``/hidden)."""
    out = _UNSAFE.sub("_", str(text)).lstrip("._").rstrip("_")
    return out[:MAX_COMPONENT] or fallback


def is_safe_component(text: str) -> bool:
    """True when ``text`` is usable as a file name as it is: ``A-Za-z0-9._-``, no leading dot, not too long."""
    return isinstance(text, str) and len(text) <= MAX_COMPONENT and bool(_SAFE.match(text))


def check_component(text: str, what: str) -> str:
    """``text`` itself when it is a safe file-name component, else :class:`UnsafeNameError` naming ``what``."""
    if not is_safe_component(text):
        raise UnsafeNameError(f"{what} {text!r} cannot name a file: use letters, digits, '.', '_' and '-' only "
                              f"(no path separators, not starting with '.', at most {MAX_COMPONENT} characters)")
    return text


def path_inside(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """``root / parts...``, refused with :class:`UnsafeNameError` when it resolves outside ``root``."""
    root = Path(root)
    path = root.joinpath(*parts)
    base = os.path.normpath(os.path.abspath(root))  # lexical: a symlinked sub-folder of root stays allowed
    target = os.path.normpath(os.path.abspath(path))
    if os.path.commonpath([base, target]) != base or target == base:
        raise UnsafeNameError(f"{Path(*parts)} would be written outside {root}; refused")
    return path
