"""The two-subject toy domain (ID routing, docs/multi_subject.md): two subjects of clearly different colours move in
opposite directions, each in its own lane (``domain.LANES``: right along the top, left along the bottom; up along
the left side, down along the right side), over the plain dark background.

A clip comes with one reference per subject (the subject alone on white, as for the single-subject toy) in a random
order (so nothing but appearance ties a reference to its subject), and one per-frame mask file per subject: a
`vm train` manifest of schema 2 (``subjects``, :class:`vm_data.clip_manifest.SubjectEntry`). The caption names the
pair of directions only ("two shapes moving left and right").

Scoring (:func:`score_pair`): each generated subject is cut out by its lane (the half of the frame its direction
keeps to), its colour fidelity error (``metrics.fidelity_error``) is measured against both references, the subjects
are matched to the references by the assignment with the smaller total error (Hungarian on 2 x 2), and a subject
is a swap when it is closer to the other reference than to the one it was matched to (two subjects that look like
the same reference, or blends).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .domain import BACKGROUND, SubjectRanges, ToySubject, random_subject, reference_image

logger = logging.getLogger(__name__)

PAIRS = (("right", "left"), ("up", "down"))  # directions of the two subjects; each keeps to its lane
PAIR_CAPTIONS = {PAIRS[0]: "two shapes moving left and right", PAIRS[1]: "two shapes moving up and down"}
MULTI_RANGES = SubjectRanges(radius=(0.14, 0.17), cell=(0.14, 0.17), travel=(0.28, 0.34), jitter=0.2, lanes=True)
MIN_COLOUR_DISTANCE = 120.0  # RGB distance between the two subjects' mean colours


@dataclass(frozen=True)
class SubjectPair:
    subjects: tuple[ToySubject, ToySubject]
    pair: int  # index into PAIRS

    @property
    def caption(self) -> str:
        return PAIR_CAPTIONS[PAIRS[self.pair]]

    def to_dict(self) -> dict:
        return {"pair": self.pair, "subjects": [s.to_dict() for s in self.subjects]}


def _mean_colour(s: ToySubject) -> np.ndarray:
    return (np.asarray(s.color1, float) + np.asarray(s.color2, float)) / 2


def random_pair(rng: np.random.Generator, size: int, num_frames: int, pair: int,
                ranges: SubjectRanges = MULTI_RANGES) -> SubjectPair:
    """Two subjects moving in the directions of ``PAIRS[pair]`` whose mean colours differ by at least
    :data:`MIN_COLOUR_DISTANCE` (the second redrawn until they do; after 200 tries the first one too: a mid-range
    first colour can leave no second one far enough, e.g. with seed 1. The first try is unchanged, so data drawn
    before this retry existed is the same)."""
    for _ in range(50):
        a = random_subject(rng, size, num_frames, direction=PAIRS[pair][0], ranges=ranges)
        for _ in range(200):
            b = random_subject(rng, size, num_frames, direction=PAIRS[pair][1], ranges=ranges)
            if np.linalg.norm(_mean_colour(a) - _mean_colour(b)) >= MIN_COLOUR_DISTANCE:
                return SubjectPair((a, b), pair)
    raise RuntimeError("could not draw two subjects of different colours")


def render_pair(pair: SubjectPair, num_frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T, H, W, 3), masks bool (2, T, H, W)); the second subject is drawn over the first where they
    overlap, and each mask is where its subject is visible."""
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    masks = np.zeros((2, num_frames, size, size), bool)
    bg = np.asarray(BACKGROUND, np.uint8)
    for t in range(num_frames):
        frame = np.broadcast_to(bg, (size, size, 3)).copy()
        for k, s in enumerate(pair.subjects):
            m = s.mask(t, size)
            tex = np.where(s.texture_map(t, size)[..., None], np.asarray(s.color1, np.uint8),
                           np.asarray(s.color2, np.uint8))
            frame = np.where(m[..., None], tex, frame)
            masks[k, t] = m
            masks[:k, t] &= ~m
        frames[t] = frame
    return frames, masks


def pair_references(pair: SubjectPair, num_frames: int, size: int) -> list[np.ndarray]:
    return [reference_image(s, num_frames, size) for s in pair.subjects]


def heldout_pairs(count: int, size: int, num_frames: int, seed: int) -> list[SubjectPair]:
    """Held-out pairs (stream ``[seed, 11]``, never used for training); pair kinds alternate."""
    rng = np.random.default_rng([seed, 11])
    return [random_pair(rng, size, num_frames, i % len(PAIRS)) for i in range(count)]


