"""What a data loop does with an exception raised while it processes one item (a clip, a video, an image).

Bad *input* (an unreadable file, a model that cannot digest an image) becomes a data row with the reason, and the
loop goes on. A *bug* in our code (``TypeError``, ``AttributeError`` ... see :data:`BUG_TYPES`) must not pass for
bad data:

- policy ``raise``: the bug propagates at once (the tests run so, via ``VM_ERROR_POLICY=raise``);
- policy ``record`` (the commands' default): the item is recorded as an ``internal_error`` row, and the command
  exits with code 1 at the end, saying how many internal errors it recorded.

Loops receive an :class:`ErrorPolicy` (default: :func:`ErrorPolicy.from_env`) and call :meth:`ErrorPolicy.check`
inside their ``except`` block before recording the exception.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)

ENV = "VM_ERROR_POLICY"
RAISE = "raise"
RECORD = "record"
MODES = (RAISE, RECORD)
INTERNAL_ERROR = "internal_error"  # the error kind / marker of rows recorded for a bug

# exceptions that mean our code is wrong, not the input
BUG_TYPES: tuple[type[BaseException], ...] = (TypeError, AttributeError, NameError, AssertionError, KeyError,
                                              IndexError, NotImplementedError, ImportError, SyntaxError,
                                              RecursionError)


def is_bug(exc: BaseException) -> bool:
    """True for an exception that signals a bug in our code rather than bad input."""
    return isinstance(exc, BUG_TYPES)


@dataclass(frozen=True)
class ErrorPolicy:
    mode: str = RECORD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"error policy must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def from_env(cls) -> "ErrorPolicy":
        """``$VM_ERROR_POLICY`` (``raise`` or ``record``), default ``record``."""
        mode = os.environ.get(ENV, RECORD).strip().lower() or RECORD
        if mode not in MODES:
            logger.warning("%s=%r is not one of %s; using %s", ENV, mode, MODES, RECORD)
            mode = RECORD
        return cls(mode)

    def check(self, exc: BaseException, where: str = "") -> bool:
        """Call in the ``except`` block of a data loop. Re-raises a bug under ``raise``; returns True when ``exc`` is
        a bug to be recorded as an internal error, False for bad input (recorded with its reason)."""
        if not is_bug(exc):
            return False
        if self.mode == RAISE:
            raise exc
        logger.error("internal error%s (a bug, recorded as %s): %s: %s", f" in {where}" if where else "",
                     INTERNAL_ERROR, type(exc).__name__, exc, exc_info=exc)
        return True


def resolve_policy(policy: ErrorPolicy | None) -> ErrorPolicy:
    return policy if policy is not None else ErrorPolicy.from_env()


def internal_errors_message(count: int, where: str) -> str:
    return (f"{count} internal error(s) (bugs, not bad input) were recorded as '{INTERNAL_ERROR}' in {where}; "
            f"the results are incomplete: please report them (VM_ERROR_POLICY=raise stops at the first one with "
            f"its traceback)")
