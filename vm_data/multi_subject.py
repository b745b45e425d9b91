"""Several subjects per clip (`vm preprocess-dataset --subjects "dog.,cat."`): per subject, reference images and a
mask for every frame of the clip (training manifest schema 2, :mod:`vm_data.clip_manifest`).

Per clip (all frames decoded):

1. Detection, one detector prompt per subject, on the key frames: every ``detect_every``-th frame, the last frame
   and the frames sampled for references (``detect_every=1``: every frame).
2. One box per subject per key frame, jointly: the candidates of all prompts are pooled and boxes of different
   prompts that overlap (IoU >= ``nms_iou``, or one mostly inside the other) are merged into one object, which can
   be only one subject; objects are assigned to subjects by Hungarian assignment on the detector scores
   (:func:`scipy.optimize.linear_sum_assignment`), so an object that answers to "dog." and to "cat." is never both.
   An assignment scoring under ``box_threshold`` leaves the subject not found in that frame.
3. Frames between key frames get the box linearly interpolated between the neighbouring key frames' boxes when
   both have one (the cheap tracking; none otherwise: an empty mask).
4. The segmenter (SAM) segments every frame from those boxes: one image pass per frame for all its subjects.
5. References: on the frames sampled for references (the same K frames as single-subject preprocessing), a subject's
   frame is usable when its box passes the same filters as today (no second instance of the subject scoring >=
   the multi-subject threshold, box area, mask area); its reference is made from its mask exactly as the subject
   highlight makes it (:func:`vm_data.reference.make_reference`). A subject is found when at least
   ``min_references`` of those frames are usable; a clip is kept when every subject is found, else rejected with
   reason ``<frame reason>:<subject>`` (e.g. ``no_detection:cat``) for the first subject not found
   (:func:`vm_data.clip_processing.decide_subjects`; a subject seen twice in ``multi_subject_frames`` sampled
   frames: ``multiple_subjects:<subject>``).

Masks are stored downscaled to ``mask_side`` on the longer side (nearest neighbour), uint8 0/1.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from vm_common.io_utils import atomic_output
from vm_common.safe_names import path_inside, safe_component
from vm_common.status import OK

from . import filters
from .clip_manifest import SUBJECT_MASKS_KEY, SubjectEntry
from .detect import Detections, normalize_prompt
from .highlight import HighlightConfig
from .reference import make_reference


def parse_subjects(values: Sequence[str]) -> list[str]:
    """``["dog.,cat."]`` or ``["dog.", "cat."]`` -> detector prompts ``["dog.", "cat."]`` (normalised, unique)."""
    prompts = []
    for value in values or ():
        for part in str(value).split(","):
            if part.strip():
                prompts.append(normalize_prompt(part))
    names = [subject_name(p) for p in prompts]
    if len(set(names)) != len(names):
        raise ValueError(f"--subjects names a subject twice: {names}")
    return prompts


def subject_name(prompt: str) -> str:
    """The subject's name in the manifest: its prompt without the trailing period ("dog." -> "dog")."""
    return normalize_prompt(prompt).rstrip(".").strip()


def subject_paths(out_dir: Path, clip_id: str, index: int, name: str, num_references: int) -> tuple[list[str], str]:
    """(reference paths, mask file path) of subject ``index`` of a clip, relative to ``out_dir``: one folder per clip
    under the 256 buckets (``references/xx/CLIP/0-dog_K.png``, ``masks/xx/CLIP/0-dog.npz``). The subject's index
    keeps names unique whatever the names are; a path that would leave ``out_dir`` is refused."""
    bucket = hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:2]
    stem = f"{index}-{safe_component(name, 'subject')}"
    refs = [f"references/{bucket}/{clip_id}/{stem}_{k}.png" for k in range(num_references)]
    mask = f"masks/{bucket}/{clip_id}/{stem}.npz"
    for rel in (*refs, mask):
        path_inside(out_dir, rel)
    return refs, mask


def save_subject_masks(path: Path, masks: np.ndarray) -> None:
    """``masks`` (T, H, W) -> ``path`` (.npz, key ``masks``, uint8 0/1), written atomically."""
    arr = np.ascontiguousarray(np.asarray(masks).astype(bool).astype(np.uint8))
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{SUBJECT_MASKS_KEY: arr})


