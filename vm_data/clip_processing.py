"""Per-clip work of `vm preprocess-dataset`: probe and decode (:func:`prepare_clip`, run in loader workers),
then highlight, decide and write references and masks (:func:`finish_clips`, run where the models are).

Neither function raises for a bad clip: every clip ends as exactly one :class:`ManifestRow` - ``kept``,
``rejected`` with a reason from :mod:`vm_data.filters`, or ``error`` with the message. A bug in our code is not a
bad clip: the :class:`~vm_common.error_policy.ErrorPolicy` passed in decides (``raise``: it propagates; ``record``:
an ``error`` row of kind ``internal_error``, which makes `vm preprocess-dataset` exit 1 saying how many).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vm_common.error_policy import INTERNAL_ERROR, ErrorPolicy, resolve_policy
from vm_common.io_utils import atomic_output
from vm_common.safe_names import path_inside
from vm_common.media import ImageLoadError, MediaError, VideoInfo, load_image, video_info
from vm_common.status import ERROR, KEPT, OK, REJECTED

from . import filters
from .clip_manifest import ManifestRow
from .detect import normalize_prompt
from .highlight import HighlightConfig, HighlightResult, SubjectHighlighter
from .reference import make_reference, mask_box
from .sources import ClipSpec
from .video import read_frames, uniform_indices

logger = logging.getLogger(__name__)

# error rows carry the message as `reason` and one of these kinds in extra["error_kind"]
UNREADABLE_VIDEO = "unreadable_video"
DECODE_FAILED = "decode_failed"
BAD_PROVIDED_REFERENCE = "bad_provided_reference"
MODEL_FAILED = "model_failed"
BAD_INPUT_ROW = "bad_input_row"  # the input table's line could not be read (vm_common.input_tables)
PROCESSING_FAILED = "processing_failed"  # an unexpected failure that is not a bug (OSError, a library's error)
INTERNAL = INTERNAL_ERROR  # a bug in our code, recorded under the record policy


@dataclass
class ClipRules:
    """What is needed of a clip (the video-level filters) and how frame results become a clip decision."""

    num_references: int = 4
    min_frames: int = 16
    min_duration: float = 1.0
    min_short_side: int = 256
    max_long_side: int = 4096
    require_caption: bool = True
    min_references: int = 1
    multi_subject_frames: int = 1
    person_prompt: str = "head"
    default_class_word: str | None = None
    subjects: tuple[str, ...] = ()  # multi-subject clips: one detector prompt per subject (vm_data.multi_subject)
    detect_every: int = 1  # multi-subject: detector on every N-th frame, boxes interpolated between
    mask_side: int = 256  # multi-subject: longer side of the stored per-frame masks (0: the video's size)


@dataclass
class Prepared:
    """A clip after probing and decoding: either a final ``row`` or frames waiting for the models."""

    spec: ClipSpec
    row: ManifestRow | None = None
    info: VideoInfo | None = None
    frames: np.ndarray | None = None
    indices: list[int] = field(default_factory=list)
    warning: str | None = None


def _base_row(spec: ClipSpec, info: VideoInfo | None, rules: ClipRules, **kwargs) -> ManifestRow:
    extra = dict(spec.extra)
    extra.update(kwargs.pop("extra", {}) or {})
    return ManifestRow(
        clip_id=spec.clip_id, video=spec.video, caption=spec.caption or "",
        class_word=spec.class_word or rules.default_class_word,
        num_frames=info.num_frames if info else None, fps=info.fps if info else None,
        width=info.width if info else None, height=info.height if info else None, extra=extra, **kwargs,
    )


def error_row(spec: ClipSpec, message: str, kind: str, info: VideoInfo | None = None,
              rules: ClipRules | None = None) -> ManifestRow:
    return _base_row(spec, info, rules or ClipRules(), status=ERROR, reason=message, extra={"error_kind": kind})


def _failure_kind(exc: Exception, policy: ErrorPolicy, where: str) -> str:
    """The error kind of an unexpected exception: a bug raises (policy ``raise``) or is ``internal_error``."""
    if policy.check(exc, where):
        return INTERNAL
    logger.warning("unexpected failure %s: %s: %s", where, type(exc).__name__, exc)
    return PROCESSING_FAILED


def prepare_clip(spec: ClipSpec, rules: ClipRules, policy: ErrorPolicy | None = None) -> Prepared:
    """Caption and container checks, then decode the K sampled frames only. Never raises for a bad clip (a bug
    raises under the ``raise`` policy)."""
    if spec.input_error:
        return Prepared(spec, row=error_row(spec, spec.input_error, BAD_INPUT_ROW, rules=rules))
    try:
        return _prepare(spec, rules)
    except Exception as exc:  # noqa: BLE001 - a clip must become a row; the policy decides about bugs
        kind = _failure_kind(exc, resolve_policy(policy), f"preparing {spec.video}")
        return Prepared(spec, row=error_row(spec, f"{type(exc).__name__}: {exc}", kind, rules=rules))


def _prepare(spec: ClipSpec, rules: ClipRules) -> Prepared:
    try:
        info = video_info(spec.video)
    except MediaError as exc:
        return Prepared(spec, row=error_row(spec, str(exc), UNREADABLE_VIDEO, rules=rules))
    if rules.require_caption and not spec.caption:
        return Prepared(spec, row=_base_row(spec, info, rules, status=REJECTED, reason=filters.MISSING_CAPTION,
                                            detail=f"no caption for {spec.video}"))
    verdict = filters.check_video(info.num_frames, info.fps, info.width, info.height,
                                  min_frames=max(rules.min_frames, 1), min_duration=rules.min_duration,
                                  min_short_side=rules.min_short_side, max_long_side=rules.max_long_side)
    if not verdict.keep:
        return Prepared(spec, row=_base_row(spec, info, rules, status=REJECTED, reason=verdict.reason,
                                            filter_score=verdict.score, detail=verdict.detail))
    if rules.subjects:  # multi-subject: every frame gets masks (provided references / masks are not used)
        indices = list(range(info.num_frames))
    elif spec.reference_images:
        return Prepared(spec, info=info)  # provided references: nothing to decode
    else:
        indices = [m.frame for m in spec.provided_masks] if spec.provided_masks else \
            uniform_indices(info.num_frames, rules.num_references)
    try:
        decoded = read_frames(spec.video, indices)
    except (MediaError, ValueError) as exc:
        return Prepared(spec, row=error_row(spec, str(exc), DECODE_FAILED, info, rules))
    if decoded.missing:
        # a clip whose sampled frames cannot all be decoded would fail again when training reads it
        return Prepared(spec, row=error_row(spec, f"{spec.video}: {decoded.warning}", DECODE_FAILED, info, rules))
    return Prepared(spec, info=info, frames=decoded.frames, indices=decoded.indices, warning=decoded.warning)


# --------------------------------------------------------------------------------------------------- outputs
def output_paths(out_dir: Path, clip_id: str, k: int) -> tuple[str, str]:
    """(reference, mask) paths relative to ``out_dir``, spread over 256 sub-folders. ``clip_id`` is a
    :func:`~vm_data.sources.safe_id`; a path that would still leave ``out_dir`` is refused."""
    bucket = hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:2]
    ref, mask = f"references/{bucket}/{clip_id}_{k}.png", f"masks/{bucket}/{clip_id}_{k}.png"
    path_inside(out_dir, ref), path_inside(out_dir, mask)
    return ref, mask


def _save_png(path: Path, image: Image.Image) -> None:
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


def _save_mask(path: Path, mask: np.ndarray) -> None:
    _save_png(path, Image.fromarray(np.asarray(mask, bool).astype(np.uint8) * 255, mode="L"))


def prompt_for(spec: ClipSpec, rules: ClipRules) -> str:
    word = spec.class_word or rules.default_class_word or rules.person_prompt
    return normalize_prompt(word)


def finish_clips(batch: list[Prepared], highlighter: SubjectHighlighter, rules: ClipRules,
                 out_dir: Path, policy: ErrorPolicy | None = None) -> list[ManifestRow]:
    """Run the models over all frames of the batch at once, decide each clip, write its files. Never raises for a
    bad clip (a bug raises under the ``raise`` policy)."""
    policy = resolve_policy(policy)
    rows: list[ManifestRow | None] = [p.row for p in batch]
    frames, owners, prompts = [], [], []
    for i, p in enumerate(batch):
        if rows[i] is not None:
            continue
        if rules.subjects:
            rows[i] = _guard(p, rules, lambda p=p: decide_subjects(p, highlighter, rules, out_dir), policy)
            continue
        if p.spec.reference_images or p.spec.provided_masks:
            rows[i] = _guard(p, rules, lambda p=p: _provided_references(p, highlighter.config, rules, out_dir),
                             policy)
            continue
        for frame in p.frames:
            frames.append(frame)
            owners.append(i)
            prompts.append(prompt_for(p.spec, rules))
    if frames:
        try:
            results = highlighter.highlight_batch(frames, prompts)
        except Exception as exc:  # noqa: BLE001 - the policy decides about bugs
            internal = _failure_kind(exc, policy, "highlighting a batch") == INTERNAL
            results = [HighlightResult(ERROR, reason=f"{type(exc).__name__}: {exc}", internal=internal)
                       for _ in frames]
        per_clip: dict[int, list[HighlightResult]] = {}
        for owner, res in zip(owners, results):
            per_clip.setdefault(owner, []).append(res)
        for i, res in per_clip.items():
            rows[i] = _guard(batch[i], rules, lambda i=i, res=res: decide(batch[i], res, rules, out_dir), policy)
    return [r for r in rows if r is not None]


def _guard(p: Prepared, rules: ClipRules, fn, policy: ErrorPolicy) -> ManifestRow:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the policy decides about bugs
        kind = _failure_kind(exc, policy, f"finishing {p.spec.video}")
        return error_row(p.spec, f"{type(exc).__name__}: {exc}", kind, p.info, rules)


def decide(p: Prepared, results: list[HighlightResult], rules: ClipRules, out_dir: Path) -> ManifestRow:
    """Turn the per-frame results of one clip into its row (and write references/masks of a kept clip).

    Rules, in order: a frame hit a bug in the highlighter (recorded under the record policy) -> ``error`` of kind
    ``internal_error``; every frame failed with an error -> ``error``; at least ``multi_subject_frames`` frames show
    more than one subject -> ``rejected``/``multiple_subjects``; at least ``min_references`` frames ``ok`` ->
    ``kept`` with those frames as references; otherwise ``rejected`` with the most frequent frame status.
    """
    frame_log = [{"index": idx, "status": r.status, "score": r.score, "filter_score": r.filter_score,
                  "box": r.box, "detail": r.reason} for idx, r in zip(p.indices, results)]
    extra = {"frames": frame_log}
    if p.warning:
        extra["decode_warning"] = p.warning
    internal = [r for r in results if r.internal]
    if internal:  # a bug in the highlighter (recorded under the record policy): never mistaken for bad frames
        return _base_row(p.spec, p.info, rules, status=ERROR, reason=internal[0].reason or ERROR,
                         extra={**extra, "error_kind": INTERNAL})
    failed = [r for r in results if r.status in (ERROR, filters.BAD_IMAGE)]
    if len(failed) == len(results):
        return _base_row(p.spec, p.info, rules, status=ERROR, reason=failed[0].reason or failed[0].status,
                         extra={**extra, "error_kind": MODEL_FAILED})
    multiple = [r for r in results if r.status == filters.MULTIPLE_SUBJECTS]
    if len(multiple) >= max(1, rules.multi_subject_frames):
        score = max(float(r.filter_score or 0.0) for r in multiple)
        return _base_row(p.spec, p.info, rules, status=REJECTED, reason=filters.MULTIPLE_SUBJECTS,
                         filter_score=score, detail=f"{len(multiple)} of {len(results)} frames: {multiple[0].reason}",
                         extra=extra)
    ok = [(idx, r) for idx, r in zip(p.indices, results) if r.status == OK]
    if len(ok) >= max(1, rules.min_references):
        row = _base_row(p.spec, p.info, rules, status=KEPT, filter_score=max(float(r.score or 0) for _, r in ok),
                        extra={**extra, "mask_scores": [r.mask_score for _, r in ok]})
        for k, (idx, r) in enumerate(ok):
            ref_rel, mask_rel = output_paths(out_dir, p.spec.clip_id, k)
            _save_png(out_dir / ref_rel, r.image)
            _save_mask(out_dir / mask_rel, r.mask)
            row.references.append(ref_rel)
            row.masks.append(mask_rel)
            row.boxes.append([float(v) for v in r.box])
            row.scores.append(float(r.score))
            row.mask_area.append(float(r.mask_area))
            row.frame_indices.append(int(idx))
        return row
    counts = Counter(r.status for r in results if r.status not in (OK, ERROR))
    order = {name: i for i, name in enumerate(filters.REASONS)}
    reason = min(counts, key=lambda s: (-counts[s], order.get(s, len(order)))) if counts else filters.NO_DETECTION
    same = [r for r in results if r.status == reason]
    score = max((float(r.filter_score) for r in same if r.filter_score is not None), default=None)
    detail = f"{len(same)} of {len(results)} frames {reason}" + (f"; e.g. {same[0].reason}" if same and same[0].reason else "")
    return _base_row(p.spec, p.info, rules, status=REJECTED, reason=reason, filter_score=score, detail=detail,
                     extra=extra)


def decide_subjects(p: Prepared, highlighter: SubjectHighlighter, rules: ClipRules, out_dir: Path) -> ManifestRow:
    """The row of a multi-subject clip (``rules.subjects``; :mod:`vm_data.multi_subject`): kept with one
    :class:`~vm_data.clip_manifest.SubjectEntry` per subject (its references and per-frame mask file; the row-level
    references, boxes, scores are the first subject's), or rejected as ``<reason>:<subject>``: a subject seen twice
    (a second instance) in at least ``multi_subject_frames`` sampled frames -> ``multiple_subjects:<subject>``;
    else the first subject not found in at least ``min_references`` sampled frames, with its most frequent frame
    status."""
    from .multi_subject import highlight_clip, write_subject

    sample = uniform_indices(len(p.frames), rules.num_references)
    outcomes = highlight_clip(p.frames, rules.subjects, sample, highlighter.detector, highlighter.segmenter,
                              highlighter.config, detect_every=rules.detect_every)
    extra = {"subject_frames": {o.name: o.frames for o in outcomes}}
    if p.warning:
        extra["decode_warning"] = p.warning
    for o in outcomes:  # as for one subject: a second instance in enough sampled frames rejects the clip
        multiple = [f for f in o.frames if f["status"] == filters.MULTIPLE_SUBJECTS]
        if len(multiple) >= max(1, rules.multi_subject_frames):
            return _base_row(p.spec, p.info, rules, status=REJECTED, reason=f"{filters.MULTIPLE_SUBJECTS}:{o.name}",
                             filter_score=max(float(f["second_score"] or 0.0) for f in multiple),
                             detail=f"{o.name}: {len(multiple)} of {len(o.frames)} sampled frames show a second "
                                    f"instance ({multiple[0]['detail']})", extra=extra)
    need = max(1, rules.min_references)
    missing = [o for o in outcomes if len(o.usable) < need]
    if missing:
        first = missing[0]
        same = [f for f in first.frames if f["status"] == first.reason()]
        score = max((float(f["score"]) for f in same if f["score"] is not None), default=None)
        detail = "; ".join(f"{o.name}: {len(o.usable)} of {len(o.frames)} sampled frames usable, need {need} "
                           f"(mostly {o.reason()})" for o in missing)
        return _base_row(p.spec, p.info, rules, status=REJECTED, reason=f"{first.reason()}:{first.name}",
                         filter_score=score, detail=detail, extra=extra)
    entries = [write_subject(out_dir, p.spec.clip_id, s, o, p.frames, highlighter.config, rules.mask_side)
               for s, o in enumerate(outcomes)]
    row = _base_row(p.spec, p.info, rules, status=KEPT, extra=extra,
                    filter_score=min(max(u[2] for u in o.usable) for o in outcomes))
    row.subjects = entries
    row.references = list(entries[0].references)
    row.boxes = [list(b) for b in entries[0].boxes]
    row.scores = list(entries[0].scores)
    row.frame_indices = list(entries[0].frame_indices)
    row.mask_area = [float(u[4]) for u in outcomes[0].usable]
    return row


def _provided_references(p: Prepared, config: HighlightConfig, rules: ClipRules, out_dir: Path) -> ManifestRow:
    """Reference images that ship with the dataset are used as they are; provided masks are applied as they are."""
    row = _base_row(p.spec, p.info, rules, status=KEPT, extra={"reference_source": "provided"})
    if p.spec.reference_images:
        for k, src in enumerate(p.spec.reference_images):
            try:
                image = load_image(src)
            except ImageLoadError as exc:
                return error_row(p.spec, f"provided reference: {exc}", BAD_PROVIDED_REFERENCE, p.info, rules)
            ref_rel, _ = output_paths(out_dir, p.spec.clip_id, k)
            _save_png(out_dir / ref_rel, image)
            row.references.append(ref_rel)
        return row
    for k, (pm, frame, idx) in enumerate(zip(p.spec.provided_masks, p.frames, p.indices)):
        try:
            with Image.open(pm.mask) as im:
                mask = np.asarray(im.convert("L")) > 127
        except (OSError, ValueError) as exc:
            return error_row(p.spec, f"provided mask {pm.mask}: {exc}", BAD_PROVIDED_REFERENCE, p.info, rules)
        if mask.shape != frame.shape[:2]:
            return error_row(p.spec, f"provided mask {pm.mask} is {mask.shape[1]}x{mask.shape[0]} but frame {idx} is "
                             f"{frame.shape[1]}x{frame.shape[0]}", BAD_PROVIDED_REFERENCE, p.info, rules)
        box = mask_box(mask)
        if box is None:
            return _base_row(p.spec, p.info, rules, status=REJECTED, reason=filters.EMPTY_MASK, filter_score=0.0,
                             detail=f"provided mask {pm.mask} is empty")
        ref_rel, mask_rel = output_paths(out_dir, p.spec.clip_id, k)
        _save_png(out_dir / ref_rel, make_reference(frame, mask, margin=config.margin, square=config.square,
                                                    size=config.output_size or None))
        _save_mask(out_dir / mask_rel, mask)
        row.references.append(ref_rel)
        row.masks.append(mask_rel)
        row.boxes.append([float(v) for v in (pm.box or box)])
        row.scores.append(1.0)
        row.mask_area.append(float(mask.mean()))
        row.frame_indices.append(int(idx))
    return row