def make_multi_subject_dataset(out_dir: str | Path, num_clips: int, num_frames: int = 4, size: int = 32,
                               seed: int = 0) -> Path:
    """Write ``num_clips`` two-subject clips (GIF), one reference per subject (PNG), one mask file per subject
    (.npz, key ``masks``, uint8 (num_frames, H, W)) and a schema-2 manifest; returns the manifest. The references'
    order is random per clip."""
    from PIL import Image

    from vm_common.io_utils import atomic_output, atomic_write_text, dumps_row
    from vm_common.media import write_gif
    from vm_data.clip_manifest import SUBJECT_MASKS_KEY, ManifestRow, SubjectEntry

    out = Path(out_dir)
    for sub in ("videos", "references", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 10])
    rows = []
    for i in range(num_clips):
        pair = random_pair(rng, size, num_frames, i % len(PAIRS))
        frames, masks = render_pair(pair, num_frames, size)
        clip_id = f"pair_{i:05d}"
        write_gif(out / "videos" / f"{clip_id}.gif", frames, fps=8.0)
        order = rng.permutation(2).tolist()
        entries = []
        for slot, k in enumerate(order):
            name = f"s{slot}"
            ref_rel, mask_rel = f"references/{clip_id}_{name}.png", f"masks/{clip_id}_{name}.npz"
            with atomic_output(out / ref_rel) as tmp:
                Image.fromarray(reference_image(pair.subjects[k], num_frames, size)).save(tmp, format="PNG")
            with atomic_output(out / mask_rel) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **{SUBJECT_MASKS_KEY: masks[k].astype(np.uint8)})
            entries.append(SubjectEntry(name=name, references=[ref_rel], masks=mask_rel))
        rows.append(ManifestRow(
            clip_id=clip_id, video=f"videos/{clip_id}.gif", caption=pair.caption, references=entries[0].references,
            class_word="shape", status="kept", num_frames=num_frames, fps=8.0, width=size, height=size,
            subjects=entries, extra={"toy_pair": pair.to_dict(), "reference_order": order, "seed": seed}))
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(dumps_row(r.to_dict()) + "\n" for r in rows))
    logger.info("wrote %d two-subject toy clips to %s", num_clips, out)
    return manifest


def lane_region(video: np.ndarray, pair: int, subject: int) -> np.ndarray:
    """The video with everything outside subject ``subject``'s half of the frame set to the background."""
    out = np.array(video, copy=True)
    bg = np.asarray(BACKGROUND, np.float32) / 255.0 if out.dtype != np.uint8 else np.asarray(BACKGROUND, np.uint8)
    half = out.shape[1] // 2
    # PAIRS[0]: right (top lane) / left (bottom lane); PAIRS[1]: up (left lane) / down (right lane)
    if pair == 0:
        sl = (slice(None), slice(half, None)) if subject == 0 else (slice(None), slice(None, half))
    else:
        sl = (slice(None), slice(None), slice(half, None)) if subject == 0 else (slice(None), slice(None),
                                                                                  slice(None, half))
    out[sl] = bg
    return out


def fidelity_error(frames: np.ndarray, reference: np.ndarray, seed: int = 0, samples: int = 256) -> float:
    """:func:`vm_model.toy.metrics.fidelity_error` (the same pixels, the same seeded samples, the same exact optimal
    assignment, so the same number up to float rounding), with scipy's assignment solver: the experiment scores
    four of these per generated pair."""
    from scipy.optimize import linear_sum_assignment

    from .assignment import pairwise_distances
    from .metrics import generated_subject_pixels, reference_subject_pixels

    a, b = generated_subject_pixels(frames), reference_subject_pixels(reference)
    rng = np.random.default_rng(seed)
    sa = a[rng.choice(len(a), samples, replace=len(a) < samples)]
    sb = b[rng.choice(len(b), samples, replace=len(b) < samples)]
    cost = pairwise_distances(sa, sb)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def score_pair(video: np.ndarray, pair: SubjectPair, references: list[np.ndarray], seed: int) -> list[dict]:
    """Per generated subject (by lane): fidelity error against both references, its matched ("own") reference,
    own / other error and whether it is a swap (module docstring)."""
    errors = np.array([[fidelity_error(lane_region(video, pair.pair, s), references[r], seed=seed + 2 * s + r)
                        for r in range(2)] for s in range(2)])
    own = [0, 1] if errors[0, 0] + errors[1, 1] <= errors[0, 1] + errors[1, 0] else [1, 0]
    rows = []
    for s in range(2):
        mine, other = errors[s, own[s]], errors[s, 1 - own[s]]
        rows.append({"subject": s, "direction": pair.subjects[s].direction, "errors": errors[s].tolist(),
                     "own_reference": own[s], "own_error": float(mine), "other_error": float(other),
                     "swap": bool(mine > other)})
    return rows
