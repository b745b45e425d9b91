"""Copy-paste: how much a video shows its reference's own pixels in the reference's own pose (no judge, no weights).

Identity metrics (Face Sim, CLIP-I, DINO-I) reward a video that pastes the reference photo into every frame as
much as one that re-imagines the subject in new poses, expressions and framings; they cannot tell the two apart.
This measure can: a pasted reference recurs in the frames up to a scale and a position, while the same subject
re-imagined (turned, tilted, re-posed, relit) does not match the reference's pixels under any scale and shift.

Definition (per video): every frame and the reference are converted to grey; the frame is resized so that its
shorter side is ``FRAME_SIDE`` px; the reference is resized, keeping its aspect, to ``N_SCALES`` sizes from
``MIN_SCALE`` to 1.0 times the largest size at which it fits in the frame; at each size the normalised
cross-correlation (OpenCV ``TM_CCOEFF_NORMED``) of the reference with the frame is taken at every
position. A frame's value is its best correlation over positions and sizes; the video's value is the mean over
frames (in [-1, 1]; about 1 for a pasted reference, lower the more the subject is re-imagined). ``detail`` gives the
fraction of frames at or above ``PASTE_THRESHOLD`` (frames that are, in effect, the reference pasted).

Limits: it compares the whole reference image, background included: a reference pasted onto a new background
scores lower than one pasted with its own; rotation is not searched (a rotated paste counts as re-posed); it is a
pixel measure, blind to a copy that is restyled (recoloured, cartoonised) in the reference's exact pose.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from .results import MetricResult

logger = logging.getLogger(__name__)

FRAME_SIDE = 128
N_SCALES = 15
MIN_SCALE = 0.3
PASTE_THRESHOLD = 0.9
MODEL_ID = f"copy-paste: grey NCC of the reference over {N_SCALES} scales ({MIN_SCALE}-1.0), frames at {FRAME_SIDE} px"


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)


def _resize(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if width * height < grey.shape[0] * grey.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(grey, (width, height), interpolation=interp)


def reference_templates(reference: np.ndarray, frame_hw: tuple[int, int]) -> list[np.ndarray]:
    """The reference (uint8 RGB) in grey at each searched size for frames of ``frame_hw`` (after resizing)."""
    grey = _grey(reference)
    fh, fw = frame_hw
    rh, rw = grey.shape
    fit = min(fh / rh, fw / rw)  # the reference as large as fits in the frame
    out = []
    for s in np.linspace(MIN_SCALE, 1.0, N_SCALES):
        w, h = max(4, int(rw * fit * s)), max(4, int(rh * fit * s))
        if w <= fw and h <= fh:
            t = _resize(grey, w, h)
            if float(t.std()) > 1e-3:  # a flat template has no correlation
                out.append(t)
    return out


def frame_grey(frame: np.ndarray) -> np.ndarray:
    """A frame (uint8 RGB) in grey, shorter side ``FRAME_SIDE``."""
    grey = _grey(frame)
    h, w = grey.shape
    k = FRAME_SIDE / min(h, w)
    return _resize(grey, max(1, round(w * k)), max(1, round(h * k)))


def best_match(frame: np.ndarray, templates: list[np.ndarray]) -> float:
    """The highest normalised cross-correlation of any template at any position in ``frame`` (grey)."""
    import cv2

    best = -1.0
    for t in templates:
        r = cv2.matchTemplate(frame, t, cv2.TM_CCOEFF_NORMED)
        best = max(best, float(np.nanmax(r)))
    return best


def copy_paste_score(frames: np.ndarray, reference: Image.Image) -> MetricResult:
    """The video's copy-paste value (see the module docstring) from uint8 (F, H, W, 3) frames and the reference."""
    greys = [frame_grey(f) for f in frames]
    if not greys:
        return MetricResult.error("copy-paste needs at least 1 frame")
    templates = reference_templates(np.asarray(reference.convert("RGB")), greys[0].shape)
    if not templates:
        return MetricResult.error("the reference is flat (a single colour): nothing to match")
    per_frame = [best_match(g, templates) for g in greys]
    pasted = float(np.mean([v >= PASTE_THRESHOLD for v in per_frame]))
    return MetricResult.ok(float(np.mean(per_frame)), pasted_frames=pasted,
                           per_frame=[round(v, 4) for v in per_frame])


class CopyPaste:
    """The ``copypaste`` family's scorer (no weights)."""

    model_id = MODEL_ID

    def score(self, frames: np.ndarray, reference: Image.Image) -> dict[str, MetricResult]:
        return {"copy_paste": copy_paste_score(frames, reference)}
