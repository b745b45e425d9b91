"""Tensors to a safetensors file with JSON metadata, written atomically (checkpoint weights, EMA, LoRA)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vm_common.io_utils import atomic_output


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``tensors`` (CPU, contiguous) with each metadata value JSON-encoded; never a half-written file."""
    from safetensors.torch import save_file

    if not tensors:
        raise ValueError(f"{path}: no tensors to save")
    with atomic_output(path) as tmp:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={k: json.dumps(v) for k, v in (metadata or {}).items()})
    return Path(path)
