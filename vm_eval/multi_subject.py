"""Multi-subject similarity and identity swaps, for videos made from several references (``multi_sim``, ``id_swap``).

Per frame the subjects are detected - faces for ``human`` videos (the Face Sim detector + ArcFace), the data
pipeline's open-set detector (:mod:`vm_data.detect`, one prompt per reference) for ``object`` videos, each box
cropped and embedded with DINO - and each detection is compared with each reference (cosine of the embeddings).

1. **Matching**, per frame: detections are matched one-to-one to references by Hungarian assignment on that
   similarity (:func:`scipy.optimize.linear_sum_assignment`, maximising the sum); ``min(detections, references)``
   pairs per frame.
2. **Per-subject similarity** of reference r: the mean similarity of its matched detection over the frames where it
   was matched. ``multi_sim`` = the mean over the references matched in at least one frame (the detail lists each
   reference's value, how many frames it was matched in, and the references never matched).
3. **Tracks**: detections are linked across frames by position only, never by appearance: Hungarian assignment on
   the distance between box centres (relative to the larger box diagonal) to the tracks seen in the last
   ``max_gap`` frames, a link only when that distance is below ``link_distance``; an unlinked detection starts a
   track.
4. **Identity swaps**: the video's dominant assignment gives each track one reference, one-to-one, by Hungarian
   assignment on the count of frames in which the track's detection was matched to each reference. A frame is a
   *swap frame* when some detection in it is matched to another reference than its track's dominant one.
   ``id_swap`` = swap frames / frames with at least one matched detection on a track that has a dominant
   reference. Two subjects that trade places (or appearances) after 4 of 12 frames: 4/12 = 0.333.

A frame without detections counts for neither metric; a video where nothing is detected is ``skipped``. Tracking
by position confuses subjects that cross each other (their tracks may exchange at the crossing, counted as swaps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from .results import MetricResult

logger = logging.getLogger(__name__)

MULTI_METRICS = ("multi_sim", "id_swap")
LINK_DISTANCE = 0.5  # box centre distance / larger box diagonal below which a detection continues a track
MAX_GAP = 3  # frames a track may go unseen and still be continued
CROP_MARGIN = 0.1  # object crops: the box grown by this fraction of its longer side
DEFAULT_OBJECT_PROMPT = "object"


@dataclass
class FrameDetections:
    """The subjects found in one frame: ``boxes`` (N, 4) xyxy pixels and ``embeddings`` (N, D), L2-normalised."""

    boxes: np.ndarray
    embeddings: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        emb = np.asarray(self.embeddings, np.float64)
        if emb.size == 0 and emb.ndim != 2:
            emb = emb.reshape(0, 0)
        if emb.ndim != 2 or len(emb) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but embeddings of shape {emb.shape}")
        self.embeddings = emb

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class MultiSubjectResult:
    per_subject: list[float | None]  # per reference: mean similarity over the frames it was matched in
    frames_matched: list[int]  # per reference
    swap_frames: list[int]  # indices of the swap frames
    evaluated_frames: int  # frames counted by the swap rate
    n_frames: int
    n_tracks: int
    dominant: dict[int, int] = field(default_factory=dict)  # track -> reference
    matches: list[list[tuple[int, int, int]]] = field(default_factory=list)  # per frame: (detection, track, ref)

    @property
    def swap_rate(self) -> float | None:
        return len(self.swap_frames) / self.evaluated_frames if self.evaluated_frames else None

    def detail(self) -> dict:
        return {"per_subject": [None if v is None else round(v, 6) for v in self.per_subject],
                "frames_matched": self.frames_matched, "swap_frames": self.swap_frames,
                "evaluated_frames": self.evaluated_frames, "n_frames": self.n_frames, "n_tracks": self.n_tracks,
                "never_matched": [r for r, n in enumerate(self.frames_matched) if n == 0]}


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _diagonals(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1e-6)


def track_detections(frames: Sequence[FrameDetections], *, link_distance: float = LINK_DISTANCE,
                     max_gap: int = MAX_GAP) -> list[np.ndarray]:
    """Per frame, the track id of each detection (position-only linking; module docstring, step 3)."""
    from scipy.optimize import linear_sum_assignment

    last_box: dict[int, np.ndarray] = {}
    last_seen: dict[int, int] = {}
    out: list[np.ndarray] = []
    for t, det in enumerate(frames):
        ids = np.full(len(det), -1, np.int64)
        active = [k for k in last_box if t - last_seen[k] <= max_gap]
        if len(det) and active:
            prev = np.stack([last_box[k] for k in active])
            dist = np.linalg.norm(_centres(det.boxes)[:, None] - _centres(prev)[None], axis=-1)
            dist = dist / np.maximum(_diagonals(det.boxes)[:, None], _diagonals(prev)[None])
            rows, cols = linear_sum_assignment(dist)
            for i, j in zip(rows, cols):
                if dist[i, j] < link_distance:
                    ids[i] = active[j]
        for i in range(len(det)):
            if ids[i] < 0:
                ids[i] = len(last_box)
            last_box[int(ids[i])] = det.boxes[i]
            last_seen[int(ids[i])] = t
        out.append(ids)
    return out


def match_subjects(frames: Sequence[FrameDetections], references: np.ndarray, **track_kwargs) -> MultiSubjectResult:
    """Per-subject similarity and identity swaps of a video (module docstring). ``references``: (R, D) normalised
    embeddings, in the order of the video's references."""
    from scipy.optimize import linear_sum_assignment

    refs = np.asarray(references, np.float64)
    r_count = len(refs)
    tracks = track_detections(frames, **track_kwargs)
    sims: list[list[float]] = [[] for _ in range(r_count)]
    matches: list[list[tuple[int, int, int]]] = []
    n_tracks = int(max((ids.max() for ids in tracks if len(ids)), default=-1)) + 1
    counts = np.zeros((max(n_tracks, 1), r_count), np.int64)
    for det, ids in zip(frames, tracks):
        pairs: list[tuple[int, int, int]] = []
        if len(det) and r_count:
            sim = det.embeddings @ refs.T
            rows, cols = linear_sum_assignment(-sim)
            for i, r in zip(rows, cols):
                pairs.append((int(i), int(ids[i]), int(r)))
                sims[r].append(float(sim[i, r]))
                counts[ids[i], r] += 1
        matches.append(pairs)
    dominant: dict[int, int] = {}
    if n_tracks:
        rows, cols = linear_sum_assignment(-counts)
        dominant = {int(k): int(r) for k, r in zip(rows, cols) if counts[k, r] > 0}
    swap_frames, evaluated = [], 0
    for t, pairs in enumerate(matches):
        judged = [(k, r) for _, k, r in pairs if k in dominant]
        if not judged:
            continue
        evaluated += 1
        if any(dominant[k] != r for k, r in judged):
            swap_frames.append(t)
    return MultiSubjectResult([float(np.mean(s)) if s else None for s in sims], [len(s) for s in sims],
                              swap_frames, evaluated, len(frames), n_tracks, dominant, matches)


