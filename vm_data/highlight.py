"""Subject highlight of single images: detect the subject from a text prompt, segment it, white out the rest.

The same path serves dataset preprocessing (batched, :meth:`SubjectHighlighter.highlight_batch`) and inference
(`vm generate`, `vm bench`: :meth:`SubjectHighlighter.highlight` on the user's photo)::

    from vm_data.highlight import load_highlighter
    hl = load_highlighter("full", device="cuda")
    res = hl.highlight(Image.open("me.jpg"), "head")
    if res.status == "ok":
        res.image.save("reference.png")   # white background, square
    else:
        print(res.status, res.reason)

A bad image never raises: it comes back with ``status`` ``"bad_image"`` (or ``"error"`` when a model failed) and
the reason. A bug in our code is not a bad image: the :class:`~vm_common.error_policy.ErrorPolicy` given to the
highlighter decides (``raise``: it propagates; ``record``: an ``error`` result with ``internal=True``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from vm_common.devices import default_device
from vm_common.error_policy import RAISE, ErrorPolicy, is_bug, resolve_policy
from vm_common.media import ImageLike, ImageLoadError, load_image
from vm_common.status import ERROR, OK
from vm_common.tiny import PRESETS

from . import filters
from .detect import Detector, Detections, normalize_prompt
from .reference import make_reference
from .segment import Segmenter

logger = logging.getLogger(__name__)

# an image's outcome: ok, the rejection reason of the filter that turned it down, or error (vm_common.status)
STATUSES = (OK, filters.NO_DETECTION, filters.MULTIPLE_SUBJECTS, filters.SUBJECT_TOO_SMALL, filters.EMPTY_MASK,
            filters.BAD_IMAGE, ERROR)


@dataclass
class HighlightConfig:
    """Thresholds and reference layout of the subject highlight."""

    box_threshold: float = field(default=0.35, metadata={"help": "minimum detector score of the subject",
                                                         "min": 0, "max": 1})
    text_threshold: float = field(default=0.25, metadata={"help": "Grounding DINO text-token threshold",
                                                          "min": 0, "max": 1})
    multi_subject_threshold: float | None = field(
        default=None, metadata={"help": "a second distinct box scoring >= this rejects the image as multiple "
                                        "subjects (default: box_threshold)", "min": 0, "max": 1})
    nms_iou: float = field(default=0.5, metadata={"help": "boxes overlapping more than this are one subject",
                                                  "min": 0, "max": 1})
    min_box_area: float = field(default=0.01, metadata={"help": "minimum subject box area, fraction of the image",
                                                        "min": 0, "max": 1})
    min_mask_area: float = field(default=0.0005, metadata={"help": "minimum mask area, fraction of the image",
                                                           "min": 0, "max": 1})
    margin: float = field(default=0.1, metadata={"help": "crop margin around the mask box, fraction of its longer side",
                                                 "min": 0, "max": 10})
    square: bool = field(default=True, metadata={"help": "pad the reference to a square with white"})
    output_size: int | None = field(default=512, metadata={"help": "reference side in pixels (0 keeps the crop size)",
                                                           "min": 0, "max": 16384})
    min_image_side: int = field(default=16, metadata={"help": "smaller images are rejected as bad_image", "min": 1})
    candidate_threshold: float = field(default=0.05, metadata={"help": "detector candidates below this are dropped",
                                                               "min": 0, "max": 1})
    max_candidates: int = field(default=20, metadata={"help": "detector candidates kept per image", "min": 1})
    detector_batch_size: int = field(default=8, metadata={"help": "images per detector forward", "min": 1})
    segmenter_batch_size: int = field(default=4, metadata={"help": "images per SAM forward", "min": 1})
    segment_rejected: bool = field(
        default=False, metadata={"help": "also segment the best box of multiple_subjects / subject_too_small "
                                         "images (their result carries the status, image and mask)"})

    def __post_init__(self) -> None:
        for name in ("box_threshold", "text_threshold", "nms_iou", "min_box_area", "min_mask_area"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"HighlightConfig.{name} must lie in [0, 1], got {value}")
        if self.margin < 0:
            raise ValueError(f"HighlightConfig.margin must be >= 0, got {self.margin}")

    @property
    def multi_threshold(self) -> float:
        return self.box_threshold if self.multi_subject_threshold is None else self.multi_subject_threshold


@dataclass
class HighlightResult:
    """Outcome for one image. ``image``/``mask`` are set when ``status == "ok"`` (and for multiple_subjects /
    subject_too_small when ``segment_rejected``). ``mask`` is HxW bool in source-image pixels; ``box`` xyxy."""

    status: str
    image: Image.Image | None = None
    mask: np.ndarray | None = None
    box: list[float] | None = None
    score: float | None = None
    reason: str | None = None
    filter_score: float | None = None  # the quantity the status was decided on (see vm_data.filters)
    mask_score: float | None = None  # SAM's predicted IoU
    mask_area: float | None = None  # mask area / image area
    num_candidates: int = 0
    internal: bool = False  # the error was a bug in our code (recorded under the record policy), not the image

    @property
    def ok(self) -> bool:
        return self.status == OK


class SubjectHighlighter:
    """Detector + segmenter + reference composition. Construct with backends, or use :func:`load_highlighter`."""

    def __init__(self, detector: Detector, segmenter: Segmenter, config: HighlightConfig | None = None, *,
                 random_weights: bool = False, policy: ErrorPolicy | None = None):
        self.detector = detector
        self.segmenter = segmenter
        self.config = config or HighlightConfig()
        self.random_weights = random_weights
        self.policy = resolve_policy(policy)

    def highlight(self, image: ImageLike, text_prompt: str) -> HighlightResult:
        """Highlight the subject named by ``text_prompt`` (e.g. "head", "dog") in one image."""
        return self.highlight_batch([image], [text_prompt])[0]

    def highlight_batch(self, images: Sequence[ImageLike], prompts: Sequence[str]) -> list[HighlightResult]:
        """Highlight many images (each with its prompt); detector and segmenter run batched."""
        if len(images) != len(prompts):
            raise ValueError(f"highlight_batch: {len(images)} images but {len(prompts)} prompts")
        cfg = self.config
        results: list[HighlightResult | None] = [None] * len(images)
        arrays: dict[int, np.ndarray] = {}
        texts: dict[int, str] = {}
        for i, (image, prompt) in enumerate(zip(images, prompts)):
            try:
                arr = _as_rgb_array(image)
                texts[i] = normalize_prompt(prompt)
            except (ImageLoadError, ValueError, TypeError, OSError) as exc:
                results[i] = HighlightResult(filters.BAD_IMAGE, reason=str(exc))
                continue
            h, w = arr.shape[:2]
            if min(h, w) < cfg.min_image_side:
                results[i] = HighlightResult(filters.BAD_IMAGE, reason=f"image is {w}x{h}, smaller than "
                                                                       f"{cfg.min_image_side} px")
                continue
            arrays[i] = arr

        detections = self._run_isolated(
            "detector", list(arrays), lambda idx: self.detector.detect([arrays[j] for j in idx], [texts[j] for j in idx]),
            results,
        )
        to_segment: list[int] = []
        for i, det in detections.items():
            h, w = arrays[i].shape[:2]
            verdict = filters.check_detections(det, w, h, box_threshold=cfg.box_threshold,
                                               multi_subject_threshold=cfg.multi_threshold, nms_iou=cfg.nms_iou,
                                               min_box_area=cfg.min_box_area)
            best_box = [float(v) for v in det.boxes[0]] if len(det) else None
            best_score = float(det.scores[0]) if len(det) else None
            status = OK if verdict.keep else str(verdict.reason)
            results[i] = HighlightResult(status, box=best_box, score=best_score, reason=verdict.detail,
                                         filter_score=verdict.score, num_candidates=len(det))
            if verdict.keep or (cfg.segment_rejected and best_box is not None and verdict.reason in
                                (filters.MULTIPLE_SUBJECTS, filters.SUBJECT_TOO_SMALL)):
                to_segment.append(i)

        segmentations = self._run_isolated(
            "segmenter", to_segment,
            lambda idx: self.segmenter.segment([arrays[j] for j in idx],
                                               [np.asarray([results[j].box], np.float32) for j in idx]),
            results,
        )
        for i, seg in segmentations.items():
            res = results[i]
            assert res is not None
            mask = seg.masks[0] if len(seg.masks) else np.zeros(arrays[i].shape[:2], bool)
            res.mask_score = float(seg.scores[0]) if len(seg.scores) else None
            verdict = filters.check_mask(mask, cfg.min_mask_area)
            res.mask_area = float(verdict.score or 0.0)
            if not verdict.keep:
                res.status, res.reason, res.filter_score = filters.EMPTY_MASK, verdict.detail, verdict.score
                continue
            res.mask = mask
            res.image = make_reference(arrays[i], mask, margin=cfg.margin, square=cfg.square,
                                       size=cfg.output_size or None)
        return [r if r is not None else HighlightResult(ERROR, reason="not processed") for r in results]

    def _run_isolated(self, what: str, indices: list[int], fn, results: list) -> dict[int, object]:
        """Run ``fn`` on all ``indices`` at once; if that fails, one by one so that one bad image only fails itself."""
        if not indices:
            return {}
        try:
            out = fn(indices)
            return dict(zip(indices, out))
        except Exception as exc:  # noqa: BLE001 - a model failure must become a status; the policy decides bugs
            if len(indices) == 1:
                internal = self.policy.check(exc, what)
                if not internal:
                    logger.warning("%s failed on an image: %r", what, exc)
                results[indices[0]] = HighlightResult(ERROR, reason=f"{what} failed: {type(exc).__name__}: {exc}",
                                                      internal=internal)
                return {}
            if self.policy.mode == RAISE and is_bug(exc):
                raise
            logger.warning("%s failed on a batch of %d (%r); retrying one by one", what, len(indices), exc)
        done: dict[int, object] = {}
        for i in indices:
            done.update(self._run_isolated(what, [i], fn, results))
        return done


def _as_rgb_array(image: ImageLike) -> np.ndarray:
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    return np.asarray(load_image(image))


# ---------------------------------------------------------------------------------------------------- loading
DETECTOR_BACKENDS = ("grounding-dino", "synthetic-color")
SEGMENTER_BACKENDS = ("sam", "synthetic-color")


def build_detector(spec: str | None, *, preset: str, device: str, config: HighlightConfig) -> tuple[Detector, bool]:
    """(detector, random_weights). ``spec``: a backend name, or Grounding DINO weights (folder / hub id)."""
    if spec == "synthetic-color":
        from .testing import SyntheticColorDetector

        return SyntheticColorDetector(), False
    from .detect import GroundingDinoDetector, load_grounding_dino

    kwargs = dict(device=device, batch_size=config.detector_batch_size, candidate_threshold=config.candidate_threshold,
                  text_threshold=config.text_threshold, max_candidates=config.max_candidates)
    if spec in (None, "grounding-dino") and preset == "tiny":
        from .tiny import tiny_grounding_dino

        return load_grounding_dino(str(tiny_grounding_dino()), **kwargs), True
    source = None if spec in (None, "grounding-dino") else spec
    det: GroundingDinoDetector = load_grounding_dino(source, **kwargs)
    return det, False


def build_segmenter(spec: str | None, *, preset: str, device: str, config: HighlightConfig) -> tuple[Segmenter, bool]:
    """(segmenter, random_weights). ``spec``: a backend name, or a SAM checkpoint (path / owner/repo/file.pth)."""
    if spec == "synthetic-color":
        from .testing import SyntheticColorSegmenter

        return SyntheticColorSegmenter(), False
    from .segment import load_sam_segmenter

    if spec in (None, "sam") and preset == "tiny":
        from .tiny import tiny_sam_checkpoint

        return load_sam_segmenter(str(tiny_sam_checkpoint()), device=device,
                                  batch_size=config.segmenter_batch_size), True
    source = None if spec in (None, "sam") else spec
    return load_sam_segmenter(source, device=device, batch_size=config.segmenter_batch_size), False


def load_highlighter(preset: str = "full", device: str | None = None, config: HighlightConfig | None = None,
                     detector: str | None = None, segmenter: str | None = None,
                     policy: ErrorPolicy | None = None) -> SubjectHighlighter:
    """Build the subject highlighter.

    ``preset``: ``"full"`` (real weights from the registry: ``IDEA-Research/grounding-dino-tiny`` and the SAM
    checkpoint; :class:`~vm_common.weights.MissingWeightsError` says what is missing and how to get it) or
    ``"tiny"`` (tiny random models built offline; results are meaningless but exercise the real code).
    ``detector``: Grounding DINO weights (local folder or hub id), or a backend name (``"grounding-dino"``,
    ``"synthetic-color"`` - test only). ``segmenter``: a SAM checkpoint (path or ``owner/repo/file.pth``) or a
    backend name (``"sam"``, ``"synthetic-color"`` - test only). ``policy``: what a bug inside does (default
    ``$VM_ERROR_POLICY``, see :mod:`vm_common.error_policy`).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    config = config or HighlightConfig()
    device = device or default_device()
    det, det_random = build_detector(detector, preset=preset, device=device, config=config)
    seg, seg_random = build_segmenter(segmenter, preset=preset, device=device, config=config)
    return SubjectHighlighter(det, seg, config, random_weights=det_random or seg_random, policy=policy)


__all__ = ["HighlightConfig", "HighlightResult", "SubjectHighlighter", "load_highlighter", "STATUSES", "Detections"]
