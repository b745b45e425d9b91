"""Dynamic degree (DD): VBench's rule on optical flow between consecutive frames.

Per pair: the mean of the top 5% flow magnitudes (over the flow field of the padded frames, as VBench computes
it). A video of F frames at HxW is dynamic when at least ``round(4 * F / 16)`` pairs exceed
``6.0 * min(H, W) / 256`` pixels (12 px for 16 frames at 512x512). Flow backends:

- :class:`RaftFlow`: torchvision RAFT (``raft_large`` with the raft-things weights for the paper's numbers),
  20 iterations, frames as float 0..255 mapped to RAFT's [-1, 1], replicate-padded to a multiple of 8 (split
  evenly, as RAFT's InputPadder). Each frame goes through the feature encoder once (shared by its two pairs),
  pairs are batched, and only the final flow is upsampled; the result equals torchvision's forward.
- :class:`DisFlow`: OpenCV DIS (medium preset) on grayscale frames: weight-free, NOT comparable with the paper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .imaging import chunks
from .results import MetricResult

logger = logging.getLogger(__name__)

RAFT_ITERS = 20


@dataclass(frozen=True)
class DynamicRule:
    """VBench's dynamic-degree rule; the defaults are the values the paper's numbers used."""

    threshold_per_256: float = 6.0
    pairs_per_16: float = 4.0
    top_fraction: float = 0.05

    def threshold(self, height: int, width: int) -> float:
        return self.threshold_per_256 * min(height, width) / 256.0

    def min_pairs(self, num_frames: int) -> int:
        return int(round(self.pairs_per_16 * num_frames / 16.0))  # Python's round, as VBench


def top_fraction_mean(flow: np.ndarray, fraction: float = 0.05) -> float:
    """Mean of the largest ``int(H*W*fraction)`` magnitudes of a (H, W, 2) flow field (at least one value)."""
    mag = np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1])).ravel()
    k = max(1, int(mag.size * fraction))
    return float(np.mean(np.partition(mag, mag.size - k)[mag.size - k:]))


FROZEN_MODES = ("error", "static")


def dynamic_degree(pair_scores: list[float], height: int, width: int, num_frames: int, flow_name: str,
                   rule: DynamicRule = DynamicRule(), frozen: str = "error") -> MetricResult:
    """The per-video DD result from the pair scores. ``frozen``: what a video of one frame (a GIF whose identical
    frames were merged into one) gives: ``error`` (left out of the DD fraction) or ``static`` (DD 0: no pair can
    move, as the authors' code counted it)."""
    if frozen not in FROZEN_MODES:
        raise ValueError(f"frozen must be one of {FROZEN_MODES}, got {frozen!r}")
    if num_frames == 1 and frozen == "static":
        return MetricResult.ok(0.0, flow=flow_name, frozen=True, threshold=rule.threshold(height, width),
                               min_pairs=rule.min_pairs(num_frames), moving_pairs=0, pair_scores=[])
    if num_frames < 2 or not pair_scores:
        return MetricResult.error(f"dynamic degree needs at least 2 frames, got {num_frames}")
    thr, need = rule.threshold(height, width), rule.min_pairs(num_frames)
    moving = sum(1 for s in pair_scores if s > thr)
    return MetricResult.ok(1.0 if moving >= need else 0.0, flow=flow_name, threshold=thr, min_pairs=need,
                           moving_pairs=moving, pair_scores=[round(float(s), 4) for s in pair_scores])


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Replicate-pad (N, C, H, W) so H and W are multiples of ``multiple``, split evenly (RAFT's InputPadder)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], mode="replicate")


class RaftFlow:
    name = "raft"

    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu", iters: int = RAFT_ITERS,
                 pair_batch: int = 4, model_id: str = "raft"):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.iters = iters
        self.pair_batch = pair_batch
        self.model_id = model_id

    @classmethod
    def load(cls, weights: Path, *, arch: str = "raft_large", **kwargs) -> "RaftFlow":
        from torchvision.models import optical_flow

        if arch not in ("raft_large", "raft_small"):
            raise ValueError(f"unknown RAFT architecture {arch!r}; expected raft_large or raft_small")
        model = getattr(optical_flow, arch)(weights=None)
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        logger.info("loaded RAFT %s from %s", arch, weights)
        return cls(model, model_id=f"torchvision:{arch}:{Path(weights).name}", **kwargs)

    MIN_SIZE = 128  # RAFT's 4-level correlation pyramid needs feature maps of at least 16x16 (1/8 resolution)

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        h, w = frames.shape[1:3]
        if min(h, w) < self.MIN_SIZE:
            raise ValueError(f"RAFT needs frames of at least {self.MIN_SIZE}x{self.MIN_SIZE} pixels, got {w}x{h}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # 0..255
        x = pad_to_multiple(x, 8)
        return (2.0 * (x / 255.0) - 1.0).to(self.device)

    @torch.inference_mode()
    def flows(self, frames: np.ndarray) -> list[np.ndarray]:
        """Final (20-iteration) flow of each consecutive pair, as (Hp, Wp, 2) arrays on the padded frames."""
        from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

        m = self.model
        x = self._prepare(frames)
        n = x.shape[0]
        fmaps = torch.cat([m.feature_encoder(x[sl]) for sl in chunks(n, self.pair_batch * 2)])
        ctx = torch.cat([m.context_encoder(x[sl]) for sl in chunks(n - 1, self.pair_batch * 2)])
        hsz = m.update_block.hidden_state_size
        out: list[np.ndarray] = []
        for sl in chunks(n - 1, self.pair_batch):
            f1 = fmaps[sl]
            f2 = fmaps[sl.start + 1: sl.stop + 1]
            m.corr_block.build_pyramid(f1, f2)
            hidden, context = torch.split(ctx[sl], [hsz, ctx.shape[1] - hsz], dim=1)
            hidden, context = torch.tanh(hidden), F.relu(context)
            b, _, h8, w8 = f1.shape
            coords0 = make_coords_grid(b, h8, w8).to(f1.device)
            coords1 = coords0.clone()
            for _ in range(self.iters):
                corr = m.corr_block.index_pyramid(centroids_coords=coords1)
                hidden, delta = m.update_block(hidden, context, corr, coords1 - coords0)
                coords1 = coords1 + delta
            up_mask = None if m.mask_predictor is None else m.mask_predictor(hidden)
            flow = upsample_flow(flow=coords1 - coords0, up_mask=up_mask)
            out.extend(f.permute(1, 2, 0).float().cpu().numpy() for f in flow)
        return out

    def pair_scores(self, frames: np.ndarray, top_fraction: float = 0.05) -> list[float]:
        return [top_fraction_mean(f, top_fraction) for f in self.flows(frames)]


class DisFlow:
    """OpenCV DIS optical flow (medium preset), weight-free. Not comparable with the paper's RAFT numbers."""

    name = "dis"
    model_id = "opencv:DIS:medium"

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def flows(self, frames: np.ndarray) -> list[np.ndarray]:
        cv2 = self._cv2
        gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
        return [self._dis.calc(a, b, None) for a, b in zip(gray[:-1], gray[1:])]

    def pair_scores(self, frames: np.ndarray, top_fraction: float = 0.05) -> list[float]:
        return [top_fraction_mean(f, top_fraction) for f in self.flows(frames)]
