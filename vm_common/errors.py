"""One exit-code convention for every ``vm`` command.

- ``0``: done;
- ``1``: an internal error (a bug, or rows recorded as internal errors): Python's traceback is left to show, or the
  command says how many internal errors it recorded;
- ``2``: a user error (a bad flag, value, config key, input file, a busy or stale output folder, missing weights):
  one message naming what is wrong, no traceback.

A user error is any exception deriving from :class:`UserError` (the toolkit's error classes for bad input derive
from it as well as from their usual base, say ``ValueError``, so existing ``except ValueError`` keeps working).
Every command runs its body through :func:`run_main`, which turns a :class:`UserError` into the message + exit 2
and lets everything else propagate.
"""

from __future__ import annotations

import logging
from typing import Callable

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2


class UserError(Exception):
    """Bad input from the user: reported as one message and exit code 2, never with a traceback."""


class InputFileError(UserError, ValueError):
    """An input file (manifest, table, benchmark definition) cannot be used; the message names file and line."""


class StaleOutputError(UserError, ValueError):
    """The output folder holds results made from other inputs or settings; the message names what changed and
    that ``--overwrite`` replaces them."""


def run_main(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command's body under the convention: :class:`UserError` -> one message and :data:`EXIT_USER`."""
    try:
        return int(body() or 0)
    except UserError as exc:
        logger.error("%s: %s", prog, exc)
        return EXIT_USER
