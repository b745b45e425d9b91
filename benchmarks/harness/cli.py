"""The command-line boilerplate of a scenario: its parser (description and examples from the module docstring,
``--out``, device options) and logging set-up."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmarks.harness.device import DTYPES, default_device

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def scenario_parser(doc: str, *, out: Path | None = RESULTS_DIR, out_help: str = "output folder of the results",
                    summary_only: bool = False) -> argparse.ArgumentParser:
    """A parser whose help shows ``doc`` (its first paragraph only with ``summary_only``), with ``--out`` defaulting
    to ``out`` (no ``--out`` when ``out`` is None)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0] if summary_only else doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if out is not None:
        p.add_argument("--out", type=Path, default=out, help=f"{out_help} (default: %(default)s)")
    return p


def add_device_arguments(p: argparse.ArgumentParser, *, dtype_help: str = "default float32 on CPU, float16 on "
                         "CUDA") -> None:
    """``--device`` (default: cuda when available), ``--threads`` (torch threads) and ``--dtype``."""
    p.add_argument("--device", default=default_device())
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=None, help=dtype_help)


def default_dtype(device: str, dtype: str | None) -> str:
    """``dtype`` when given, else float16 on CUDA and float32 on CPU."""
    return dtype or ("float16" if device.startswith("cuda") else "float32")


def setup_logging(quiet: tuple[str, ...] = ("diffusers", "torch.distributed")) -> None:
    """INFO logging for a scenario run (``vm_common.logging_setup``), with ``quiet`` loggers at ERROR only."""
    from vm_common.logging_setup import setup_logging as _setup

    _setup()
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "diffusers" in quiet:
        try:
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.set_verbosity_error()
        except ImportError:
            pass
