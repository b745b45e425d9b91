"""Metrics of the toy experiment: subject fidelity against the reference, and motion direction from DIS flow.

Both rely on what the toy domain guarantees: a known plain background (``domain.BACKGROUND``) in the videos and a
white background in the references, so the subject is segmented exactly by colour, with no learned detector.

Subject fidelity error: the earth mover's (Wasserstein-1) distance between the colour distribution of the generated
subject pixels (all frames) and that of the reference's subject pixels, in RGB units of 0..255. It is what an
appearance transfer must get right in this domain (the two colours of the subject and their proportions), it is
invariant to where the subject is and how large it is (the reference is cropped and enlarged, the video subject is
small and moving), and it is computed exactly, by optimal assignment between equal-size random samples of the two
pixel sets (fixed seed; :mod:`.assignment`, numpy only). A video without a segmentable subject is scored on its
``min_pixels`` most non-background pixels, so generating nothing is a large error, never a missing value.

Motion direction: OpenCV DIS optical flow between consecutive frames, computed on the image of each pixel's
distance from the background colour (the subject's silhouette and texture; plain luminance could hide a subject
as bright as the background), averaged over the subject pixels of the earlier frame and over all frame pairs.
The direction is the one of left / right / up / down with the largest component of that mean flow; a mean flow
slower than ``min_speed`` pixels per frame is "static" and never counts as right.

Stripe orientation (the stripes domain): which axis the subject's two colours split along. The subject pixels'
colours (interior, all frames) are projected on their first principal component; the orientation is the axis
(x or y, relative to each frame's subject centroid) that this colour coordinate correlates with more strongly:
``hstripes`` when the colour changes from top to bottom, ``vstripes`` from left to right. A subject whose colours
barely vary (spread under ``min_contrast``) is ``"none"``, which never counts as right.
"""

from __future__ import annotations

import numpy as np

from .assignment import min_cost_assignment, pairwise_distances
from .domain import BACKGROUND, DIRECTIONS, reference_mask

FG_THRESHOLD = 0.15  # max-channel distance from the background (0..1) that makes a pixel "subject"


def _as_float(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    return frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)


def background_distance(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) max-channel |pixel - background| in 0..1 for frames (T, H, W, 3) (uint8 or float in [0, 1])."""
    bg = np.asarray(BACKGROUND, np.float32) / 255.0
    return np.abs(_as_float(frames) - bg).max(axis=-1)


def _erode(mask: np.ndarray) -> np.ndarray:
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    if mask.ndim == 2:
        return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    return np.stack([cv2.erode(m.astype(np.uint8), kernel).astype(bool) for m in mask])


def subject_masks(frames: np.ndarray, threshold: float = FG_THRESHOLD) -> np.ndarray:
    """(T, H, W) bool: pixels clearly different from the known background."""
    return background_distance(frames) > threshold


def generated_subject_pixels(frames: np.ndarray, min_pixels: int = 64) -> np.ndarray:
    """RGB (N, 3) in 0..255 of the generated subject over all frames (interior pixels: the mask eroded by one
    pixel, so that subject/background blends at the edges do not count). Fewer than ``min_pixels``: the
    ``min_pixels`` pixels farthest from the background instead."""
    rgb = _as_float(frames) * 255.0
    dist = background_distance(frames)
    mask = _erode(dist > FG_THRESHOLD)
    if mask.sum() >= min_pixels:
        return rgb[mask]
    order = np.argsort(dist.reshape(-1))[::-1][:min_pixels]
    return rgb.reshape(-1, 3)[order]


def reference_subject_pixels(reference: np.ndarray) -> np.ndarray:
    """RGB (N, 3) in 0..255 of the reference's subject (non-white, eroded by one pixel)."""
    ref = np.asarray(reference)
    if ref.dtype != np.uint8:
        ref = np.clip(np.round(ref * 255.0), 0, 255).astype(np.uint8)
    mask = _erode(reference_mask(ref))
    if not mask.any():
        raise ValueError("the reference has no subject pixels (all white)")
    return ref[mask].astype(np.float32)


def wasserstein1(a: np.ndarray, b: np.ndarray, samples: int = 256, seed: int = 0) -> float:
    """Earth mover's distance between point sets a (N, D) and b (M, D): exact optimal assignment between
    ``samples`` points drawn from each (with replacement when a set is smaller), fixed seed."""
    rng = np.random.default_rng(seed)
    sa = a[rng.choice(len(a), samples, replace=len(a) < samples)]
    sb = b[rng.choice(len(b), samples, replace=len(b) < samples)]
    cost = pairwise_distances(sa, sb)
    cols = min_cost_assignment(cost)
    return float(cost[np.arange(samples), cols].mean())


def fidelity_error(frames: np.ndarray, reference: np.ndarray, seed: int = 0) -> float:
    """Colour earth mover's distance (0..255 RGB units) between the generated subject and the reference subject."""
    return wasserstein1(generated_subject_pixels(frames), reference_subject_pixels(reference), seed=seed)


def mean_subject_flow(frames: np.ndarray) -> np.ndarray:
    """Mean DIS flow (dx, dy) in pixels per frame over the subject pixels of each earlier frame, all pairs."""
    import cv2

    dist = background_distance(frames)
    masks = dist > FG_THRESHOLD
    images = np.clip(np.round(dist * 255.0), 0, 255).astype(np.uint8)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    total, count = np.zeros(2, np.float64), 0
    for t in range(len(images) - 1):
        flow = dis.calc(images[t], images[t + 1], None)  # (H, W, 2)
        m = masks[t]
        if m.sum() < 4:
            continue
        total += flow[m].sum(axis=0)
        count += int(m.sum())
    return total / max(count, 1)


def motion_direction(frames: np.ndarray, min_speed: float = 0.5) -> str:
    """'left' / 'right' / 'up' / 'down' from the mean subject flow, or 'static' below ``min_speed`` px/frame."""
    flow = mean_subject_flow(frames)
    if float(np.hypot(*flow)) < min_speed:
        return "static"
    return max(DIRECTIONS, key=lambda d: float(np.dot(flow, DIRECTIONS[d])))


def stripe_orientation(frames: np.ndarray, min_contrast: float = 20.0) -> str:
    """'hstripes' / 'vstripes' from how the subject's colour varies along y vs x (see the module docstring), or
    'none' when the subject has no clear second colour (RGB spread along the main colour axis < ``min_contrast``)."""
    rgb = _as_float(frames) * 255.0
    masks = _erode(subject_masks(frames))
    colours, xs, ys = [], [], []
    for t in range(len(rgb)):
        yy, xx = np.nonzero(masks[t])
        if len(yy) < 4:
            continue
        colours.append(rgb[t][yy, xx] - rgb[t][yy, xx].mean(axis=0))
        xs.append(xx - xx.mean())
        ys.append(yy - yy.mean())
    if not colours:
        return "none"
    c, x, y = np.concatenate(colours), np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
    axis = np.linalg.svd(c, full_matrices=False)[2][0]
    s = c @ axis
    if float(s.std()) < min_contrast / 2:
        return "none"
    corr_x = abs(float(s @ x)) / (np.linalg.norm(s) * np.linalg.norm(x) + 1e-9)
    corr_y = abs(float(s @ y)) / (np.linalg.norm(s) * np.linalg.norm(y) + 1e-9)
    return "hstripes" if corr_y > corr_x else "vstripes"
