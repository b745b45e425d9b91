"""DINO-I: self-supervised DINO ViT-S/16 (timm ``vit_small_patch16_224.dino``).

Preprocessing as the authors' (transformers' ViTImageProcessor for facebook/dino-vits16): resize straight to
224x224 (bilinear, PIL, aspect not kept, no crop), ImageNet mean/std. Embedding: the CLS token of the last hidden
state after the final LayerNorm, L2-normalised.
"""

from __future__ import annotations

import json
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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_SIZE = 224
MODEL_NAME = "vit_small_patch16_224.dino"


def set_layernorm_eps(model: torch.nn.Module, eps: float) -> int:
    """Set ``eps`` of every LayerNorm in ``model`` (in place); returns how many were set."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    for m in norms:
        m.eps = eps
    logger.info("DINO: LayerNorm eps set to %g in %d layers", eps, len(norms))
    return len(norms)


@dataclass
class DinoEncoder:
    model: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    model_id: str
    batch_size: int = 16

    @classmethod
    def load(cls, weights: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
             model_kwargs: dict | None = None, model_id: str | None = None, batch_size: int = 16,
             layernorm_eps: float | None = None) -> "DinoEncoder":
        """The timm model from ``weights``. ``layernorm_eps``: run every LayerNorm with this eps (the authors'
        transformers model uses 1e-12; None keeps the timm build's 1e-6, the eps DINO was trained with)."""
        import timm

        kwargs = dict(model_kwargs or {})
        kwargs_file = Path(weights).parent / "timm_kwargs.json"
        if not kwargs and kwargs_file.exists():  # tiny builds record their shrunken architecture beside the weights
            kwargs = json.loads(kwargs_file.read_text())
        model = timm.create_model(MODEL_NAME, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay=dict(file=str(weights)), **kwargs)
        if layernorm_eps is not None:
            set_layernorm_eps(model, layernorm_eps)
        model = model.to(device=device, dtype=dtype).eval()
        logger.info("loaded DINO %s from %s (%s, %s)", MODEL_NAME, weights, device, dtype)
        return cls(model, torch.device(device), dtype, model_id or f"{MODEL_NAME}:{weights}", batch_size)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        resized = [im.convert("RGB").resize((DINO_SIZE, DINO_SIZE), Image.BILINEAR) for im in images]
        out = []
        for sl in chunks(len(resized), self.batch_size):
            x = pil_to_normalized(resized[sl], IMAGENET_MEAN, IMAGENET_STD).to(self.device, self.dtype)
            tokens = self.model.forward_features(x)  # (N, 1 + patches, D), after the final norm
            cls_tok = tokens[:, 0].float()
            out.append(torch.nn.functional.normalize(cls_tok, dim=-1).cpu())
        return torch.cat(out).numpy()


def dino_metric(frame_emb: np.ndarray, ref_emb: np.ndarray) -> MetricResult:
    return MetricResult.ok(float(np.mean(frame_emb @ ref_emb)), n_frames=int(frame_emb.shape[0]))
