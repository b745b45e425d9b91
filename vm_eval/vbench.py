"""VBench's custom-input dimensions, computed as ``Vchitect/VBench`` computes them (family ``vbench``).

Followed from VBench's source (``vbench/subject_consistency.py``, ``vbench/background_consistency.py``,
``vbench/aesthetic_quality.py``, ``vbench/utils.py``), custom-video mode (``read_frame=False``):

* frames: every frame of the video, as VBench's ``load_video`` reads a GIF (each frame converted to RGB); no
  subsampling. ``load_video`` hands them on as ``torch.Tensor(frames)``: a float32 tensor (T, C, H, W) of values
  0..255, so the resizes below work in float (no rounding to uint8, no clamping after bicubic).
* subject consistency: DINO ViT-B/16 (``facebookresearch/dino`` ``dino_vitb16``). Preprocessing ``dino_transform``:
  torchvision ``Resize(224)`` of that tensor (shorter side to 224, bilinear, ``antialias=False``), then /255
  and ImageNet mean/std; NO centre crop, so a non-square frame keeps its aspect and the
  ViT interpolates its position embedding the way DINO's own ``interpolate_pos_encoding`` does
  (:func:`dino_position_embedding`). Feature: the CLS token after the final norm, L2-normalised.
* background consistency: CLIP ViT-B/32 image features. Preprocessing ``clip_transform``: ``Resize(224)`` bicubic
  with ``antialias=False`` on the float tensor, ``CenterCrop(224)``, /255, CLIP mean/std; L2-normalised.
* both consistencies: for every frame i >= 1, ``(max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2``; the
  per-video value is the mean over those F-1 frames (:func:`consistency_score`).
* aesthetic quality: the LAION aesthetic linear predictor (``sa_0_4_vit_l_14_linear.pth``, ``Linear(768, 1)``) on
  L2-normalised CLIP ViT-L/14 image features (``clip_transform`` as above, batches of 32 frames), divided by 10;
  the per-video value is the mean over frames.
* motion smoothness (AMT-S) and imaging quality (MUSIQ): :mod:`vm_eval.vbench_motion_imaging`; scored here too.

VBench's suite-level number is ``sum of all pair similarities / number of pairs`` (consistencies, one process) or
the mean of per-video values (aesthetic, and the consistencies under several processes); each row's ``detail``
keeps ``pair_sum`` / ``n_pairs`` so the frame-weighted number can be recomputed. Our tables aggregate per video ->
per subject -> over subjects, which equals VBench's when every video has the same frame count and every subject
the same number of videos.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from .clip import CLIP_MEAN, CLIP_STD
from .dino import IMAGENET_MEAN, IMAGENET_STD
from .results import MetricResult
from .vbench_motion_imaging import (IMAGING, MOTION, imaging_input, imaging_quality_score, motion_smoothness,
                                    musiq_frame_scores)

logger = logging.getLogger(__name__)

VBENCH_SIZE = 224
AESTHETIC_BATCH = 32  # frames per CLIP ViT-L/14 forward, as VBench's aesthetic_quality
SUBJECT, BACKGROUND, AESTHETIC = "vbench_subject_consistency", "vbench_background_consistency", "vbench_aesthetic"


# ------------------------------------------------------------------------------------------------ preprocessing
def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float32 tensor (F, 3, H, W) of values 0..255, as VBench's ``load_video`` returns."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    return torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x.float() / 255.0 - m) / s


def dino_input(frames: torch.Tensor, size: int = VBENCH_SIZE) -> torch.Tensor:
    """VBench's ``dino_transform``: shorter side to ``size`` (bilinear, no antialias), /255, ImageNet norm."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    resized = TF.resize(frames, size, interpolation=InterpolationMode.BILINEAR, antialias=False)
    return _normalise(resized, IMAGENET_MEAN, IMAGENET_STD)


