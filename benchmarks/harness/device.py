"""Device naming and device-level helpers: the tag in result file names, synchronisation, dtype names."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a name in :data:`DTYPES` (names travel in JSON job specs)."""
    return DTYPES[name]


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op on CPU), so that a timer reads finished work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (e.g. ``Intel(R) Xeon(R) Processor``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def slug(text: str) -> str:
    """Lower case, ``(R)`` / ``(TM)`` dropped, every other run of non-alphanumerics one dash."""
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", text.lower())).strip("-")


def device_tag(device: str, threads: int) -> str:
    """The device part of a result file name: ``cuda-<gpu>`` or ``cpu-<cpu model>-<threads>t``."""
    if device.startswith("cuda"):
        return "cuda-" + slug(torch.cuda.get_device_name(device))
    return f"cpu-{slug(cpu_model())}-{threads}t"
