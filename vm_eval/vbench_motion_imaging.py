"""VBench's motion smoothness and imaging quality, computed as ``Vchitect/VBench`` computes them (family ``vbench``).

Followed from VBench's ``vbench/motion_smoothness.py`` (with ``vbench/third_party/amt``) and
``vbench/imaging_quality.py`` (with ``pyiqa``'s MUSIQ):

* motion smoothness: every frame of the video (VBench reads an mp4 with OpenCV, or a folder of images); the even
  frames 0, 2, 4, ... go to AMT-S (:mod:`vm_eval.amt`) as float RGB / 255, replicate-padded to a multiple of 16
  (split evenly, the extra pixel right / bottom); AMT-S predicts the middle frame (t = 0.5) of each consecutive
  pair, which is un-padded and turned back into uint8 by ``(x * 255).clip(0, 255)`` then truncation; each
  prediction k is compared with the real frame 2k + 1 (mean absolute difference over pixels and channels, as
  ``cv2.absdiff``); per video ``(255 - mean over the pairs) / 255``. A video needs at least 3 frames. VBench's
  resolution rule (:func:`amt_scale`) gives scale 1 for any video below 67 megapixels when it is called with a
  ``torch.device`` (as ``evaluate.py`` does), so AMT-S runs at full resolution.
* imaging quality: every frame (as VBench's ``load_video``), as a float tensor 0..255; preprocessing mode
  ``longer`` (VBench's default): when the longer side exceeds 512, both sides are scaled by 512 / longer and
  truncated to integers, torchvision ``Resize`` (bilinear, no antialias); then / 255. MUSIQ (SPAQ weights,
  :mod:`vm_eval.musiq`) scores each frame (0..100); per video the mean over frames. VBench's suite number is the mean
  of the per-video means / 100; our per-video value is already / 100 (the raw mean is kept in ``detail``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from .results import MetricResult

logger = logging.getLogger(__name__)

MOTION, IMAGING = "vbench_motion_smoothness", "vbench_imaging_quality"
IMAGING_LONGER_SIDE = 512
CORRELATION_CELLS_PER_BATCH = 2 ** 28  # correlation entries per AMT-S forward (1 GiB in float32) before batching stops
IMAGING_MODES = ("longer", "shorter", "shorter_centercrop", "None")


# ---------------------------------------------------------------------------------------------- motion
def amt_scale(h: int, w: int, vram_bytes: int | None = None) -> float:
    """VBench's AMT resolution scale. ``vram_bytes=None``: its CPU branch (anchor 8192^2 pixels), which is also what
    a ``torch.device('cuda')`` gets (VBench compares the device with the string ``'cuda'``); with the GPU's total
    memory: its CUDA branch (anchor 1024x512 pixels per 1500 MiB over a 2500 MiB reserve)."""
    if vram_bytes is None:
        anchor_res, anchor_mem, bias, vram = 8192 * 8192, 1, 0, 1
    else:
        anchor_res, anchor_mem, bias, vram = 1024 * 512, 1500 * 1024 ** 2, 2500 * 1024 ** 2, vram_bytes
    scale = anchor_res / (h * w) * np.sqrt((vram - bias) / anchor_mem)
    scale = min(scale, 1)
    return float(1 / np.floor(1 / np.sqrt(scale) * 16) * 16)


def pad_amounts(h: int, w: int, divisor: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) replicate padding up to a multiple of ``divisor`` (extra pixel right / bottom)."""
    ph = (((h // divisor) + 1) * divisor - h) % divisor
    pw = (((w // divisor) + 1) * divisor - w) % divisor
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def coarsest_correlation_side(h: int, w: int, scale: float, levels: int) -> int:
    """The shorter side of AMT's coarsest correlation level for an h x w video (padded to a multiple of 16, at
    ``scale``, 1/8 resolution, halved ``levels - 1`` times); below 2 its lookup divides by zero."""
    pad = pad_amounts(h, w, int(16 / scale))
    side = int(min((h + pad[2] + pad[3]) * scale, (w + pad[0] + pad[1]) * scale)) // 8
    for _ in range(levels - 1):
        side //= 2
    return side


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in 0..1 -> uint8 (B, H, W, 3) as VBench's ``tensor2img``: x * 255, clip, truncate."""
    return (x * 255.0).permute(0, 2, 3, 1).cpu().numpy().clip(0, 255).astype(np.uint8)


@torch.inference_mode()
def interpolate_middles(model, frames: np.ndarray, device: torch.device, pair_batch: int = 4,
                        scale: float = 1.0) -> np.ndarray:
    """AMT-S predictions of the frames between consecutive even frames: uint8 (ceil(F/2) - 1, H, W, 3)."""
    evens = torch.from_numpy(np.ascontiguousarray(frames[::2])).permute(0, 3, 1, 2).float() / 255.0
    h, w = evens.shape[-2:]
    pad = pad_amounts(h, w, int(16 / scale))
    # the all-pairs correlation volume grows with the 4th power of the side: fewer pairs per forward for large frames
    cells = ((h + pad[2] + pad[3]) * scale / 8) * ((w + pad[0] + pad[1]) * scale / 8)
    pair_batch = max(1, min(pair_batch, int(CORRELATION_CELLS_PER_BATCH // (cells * cells))))
    evens = F.pad(evens, pad, mode="replicate")
    embt = torch.full((1, 1, 1, 1), 0.5, device=device)
    out = []
    for i in range(0, evens.shape[0] - 1, pair_batch):
        j = min(i + pair_batch, evens.shape[0] - 1)
        pred = model(evens[i:j].to(device), evens[i + 1:j + 1].to(device), embt, scale_factor=scale).float()
        out.append(to_uint8(pred[..., pad[2]:pad[2] + h, pad[0]:pad[0] + w]))
    return np.concatenate(out)


def motion_smoothness_score(frames: np.ndarray, middles: np.ndarray) -> MetricResult:
    """VBench's per-video value from the real frames (F, H, W, 3) and the predicted middles of the even frames."""
    odd = frames[1::2]
    n = min(len(odd), len(middles))
    diffs = [float(np.mean(np.abs(odd[k].astype(np.int16) - middles[k].astype(np.int16)))) for k in range(n)]
    vfi = float(np.mean(diffs))
    return MetricResult.ok((255.0 - vfi) / 255.0, mean_abs_diff=vfi, n_pairs=n)


def motion_smoothness(model, frames: np.ndarray, device: torch.device, pair_batch: int = 4,
                      vram_bytes: int | None = None) -> MetricResult:
    if frames.shape[0] < 3:
        return MetricResult.error(f"motion smoothness needs at least 3 frames (two even frames to interpolate "
                                  f"between), got {frames.shape[0]}")
    h, w = frames.shape[1:3]
    scale = amt_scale(h, w, vram_bytes)
    small = coarsest_correlation_side(h, w, scale, model.cfg.corr_levels)
    if small < 2:
        return MetricResult.error(f"motion smoothness: {h}x{w} frames are too small for AMT-S (its coarsest "
                                  f"correlation level is {small} px; at least 2 needed, i.e. about 128 px a side; "
                                  f"VBench's own code returns NaN here)")
    res = motion_smoothness_score(frames, interpolate_middles(model, frames, device, pair_batch, scale))
    return MetricResult.ok(res.value, **res.detail, amt_scale=scale)


# --------------------------------------------------------------------------------------------- imaging
def imaging_input(frames: torch.Tensor, mode: str = "longer", limit: int = IMAGING_LONGER_SIDE) -> torch.Tensor:
    """VBench's imaging-quality ``transform`` of a float (F, 3, H, W) 0..255 tensor -> 0..1."""
    from torchvision.transforms import functional as TF

    if mode not in IMAGING_MODES:
        raise ValueError(f"unknown imaging quality preprocessing mode {mode!r}; expected one of {IMAGING_MODES}")
    h, w = frames.shape[-2:]
    side = max(h, w) if mode == "longer" else min(h, w)
    if mode != "None" and side > limit:
        s = limit / side
        frames = TF.resize(frames, [int(s * h), int(s * w)], antialias=False)
        if mode == "shorter_centercrop":
            frames = TF.center_crop(frames, limit)
    return frames / 255.0


@torch.inference_mode()
def musiq_frame_scores(model, frames: torch.Tensor, device: torch.device, batch: int = 8) -> torch.Tensor:
    """MUSIQ score (0..100 for SPAQ) of each preprocessed frame (F, 3, H, W) in 0..1."""
    out = [model(frames[i:i + batch].to(device)).float().cpu().reshape(-1) for i in range(0, frames.shape[0], batch)]
    return torch.cat(out)


def imaging_quality_score(frame_scores: np.ndarray | torch.Tensor) -> MetricResult:
    """Per-video value: the mean over frames of MUSIQ's score, / 100 (VBench's reported scale)."""
    s = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        return MetricResult.error("imaging quality needs at least 1 frame")
    mean = float(np.mean(s))
    return MetricResult.ok(mean / 100.0, musiq_mean=mean, n_frames=int(s.size))
