"""Shared image helpers for the encoders: frames as PIL images, normalisation, batching."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image


def to_pil_list(frames: np.ndarray | Sequence) -> list[Image.Image]:
    """uint8 (F, H, W, 3) frames (or a list of PIL images) -> list of RGB PIL images."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames of shape (F, H, W, 3), got {frames.dtype} {frames.shape}")
        return [Image.fromarray(f) for f in frames]
    return [f if isinstance(f, Image.Image) else Image.fromarray(np.asarray(f)) for f in frames]


def pil_to_normalized(images: Iterable[Image.Image], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB PIL images of one size -> float tensor (N, 3, H, W), scaled to [0, 1] then normalised."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images]) / 255.0
    t = torch.from_numpy(arr).permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (t - m) / s


def chunks(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, max(1, size)):
        yield slice(start, min(n, start + max(1, size)))
