"""``--report-to``: experiment trackers through accelerate, and the per-step metrics they receive.

``auto`` (the default) is TensorBoard when it is importable, else none (said in one info line); ``tensorboard``
and ``wandb`` are refused with the install command when their package is missing. TensorBoard events go to
``RUN/logs/<tracker-project>/``; a resumed run opens its writer with ``purge_step`` = the checkpoint's step + 1,
so TensorBoard hides the points a killed run logged after its last checkpoint (exactly once, like
``losses.jsonl``). Logged per step: ``train/loss``, ``train/loss_video``, ``train/loss_reg`` (GIRL), ``train/lr``,
``train/grad_norm`` (before clipping), ``train/step_seconds``, ``train/samples_per_second`` (effective batch /
step time) and ``train/peak_memory_mb`` (GPU: the allocator's peak; CPU: the process's peak resident set);
validation adds ``validation/<metric>``.
"""

from __future__ import annotations

import importlib.util
import logging
import resource
import sys
from pathlib import Path

import torch

from vm_common.config import ConfigError

logger = logging.getLogger(__name__)

REPORT_TO = ("auto", "tensorboard", "wandb", "none")
LOGS_DIR = "logs"


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def resolve_report_to(choice: str) -> str | None:
    """The tracker accelerate gets (None: no tracker)."""
    if choice not in REPORT_TO:
        raise ConfigError(f"--report-to must be one of {REPORT_TO}, got {choice!r}")
    if choice == "auto":
        if _importable("tensorboard"):
            return "tensorboard"
        logger.info("--report-to auto: tensorboard is not installed, so no tracker (losses.jsonl is still "
                    "written; `pip install tensorboard` to get one)")
        return None
    if choice == "none":
        return None
    module = {"tensorboard": "tensorboard", "wandb": "wandb"}[choice]
    if not _importable(module):
        raise ConfigError(f"--report-to {choice}: the {module} package is not installed (`pip install {module}`), "
                         f"or pass --report-to none")
    return choice


def flat_config(config: dict, prefix: str = "") -> dict[str, int | float | str | bool]:
    """A nested config as the flat scalar mapping trackers accept (``sources.base_model``; None as 'none')."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, prefix=f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif value is None:
            out[name] = "none"
        else:
            out[name] = str(value)
    return out


def init_kwargs(tracker: str | None, run_dir: Path, start_step: int) -> dict:
    if tracker == "tensorboard" and start_step > 0:
        return {"tensorboard": {"purge_step": start_step + 1}}
    if tracker == "wandb":
        return {"wandb": {"dir": str(run_dir), "name": run_dir.name}}
    return {}


def peak_memory_mb(device: torch.device) -> float:
    """The peak memory so far: the CUDA allocator's peak on a GPU, the process's peak resident set otherwise."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def tracker_values(row: dict) -> dict[str, float]:
    """A ``losses.jsonl`` row as tracker scalars (``train/...``)."""
    return {f"train/{k}": float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
