"""CLIP-T, CLIP-I and T.Cons from ONE CLIP image forward per frame (open_clip ViT-B-32, OpenAI weights).

Preprocessing as the authors' (OpenAI CLIP's): resize the shorter side to 224 (bicubic, PIL), centre crop 224,
CLIP mean/std. Values are raw cosines (no x100, no clamp).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .imaging import chunks, pil_to_normalized
from .results import MetricResult

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224
FULL_MODEL_NAME = "ViT-B-32-quickgelu"  # the OpenAI weights use QuickGELU


def clip_resize_crop(image: Image.Image, size: int = CLIP_SIZE) -> Image.Image:
    """Shorter side to ``size`` (bicubic, as torchvision's Resize(size) on a PIL image), then centre crop."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


@dataclass
class ClipEncoder:
    """An open_clip model + tokenizer; embeddings are L2-normalised float32 on the CPU."""

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    model_id: str
    batch_size: int = 16

    @classmethod
    def load(cls, weights: Path, model_name: str = FULL_MODEL_NAME, *, config_dir: Path | None = None,
             device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, model_id: str | None = None,
             batch_size: int = 16) -> "ClipEncoder":
        import open_clip

        if config_dir is not None:
            open_clip.add_model_config(config_dir)
        model = open_clip.create_model(model_name, pretrained=str(weights), device=device)
        model = model.to(dtype=dtype).eval()
        tokenizer = open_clip.get_tokenizer(model_name)
        logger.info("loaded CLIP %s from %s (%s, %s)", model_name, weights, device, dtype)
        return cls(model, tokenizer, torch.device(device), dtype, model_id or f"{model_name}:{weights}", batch_size)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        crops = [clip_resize_crop(im.convert("RGB")) for im in images]
        out = []
        for sl in chunks(len(crops), self.batch_size):
            x = pil_to_normalized(crops[sl], CLIP_MEAN, CLIP_STD).to(self.device, self.dtype)
            emb = self.model.encode_image(x).float()
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
        return torch.cat(out).numpy()

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        emb = self.model.encode_text(tokens).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy()


def clip_metrics(frame_emb: np.ndarray, text_emb: np.ndarray | None, ref_emb: np.ndarray | None) -> dict[str, MetricResult]:
    """CLIP-T, CLIP-I and T.Cons from normalised embeddings: frames (F, D), text (D,), reference (D,)."""
    n = int(frame_emb.shape[0])
    out: dict[str, MetricResult] = {}
    if text_emb is not None:
        out["clip_t"] = MetricResult.ok(float(np.mean(frame_emb @ text_emb)), n_frames=n)
    if ref_emb is not None:
        out["clip_i"] = MetricResult.ok(float(np.mean(frame_emb @ ref_emb)), n_frames=n)
    if n >= 2:
        pair = np.sum(frame_emb[:-1] * frame_emb[1:], axis=-1)
        out["t_cons"] = MetricResult.ok(float(np.mean(pair)), n_pairs=n - 1)
    else:
        out["t_cons"] = MetricResult.error(f"temporal consistency needs at least 2 frames, got {n}")
    return out