def clip_input(frames: torch.Tensor, size: int = VBENCH_SIZE) -> torch.Tensor:
    """VBench's ``clip_transform``: shorter side to ``size`` (bicubic, no antialias), centre crop, /255, CLIP
    norm."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    resized = TF.resize(frames, size, interpolation=InterpolationMode.BICUBIC, antialias=False)
    return _normalise(TF.center_crop(resized, size), CLIP_MEAN, CLIP_STD)


# ------------------------------------------------------------------------------------------------- DINO forward
def dino_position_embedding(pos_embed: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """The position embedding DINO's ViT adds for an input of ``height`` x ``width`` pixels.

    DINO keeps the stored table when the patch count equals the table's and the input is square (in pixels);
    otherwise it resizes the patch grid bicubically with a scale factor of ``(grid + 0.1) / sqrt(N)`` per axis
    (the scale, not the target size, drives the sampling, which matters for the result)."""
    n = pos_embed.shape[1] - 1
    gh, gw = height // patch, width // patch
    if gh * gw == n and height == width:
        return pos_embed
    side, dim = int(math.sqrt(n)), pos_embed.shape[-1]
    grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, scale_factor=((gh + 0.1) / math.sqrt(n), (gw + 0.1) / math.sqrt(n)),
                                           mode="bicubic")
    if grid.shape[-2:] != (gh, gw):
        raise ValueError(f"position grid {tuple(grid.shape[-2:])} does not match the patch grid {(gh, gw)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
    return torch.cat((pos_embed[:, :1], grid), dim=1)


def dino_cls_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CLS token after the final norm of a timm DINO ViT for any input size, with DINO's position interpolation."""
    _, _, h, w = x.shape
    pe = model.patch_embed
    patch = pe.patch_size[0] if isinstance(pe.patch_size, (tuple, list)) else int(pe.patch_size)
    tokens = pe.norm(pe.proj(x).flatten(2).transpose(1, 2))
    tokens = torch.cat((model.cls_token.expand(x.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
    tokens = model.pos_drop(tokens + dino_position_embedding(model.pos_embed, h, w, patch).to(tokens.dtype))
    tokens = model.norm_pre(tokens)
    for block in model.blocks:
        tokens = block(tokens)
    return model.norm(tokens)[:, 0]


# ---------------------------------------------------------------------------------------------------- aggregation
def consistency_score(features: np.ndarray | torch.Tensor) -> MetricResult:
    """VBench's consistency of L2-normalised frame features (F, D): mean over frames i >= 1 of
    ``(max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2``."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    n = int(f.shape[0])
    if n < 2:
        return MetricResult.error(f"consistency needs at least 2 frames, got {n} (VBench's own code divides by "
                                  f"zero here; a GIF of identical frames is stored as one frame)")
    f = torch.nn.functional.normalize(f, dim=-1)
    prev = (f[:-1] * f[1:]).sum(-1).clamp(min=0.0)
    first = (f[:1] * f[1:]).sum(-1).clamp(min=0.0)
    pair_sum = float(((prev + first) / 2).sum())
    return MetricResult.ok(pair_sum / (n - 1), pair_sum=pair_sum, n_pairs=n - 1)


def aesthetic_score(raw_scores: np.ndarray | torch.Tensor) -> MetricResult:
    """VBench's aesthetic quality of one video: mean over frames of the predictor's score / 10."""
    s = np.asarray(raw_scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        return MetricResult.error("aesthetic quality needs at least 1 frame")
    return MetricResult.ok(float(np.mean(s / 10.0)), n_frames=int(s.size))


# ------------------------------------------------------------------------------------------------------ scoring
@dataclass
class VBenchScorer:
    """Scores VBench's dimensions from uint8 frames. ``models`` is a :class:`vm_eval.vbench_models.VBenchModels`
    (each model loaded on first use)."""

    models: object
    batch_size: int = 16
    pair_batch: int = 4  # frame pairs per AMT-S forward (motion smoothness)
    imaging_mode: str = "longer"  # VBench's imaging_quality_preprocessing_mode (its default)

    @property
    def model_id(self) -> str:
        return self.models.model_id

    @torch.inference_mode()
    def subject_features(self, frames: torch.Tensor) -> torch.Tensor:
        dino = self.models.dino
        x = dino_input(frames)
        out = [dino_cls_features(dino.model, x[i:i + self.batch_size].to(dino.device, dino.dtype)).float().cpu()
               for i in range(0, x.shape[0], self.batch_size)]
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    @torch.inference_mode()
    def clip_features(self, encoder, frames: torch.Tensor, batch: int) -> torch.Tensor:
        x = clip_input(frames)
        out = [encoder.model.encode_image(x[i:i + batch].to(encoder.device, encoder.dtype)).float().cpu()
               for i in range(0, x.shape[0], batch)]
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    @torch.inference_mode()
    def aesthetic_raw(self, frames: torch.Tensor) -> torch.Tensor:
        clip_l, head = self.models.clip_l14, self.models.aesthetic_head
        feats = self.clip_features(clip_l, frames, AESTHETIC_BATCH)
        return head(feats.to(torch.float32)).squeeze(-1)

    def score(self, frames: np.ndarray, names: tuple[str, ...]) -> dict[str, MetricResult]:
        t = frames_to_tensor(frames)
        out: dict[str, MetricResult] = {}
        if SUBJECT in names:
            out[SUBJECT] = consistency_score(self.subject_features(t).numpy())
        if BACKGROUND in names:
            out[BACKGROUND] = consistency_score(self.clip_features(self.models.clip_b32, t, self.batch_size).numpy())
        if AESTHETIC in names:
            out[AESTHETIC] = aesthetic_score(self.aesthetic_raw(t).numpy())
        if MOTION in names:
            out[MOTION] = self.motion_smoothness(frames)
        if IMAGING in names:
            out[IMAGING] = self.imaging_quality(t)
        return out

    def motion_smoothness(self, frames: np.ndarray) -> MetricResult:
        """VBench motion smoothness (:mod:`vm_eval.vbench_motion_imaging`); skipped with the reason when AMT-S's
        weights are missing."""
        model, missing = self.models.amt
        if model is None:
            return MetricResult.unavailable(f"AMT-S weights missing: {missing}")
        return motion_smoothness(model, frames, self.models.encoders.device, self.pair_batch)

    def imaging_quality(self, frames: torch.Tensor) -> MetricResult:
        """VBench imaging quality (MUSIQ); skipped with the reason when MUSIQ's weights are missing."""
        model, missing = self.models.musiq
        if model is None:
            return MetricResult.unavailable(f"MUSIQ weights missing: {missing}")
        x = imaging_input(frames, self.imaging_mode)
        return imaging_quality_score(musiq_frame_scores(model, x, self.models.encoders.device, self.batch_size))