def downscale_masks(masks: np.ndarray, side: int) -> np.ndarray:
    """(T, H, W) bool -> longer side ``side`` (nearest neighbour; aspect kept); ``side`` 0 or larger: unchanged."""
    import cv2

    t, h, w = masks.shape
    if not side or max(h, w) <= side:
        return masks.astype(bool)
    scale = side / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.empty((t, nh, nw), bool)
    for i in range(t):
        out[i] = cv2.resize(masks[i].astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
    return out


# ----------------------------------------------------------------------------------------------- assignment
def _same_object(a: np.ndarray, b: np.ndarray, nms_iou: float) -> bool:
    """Either box is the same subject as the other (:func:`vm_data.filters.same_subject`, both ways)."""
    return bool(filters.same_subject(a, b[None], nms_iou)[0] or filters.same_subject(b, a[None], nms_iou)[0])


@dataclass
class FrameAssignment:
    """One key frame: per subject its box (or None), detector score, and the frame's status for it."""

    boxes: list[np.ndarray | None]
    scores: list[float]
    statuses: list[str]
    details: list[str | None]
    second: list[float | None]  # per subject: the best score of another instance not given to any subject


def assign_subjects(dets: Sequence[Detections], width: int, height: int, cfg: HighlightConfig) -> FrameAssignment:
    """One box per subject in one frame from each subject's candidates (module docstring, step 2)."""
    from scipy.optimize import linear_sum_assignment

    r = len(dets)
    objects: list[np.ndarray] = []  # representative box of each pooled object
    scores: list[np.ndarray] = []  # per object: best score per subject
    boxes_of: list[list[np.ndarray | None]] = []  # per object: best box per subject
    for s, det in enumerate(dets):
        for box, score in zip(det.boxes, det.scores):
            if score < cfg.candidate_threshold:
                continue
            for o, rep in enumerate(objects):
                if _same_object(box, rep, cfg.nms_iou):
                    break
            else:
                objects.append(box)
                scores.append(np.zeros(r, np.float64))
                boxes_of.append([None] * r)
                o = len(objects) - 1
            if score > scores[o][s]:
                scores[o][s] = float(score)
                boxes_of[o][s] = box
    out = FrameAssignment([None] * r, [0.0] * r, [filters.NO_DETECTION] * r, [None] * r, [None] * r)
    for s, det in enumerate(dets):
        best = float(det.scores[0]) if len(det) else 0.0
        out.details[s] = f"best score {best:.3f} < box threshold {cfg.box_threshold}"
        out.scores[s] = best
    if not objects:
        return out
    matrix = np.stack(scores)  # (objects, subjects)
    rows, cols = linear_sum_assignment(-matrix)
    taken = set()
    for o, s in zip(rows, cols):
        if matrix[o, s] < cfg.box_threshold:
            continue
        taken.add(o)
        box = boxes_of[o][s]
        out.boxes[s], out.scores[s] = np.asarray(box, np.float32), float(matrix[o, s])
        area = max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1])) / max(1.0, float(width * height))
        if area < cfg.min_box_area:
            out.statuses[s], out.details[s] = filters.SUBJECT_TOO_SMALL, f"box covers {area:.4f} of the frame < " \
                                                                         f"{cfg.min_box_area}"
        else:
            out.statuses[s], out.details[s] = OK, None
    for s in range(r):
        others = [float(matrix[o, s]) for o in range(len(objects)) if o not in taken]
        second = max(others, default=0.0)
        out.second[s] = second
        if out.statuses[s] == OK and second >= cfg.multi_threshold:
            out.statuses[s] = filters.MULTIPLE_SUBJECTS
            out.details[s] = f"a second instance scores {second:.3f} >= {cfg.multi_threshold}"
    return out


def interpolate_boxes(keys: list[int], boxes: dict[int, np.ndarray | None], num_frames: int) -> list[np.ndarray | None]:
    """A box for every frame: the key frame's own, else linear between the neighbouring key frames when both have
    one, else None."""
    keys = sorted(keys)
    out: list[np.ndarray | None] = [None] * num_frames
    for t in range(num_frames):
        if t in boxes:
            out[t] = boxes[t]
            continue
        j = int(np.searchsorted(keys, t))
        if 0 < j < len(keys):
            a, b = keys[j - 1], keys[j]
            if boxes.get(a) is not None and boxes.get(b) is not None:
                w = (t - a) / (b - a)
                out[t] = ((1 - w) * boxes[a] + w * boxes[b]).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------------ per clip