def multi_subject_metrics(result: MultiSubjectResult, names: Sequence[str] = MULTI_METRICS,
                          **extra_detail) -> dict[str, MetricResult]:
    """The registered metrics from a :class:`MultiSubjectResult`."""
    detail = {**result.detail(), **extra_detail}
    out: dict[str, MetricResult] = {}
    matched = [v for v in result.per_subject if v is not None]
    nothing = f"no subject detected in any of the {result.n_frames} frames"
    if "multi_sim" in names:
        out["multi_sim"] = MetricResult.ok(float(np.mean(matched)), **detail) if matched else \
            MetricResult.skipped(nothing, **detail)
    if "id_swap" in names:
        rate = result.swap_rate
        out["id_swap"] = MetricResult.ok(rate, **detail) if rate is not None else \
            MetricResult.skipped(nothing, **detail)
    return out


# ------------------------------------------------------------------------------------------------ detection
def crop_box(frame: np.ndarray, box: np.ndarray, margin: float = CROP_MARGIN) -> Image.Image:
    """The box grown by ``margin`` x its longer side, clipped to the frame, as an image."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    pad = margin * max(x1 - x0, y1 - y0)
    xa, ya = int(max(0, np.floor(x0 - pad))), int(max(0, np.floor(y0 - pad)))
    xb, yb = int(min(w, np.ceil(x1 + pad))), int(min(h, np.ceil(y1 + pad)))
    return Image.fromarray(np.ascontiguousarray(frame[ya:max(yb, ya + 1), xa:max(xb, xa + 1)]))


class ObjectSubjects:
    """Object detections: the vm_data detector, one prompt per reference (candidates pooled, duplicates removed by
    NMS, those scoring >= ``box_threshold`` kept), each box cropped and embedded with DINO."""

    def __init__(self, detector, dino, *, box_threshold: float = 0.35, nms_iou: float = 0.5):
        self.detector, self.dino = detector, dino
        self.box_threshold, self.nms_iou = box_threshold, nms_iou

    def detect(self, frames: np.ndarray, prompts: Sequence[str]) -> list[FrameDetections]:
        from vm_data.detect import Detections, normalize_prompt
        from vm_data.filters import distinct_subjects

        texts = sorted({normalize_prompt(p) for p in prompts})
        dets = self.detector.detect([f for f in frames for _ in texts], [p for _ in frames for p in texts])
        per_frame: list[np.ndarray] = []
        for t in range(len(frames)):
            chunk = dets[t * len(texts):(t + 1) * len(texts)]
            pooled = Detections(np.concatenate([d.boxes for d in chunk]), np.concatenate([d.scores for d in chunk]))
            per_frame.append(distinct_subjects(pooled, self.box_threshold, self.nms_iou).boxes)
        crops = [crop_box(frames[t], b) for t, boxes in enumerate(per_frame) for b in boxes]
        emb = np.asarray(self.dino.encode_images(crops), np.float64) if crops else np.zeros((0, 1))
        out, start = [], 0
        for boxes in per_frame:
            out.append(FrameDetections(boxes, emb[start:start + len(boxes)]))
            start += len(boxes)
        return out


class FaceSubjects:
    """Human detections: every face the Face Sim detector finds, embedded with ArcFace (as Face Sim's frames)."""

    def __init__(self, face):
        self.face = face

    def detect(self, frames: np.ndarray, prompts: Sequence[str]) -> list[FrameDetections]:
        return [FrameDetections(boxes, emb) for boxes, emb in self.face.frame_faces(frames)]


class MultiSubjectScorer:
    """``multi_sim`` and ``id_swap`` of one video; ``subjects_for(kind)`` gives the detector backend
    (:class:`FaceSubjects` for human, :class:`ObjectSubjects` for object). The references' embeddings come from
    the caller (:class:`~vm_eval.scorer.VideoScorer` caches them: ArcFace of the reference's face for human, DINO
    of the reference image for object), in the embedding space of that backend's detections."""

    def __init__(self, subjects_for, model_id: str = "multi-subject"):
        self.subjects_for = subjects_for
        self.model_id = model_id

    def score(self, frames: np.ndarray, reference_embeddings: np.ndarray, kind: str,
              names: Sequence[str] = MULTI_METRICS, prompts: Sequence[str] = ()) -> dict[str, MetricResult]:
        refs = np.asarray(reference_embeddings, np.float64)
        if len(refs) < 2:
            return {n: MetricResult.skipped(f"{len(refs)} reference(s): needs several") for n in names}
        backend = self.subjects_for(kind)
        prompts = list(prompts) or [DEFAULT_OBJECT_PROMPT] * len(refs)
        result = match_subjects(backend.detect(frames, prompts), refs)
        return multi_subject_metrics(result, names, backend=type(backend).__name__)
