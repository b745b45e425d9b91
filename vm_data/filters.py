"""Keep/reject decisions, each with a named reason and the score it was decided on.

Clip-level filters look at the container (frame count, duration, resolution) before anything is decoded;
detection filters implement the paper's multi-person and face-too-small filters on Grounding DINO candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detect import Detections

# Reasons written to the manifest (`reason` of rejected rows) and counted in summary.json.
NO_DETECTION = "no_detection"
MULTIPLE_SUBJECTS = "multiple_subjects"
SUBJECT_TOO_SMALL = "subject_too_small"
EMPTY_MASK = "empty_mask"
TOO_FEW_FRAMES = "too_few_frames"
TOO_SHORT = "too_short"
RESOLUTION_TOO_LOW = "resolution_too_low"
RESOLUTION_TOO_HIGH = "resolution_too_high"
MISSING_CAPTION = "missing_caption"
BAD_IMAGE = "bad_image"
REASONS = (NO_DETECTION, MULTIPLE_SUBJECTS, SUBJECT_TOO_SMALL, EMPTY_MASK, TOO_FEW_FRAMES, TOO_SHORT,
           RESOLUTION_TOO_LOW, RESOLUTION_TOO_HIGH, MISSING_CAPTION, BAD_IMAGE)


@dataclass
class FilterResult:
    keep: bool
    reason: str | None = None
    score: float | None = None
    detail: str | None = None

    @classmethod
    def ok(cls, score: float | None = None) -> "FilterResult":
        return cls(True, None, score)


def check_video(num_frames: int, fps: float, width: int, height: int, *, min_frames: int, min_duration: float,
                min_short_side: int, max_long_side: int) -> FilterResult:
    """Too few frames / too short / too low or too high a resolution. The score is the measured quantity."""
    if num_frames < min_frames:
        return FilterResult(False, TOO_FEW_FRAMES, float(num_frames), f"{num_frames} frames < {min_frames}")
    duration = num_frames / fps if fps > 0 else 0.0
    if duration < min_duration:
        return FilterResult(False, TOO_SHORT, duration, f"{duration:.2f} s < {min_duration} s")
    short, long = min(width, height), max(width, height)
    if short < min_short_side:
        return FilterResult(False, RESOLUTION_TOO_LOW, float(short), f"{width}x{height}: short side < {min_short_side}")
    if max_long_side and long > max_long_side:
        return FilterResult(False, RESOLUTION_TOO_HIGH, float(long), f"{width}x{height}: long side > {max_long_side}")
    return FilterResult.ok()


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N, 4) and b (M, 4), xyxy."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def distinct_subjects(det: Detections, threshold: float, nms_iou: float) -> Detections:
    """Candidates scoring >= ``threshold`` after greedy non-maximum suppression (duplicate boxes of one subject
    collapse to the best one; a box mostly inside a better one counts as the same subject too)."""
    keep_mask = det.scores >= threshold
    boxes, scores = det.boxes[keep_mask], det.scores[keep_mask]
    kept: list[int] = []
    for i in range(len(boxes)):  # already sorted best first
        if kept and same_subject(boxes[i], boxes[kept], nms_iou).any():
            continue
        kept.append(i)
    return Detections(boxes[kept], scores[kept])


def same_subject(box: np.ndarray, others: np.ndarray, nms_iou: float) -> np.ndarray:
    """Per box of ``others`` (M, 4): is it the same subject as ``box`` (IoU >= ``nms_iou``, or ``box`` 90 % inside
    it)? The rule of :func:`distinct_subjects`."""
    others = np.asarray(others, np.float64).reshape(-1, 4)
    return (box_iou(np.asarray(box)[None], others)[0] >= nms_iou) | (_fraction_inside(np.asarray(box), others) >= 0.9)


def _fraction_inside(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-12)
    lt = np.maximum(box[None, :2], others[:, :2])
    rb = np.minimum(box[None, 2:], others[:, 2:])
    return np.prod(np.clip(rb - lt, 0, None), axis=1) / area


def check_detections(det: Detections, width: int, height: int, *, box_threshold: float,
                     multi_subject_threshold: float, nms_iou: float, min_box_area: float) -> FilterResult:
    """No detection / more than one subject / subject box too small for the frame.

    Scores: the best candidate's score (no detection), the second subject's score (multiple subjects), the box
    area as a fraction of the frame (too small), the best score (kept).
    """
    best = float(det.scores[0]) if len(det) else 0.0
    if best < box_threshold:
        return FilterResult(False, NO_DETECTION, best, f"best score {best:.3f} < box threshold {box_threshold}")
    subjects = distinct_subjects(det, multi_subject_threshold, nms_iou)
    if len(subjects) > 1:
        return FilterResult(False, MULTIPLE_SUBJECTS, float(subjects.scores[1]),
                            f"{len(subjects)} subjects score >= {multi_subject_threshold}")
    x0, y0, x1, y1 = det.boxes[0]
    area = max(0.0, float(x1 - x0)) * max(0.0, float(y1 - y0)) / max(1.0, float(width * height))
    if area < min_box_area:
        return FilterResult(False, SUBJECT_TOO_SMALL, area, f"box covers {area:.4f} of the frame < {min_box_area}")
    return FilterResult.ok(best)


def check_mask(mask: np.ndarray, min_mask_area: float) -> FilterResult:
    area = float(np.asarray(mask, bool).mean()) if mask.size else 0.0
    if area < min_mask_area or not np.asarray(mask).any():
        return FilterResult(False, EMPTY_MASK, area, f"mask covers {area:.5f} of the frame < {min_mask_area}")
    return FilterResult.ok(area)