@dataclass
class SubjectOutcome:
    name: str
    prompt: str
    masks: np.ndarray  # (T, H, W) bool, source resolution
    frames: list[dict] = field(default_factory=list)  # per sampled frame: index, status, score, box, detail
    usable: list[tuple[int, np.ndarray, float, list[float], float]] = field(default_factory=list)
    # (frame index, mask, score, box, mask area) of the sampled frames that pass

    def reason(self) -> str:
        """The most frequent failing status of the sampled frames (ties: the order of filters.REASONS)."""
        counts = Counter(f["status"] for f in self.frames if f["status"] != OK)
        order = {name: i for i, name in enumerate(filters.REASONS)}
        return min(counts, key=lambda s: (-counts[s], order.get(s, len(order)))) if counts else filters.NO_DETECTION


def highlight_clip(frames: np.ndarray, prompts: Sequence[str], sample_indices: Sequence[int], detector, segmenter,
                   cfg: HighlightConfig, *, detect_every: int = 1) -> list[SubjectOutcome]:
    """Per subject: masks for every frame and the filter outcome of every sampled frame (module docstring)."""
    t_count, height, width = frames.shape[:3]
    r = len(prompts)
    keys = sorted(set(range(0, t_count, max(1, detect_every))) | {t_count - 1} | set(int(i) for i in sample_indices))
    images = [frames[t] for t in keys for _ in prompts]
    texts = [p for _ in keys for p in prompts]
    dets = detector.detect(images, texts)
    per_key = {t: assign_subjects(dets[i * r:(i + 1) * r], width, height, cfg) for i, t in enumerate(keys)}
    # frames with a filter failure still give their box to the masks (a small or doubled subject is still there)
    boxes = [interpolate_boxes(keys, {t: per_key[t].boxes[s] for t in keys}, t_count) for s in range(r)]
    frame_boxes = [np.stack([boxes[s][t] for s in range(r) if boxes[s][t] is not None]).reshape(-1, 4)
                   if any(boxes[s][t] is not None for s in range(r)) else np.zeros((0, 4), np.float32)
                   for t in range(t_count)]
    todo = [t for t in range(t_count) if len(frame_boxes[t])]
    segs = dict(zip(todo, segmenter.segment([frames[t] for t in todo], [frame_boxes[t] for t in todo]))) if todo else {}
    masks = np.zeros((r, t_count, height, width), bool)
    for t, seg in segs.items():
        present = [s for s in range(r) if boxes[s][t] is not None]
        for j, s in enumerate(present):
            masks[s, t] = seg.masks[j]
    outcomes = [SubjectOutcome(subject_name(p), p, masks[s]) for s, p in enumerate(prompts)]
    for idx in sample_indices:
        a = per_key[int(idx)]
        for s, out in enumerate(outcomes):
            status, detail = a.statuses[s], a.details[s]
            area = float(masks[s, idx].mean())
            if status == OK:
                verdict = filters.check_mask(masks[s, idx], cfg.min_mask_area)
                if not verdict.keep:
                    status, detail = filters.EMPTY_MASK, verdict.detail
            box = None if a.boxes[s] is None else [float(v) for v in a.boxes[s]]
            out.frames.append({"index": int(idx), "status": status, "score": a.scores[s], "box": box,
                               "second_score": a.second[s], "mask_area": area, "detail": detail})
            if status == OK:
                out.usable.append((int(idx), masks[s, idx], a.scores[s], box, area))
    return outcomes


def write_subject(out_dir: Path, clip_id: str, index: int, outcome: SubjectOutcome, frames: np.ndarray,
                  cfg: HighlightConfig, mask_side: int) -> SubjectEntry:
    """Write one found subject's references and mask file; its manifest entry."""
    refs, mask_rel = subject_paths(out_dir, clip_id, index, outcome.name, len(outcome.usable))
    entry = SubjectEntry(name=outcome.name, masks=mask_rel)
    for rel, (idx, mask, score, box, _) in zip(refs, outcome.usable):
        image = make_reference(frames[idx], mask, margin=cfg.margin, square=cfg.square, size=cfg.output_size or None)
        with atomic_output(out_dir / rel) as tmp:
            image.save(tmp, format="PNG")
        entry.references.append(rel)
        entry.boxes.append(box)
        entry.scores.append(float(score))
        entry.frame_indices.append(int(idx))
    save_subject_masks(out_dir / mask_rel, downscale_masks(outcome.masks, mask_side))
    return entry
