"""Box-prompted segmenters behind one small interface.

A :class:`Segmenter` takes RGB images and, per image, boxes (xyxy pixels) and returns one boolean mask per box in
source-image pixels plus a quality score (SAM's predicted IoU).

Backends:

- ``sam`` (default): the ``segment-anything`` package. Checkpoints are plain state dicts; :func:`load_sam` reads
  one with ``torch.load(weights_only=True)``, recognises the architecture from the tensor shapes (vit_h, vit_l,
  vit_b, or the tiny preset's architecture), builds it from segment-anything's own classes and loads it strictly.
  Images are batched through ``Sam.forward`` (its documented batched-input API): one image-encoder pass per batch.
- ``synthetic-color``: a test-only segmenter (:mod:`vm_data.testing`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass
class Segmentation:
    """Masks for one image: ``masks`` (N, H, W) bool, ``scores`` (N,) float32, one per input box."""

    masks: np.ndarray
    scores: np.ndarray


@runtime_checkable
class Segmenter(Protocol):
    name: str

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[Segmentation]: ...


# ------------------------------------------------------------------------------------------- SAM architectures
@dataclass(frozen=True)
class SamArch:
    """The hyper-parameters of a segment-anything ``Sam`` (the official builders' values for vit_h/l/b)."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    mlp_dim: int = 2048
    decoder_heads: int = 8
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16


SAM_ARCHS: dict[str, SamArch] = {
    "vit_h": SamArch("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamArch("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamArch("vit_b", 768, 12, 12, (2, 5, 8, 11)),
    # the tiny preset: random weights, milliseconds per image on CPU
    "vm_tiny": SamArch("vm_tiny", 32, 2, 2, (1,), img_size=128, window_size=4, prompt_embed_dim=32, mlp_dim=64,
                       decoder_heads=2, iou_head_hidden_dim=32, mask_in_chans=8),
}


def build_sam(arch: SamArch | str):
    """A randomly initialised ``segment_anything.modeling.Sam`` of the given architecture."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    a = SAM_ARCHS[arch] if isinstance(arch, str) else arch
    grid = a.img_size // a.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=a.depth, embed_dim=a.embed_dim, img_size=a.img_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=a.num_heads, patch_size=a.patch_size,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=a.global_attn_indexes, window_size=a.window_size,
            out_chans=a.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=a.prompt_embed_dim, image_embedding_size=(grid, grid), input_image_size=(a.img_size, a.img_size),
            mask_in_chans=a.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=a.prompt_embed_dim, mlp_dim=a.mlp_dim,
                                          num_heads=a.decoder_heads),
            transformer_dim=a.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=a.iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def sam_arch_of(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> SamArch:
    """Recognise the architecture of a SAM state dict from its tensor shapes."""
    key = "image_encoder.patch_embed.proj.weight"
    if key not in state_dict:
        raise ValueError(f"{source}: not a Segment Anything checkpoint (no '{key}'; keys start with "
                         f"{sorted(state_dict)[:3]})")
    embed_dim = int(state_dict[key].shape[0])
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for arch in SAM_ARCHS.values():
        if arch.embed_dim == embed_dim and arch.depth == depth:
            return arch
    known = ", ".join(f"{a.name} (embed_dim {a.embed_dim}, depth {a.depth})" for a in SAM_ARCHS.values())
    raise ValueError(f"{source}: unknown SAM architecture with embed_dim {embed_dim}, depth {depth}; known: {known}")


def load_sam(checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a segment-anything checkpoint file (official or tiny) into a ``Sam`` on ``device``, strictly."""
    checkpoint = Path(checkpoint)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read SAM checkpoint {checkpoint}: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: expected a state dict, got {type(state).__name__}")
    arch = sam_arch_of(state, str(checkpoint))
    sam = build_sam(arch)
    sam.load_state_dict(state, strict=True)
    logger.info("loaded SAM %s from %s", arch.name, checkpoint)
    return sam.to(device).eval()


class SamSegmenter:
    """segment-anything ``Sam`` prompted with boxes, images batched through ``Sam.forward``."""

    name = "sam"

    def __init__(self, sam, *, device: str | torch.device | None = None, batch_size: int = 4,
                 multimask: bool = False):
        from segment_anything.utils.transforms import ResizeLongestSide

        self.device = torch.device(device) if device is not None else next(sam.parameters()).device
        self.sam = sam.to(self.device).eval()
        self.batch_size = max(1, int(batch_size))
        self.multimask = bool(multimask)
        self.transform = ResizeLongestSide(self.sam.image_encoder.img_size)

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[Segmentation]:
        if len(images) != len(boxes):
            raise ValueError(f"segment: {len(images)} images but {len(boxes)} box sets")
        out: list[Segmentation] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self._segment_chunk(list(images[start:start + self.batch_size]),
                                           list(boxes[start:start + self.batch_size])))
        return out

    @torch.inference_mode()
    def _segment_chunk(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[Segmentation]:
        batch, empty = [], {}
        for i, (image, bxs) in enumerate(zip(images, boxes)):
            bxs = np.asarray(bxs, dtype=np.float32).reshape(-1, 4)
            h, w = image.shape[:2]
            if len(bxs) == 0:
                empty[i] = Segmentation(np.zeros((0, h, w), bool), np.zeros((0,), np.float32))
                continue
            resized = self.transform.apply_image(np.ascontiguousarray(image))
            tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()
            box_t = self.transform.apply_boxes_torch(torch.as_tensor(bxs, device=self.device), (h, w))
            batch.append({"image": tensor, "original_size": (h, w), "boxes": box_t})
        outputs = iter(self.sam(batch, multimask_output=self.multimask) if batch else [])
        results = []
        for i in range(len(images)):
            if i in empty:
                results.append(empty[i])
                continue
            o = next(outputs)
            masks, ious = o["masks"], o["iou_predictions"]  # (N, C, H, W) bool, (N, C)
            best = ious.argmax(dim=1)
            rows = torch.arange(len(best), device=best.device)
            results.append(Segmentation(masks[rows, best].cpu().numpy().astype(bool),
                                        ious[rows, best].float().cpu().numpy()))
        return results


def load_sam_segmenter(source: str | None = None, *, device: str | torch.device = "cpu",
                       **kwargs) -> SamSegmenter:
    """SAM segmenter from a checkpoint path or ``owner/repo/file.pth`` (default from the weights registry)."""
    from .registry import SAM

    path = SAM.resolve(source)
    return SamSegmenter(load_sam(path, device=device), device=device, **kwargs)

