"""Logging configuration. Only entry points call :func:`setup_logging`; library modules just log."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | int | None = None) -> None:
    """Configure the root logger once for a command-line run.

    ``level`` falls back to the ``VM_LOG_LEVEL`` environment variable, then INFO.
    """
    if level is None:
        level = os.environ.get("VM_LOG_LEVEL", "INFO")
    if isinstance(level, str):
        level = level.upper()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=_FORMAT)
    root.setLevel(level)
    # Third-party libraries are chatty at INFO; keep them at WARNING unless we debug.
    if logging.getLogger().level > logging.DEBUG:
        for noisy in ("diffusers", "transformers", "httpx", "urllib3", "PIL", "matplotlib", "timm"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
