"""Open-set subject detectors behind one small interface.

A :class:`Detector` takes a batch of RGB images and one text prompt per image and returns, per image, candidate
boxes (xyxy, source-image pixels) with scores, best first. Thresholds are applied by the caller
(:mod:`vm_data.filters`); a detector returns every candidate above its ``candidate_threshold`` so that rejected
clips can still record the best score seen.

Backends:

- ``grounding-dino`` (default): transformers' ``GroundingDinoForObjectDetection`` + its processor, loaded with
  ``from_pretrained`` from a local folder or Hugging Face id (default ``IDEA-Research/grounding-dino-tiny``, the
  original SwinT-OGC weights). The original ``groundingdino-py`` package is not supported: it breaks on
  transformers 5 (``BertModel.get_extended_attention_mask`` is gone), and pinning transformers < 5 would pin
  diffusers < 0.40 for the whole toolkit.
- ``synthetic-color``: a test-only detector (:mod:`vm_data.testing`) that finds saturated synthetic subjects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass
class Detections:
    """Candidates for one image, sorted by score (best first). ``boxes``: (N, 4) float32 xyxy in pixels."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"Detections: {len(self.boxes)} boxes but {len(self.scores)} scores")
        order = np.argsort(-self.scores, kind="stable")
        self.boxes, self.scores = self.boxes[order], self.scores[order]

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@runtime_checkable
class Detector(Protocol):
    """Anything with ``detect(images, prompts) -> list[Detections]`` (images: uint8 RGB arrays HxWx3)."""

    name: str

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[Detections]: ...


def normalize_prompt(text: str) -> str:
    """Grounding DINO's expected form: lower case, phrases ending with '.', e.g. ``"Dog"`` -> ``"dog."``."""
    text = " ".join(str(text).strip().lower().split())
    if not text:
        raise ValueError("empty detector prompt")
    return text if text.endswith(".") else text + "."


class GroundingDinoDetector:
    """transformers Grounding DINO (model + its processor), batched; see :meth:`from_pretrained`."""

    name = "grounding-dino"

    def __init__(self, model, processor, *, device: str | torch.device = "cpu", batch_size: int = 8,
                 candidate_threshold: float = 0.05, text_threshold: float = 0.25, max_candidates: int = 20,
                 dtype: torch.dtype | None = None, source: str | None = None):
        self.source = source
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.candidate_threshold = float(candidate_threshold)
        self.text_threshold = float(text_threshold)
        self.max_candidates = int(max_candidates)
        self.processor = processor
        if dtype is not None:
            model = model.to(dtype)
        self.model = model.to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype

    @classmethod
    def from_pretrained(cls, source: str | Path, **kwargs) -> "GroundingDinoDetector":
        """Model and processor from a folder (or hub id) holding both, as the IDEA-Research checkpoints do."""
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        processor = AutoProcessor.from_pretrained(str(source))
        model = GroundingDinoForObjectDetection.from_pretrained(str(source))
        return cls(model, processor, source=str(source), **kwargs)

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[Detections]:
        if len(images) != len(prompts):
            raise ValueError(f"detect: {len(images)} images but {len(prompts)} prompts")
        results: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            texts = [normalize_prompt(p) for p in prompts[start:start + self.batch_size]]
            results.extend(self._detect_chunk(chunk, texts))
        return results

    def _detect_chunk(self, images: list[np.ndarray], texts: list[str]) -> list[Detections]:
        from PIL import Image

        pil = [Image.fromarray(np.ascontiguousarray(im)) for im in images]
        inputs = self.processor(images=pil, text=texts, return_tensors="pt", padding=True)
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items()}
        outputs = self.model(**inputs)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        sizes = [(im.shape[0], im.shape[1]) for im in images]
        post = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=self.candidate_threshold, text_threshold=self.text_threshold,
            target_sizes=sizes,
        )
        out = []
        for res, (h, w) in zip(post, sizes):
            boxes = res["boxes"].detach().cpu().numpy().astype(np.float32)
            scores = res["scores"].detach().cpu().numpy().astype(np.float32)
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
            det = Detections(boxes, scores)
            out.append(Detections(det.boxes[: self.max_candidates], det.scores[: self.max_candidates]))
        return out


def load_grounding_dino(source: str | None = None, **kwargs) -> GroundingDinoDetector:
    """Grounding DINO from a local folder or hub id (default from the weights registry), resolved offline-aware."""
    from .registry import GROUNDING_DINO

    path = GROUNDING_DINO.resolve(source)
    logger.info("loading Grounding DINO from %s", path)
    return GroundingDinoDetector.from_pretrained(path, **kwargs)
