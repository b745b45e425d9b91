"""Compose a subject-highlight reference: everything outside the mask white, cropped to the mask's box with a
margin, padded to a square with white, optionally resized."""

from __future__ import annotations

import numpy as np
from PIL import Image

WHITE = 255


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1) of a boolean mask, end-exclusive, or None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def expand_box(box: tuple[int, int, int, int], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow a box by ``margin`` x its longer side on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    pad = int(round(margin * max(x1 - x0, y1 - y0)))
    return max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)


def pad_to_square(image: np.ndarray, fill: int = WHITE) -> np.ndarray:
    """Centre ``image`` (H, W, 3) on a square canvas of side max(H, W) filled with ``fill``."""
    h, w = image.shape[:2]
    side = max(h, w)
    if h == w:
        return image
    canvas = np.full((side, side, image.shape[2]), fill, dtype=image.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top:top + h, left:left + w] = image
    return canvas


def make_reference(image: np.ndarray, mask: np.ndarray, *, margin: float = 0.1, square: bool = True,
                   size: int | None = None) -> Image.Image:
    """The subject-highlight reference of ``image`` (uint8 RGB HxWx3) for ``mask`` (bool HxW, same size).

    ``size``: output side in pixels for square references (the longer side otherwise); None keeps the crop size.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=bool)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"make_reference: image {image.shape[:2]} and mask {mask.shape} differ in size")
    box = mask_box(mask)
    if box is None:
        raise ValueError("make_reference: the mask is empty")
    out = np.where(mask[..., None], image, np.uint8(WHITE)).astype(np.uint8)
    x0, y0, x1, y1 = expand_box(box, margin, image.shape[1], image.shape[0])
    crop = out[y0:y1, x0:x1]
    if square:
        crop = pad_to_square(crop)
    ref = Image.fromarray(np.ascontiguousarray(crop))
    if size:
        h, w = crop.shape[:2]
        scale = size / max(h, w)
        ref = ref.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    return ref
