"""TEST-ONLY backends with known answers, behind the same interfaces as the real detector and segmenter.

Random tiny models detect random things, so tests that check filters and keep/reject decisions use these instead:
they find the saturated, coloured subjects that :mod:`vm_data.synthetic` draws over low-saturation backgrounds,
by thresholding HSV saturation and labelling connected components. The text prompt is ignored unless it names
a palette colour (then only that hue counts). They are
selected with ``--detector synthetic-color --segmenter synthetic-color`` and must not be used on real data.
"""

from __future__ import annotations

import re
from typing import Sequence

import cv2
import numpy as np

from .detect import Detections
from .segment import Segmentation

SATURATION_THRESHOLD = 0.45  # synthetic subjects have saturation >= 0.6, backgrounds <= 0.25
VALUE_THRESHOLD = 0.2


def saturated_mask(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of saturated pixels, saturation in [0, 1]) of a uint8 RGB image."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2HSV)
    sat = hsv[..., 1].astype(np.float32) / 255.0
    val = hsv[..., 2].astype(np.float32) / 255.0
    return (sat >= SATURATION_THRESHOLD) & (val >= VALUE_THRESHOLD), sat


def prompt_colour(prompt: str) -> str | None:
    """The :data:`vm_data.synthetic.PALETTE` colour a prompt names ("red ball." -> "red"), or None."""
    from .synthetic import PALETTE

    words = set(re.findall(r"[a-z]+", str(prompt).lower()))
    return next((name for name, _, _ in PALETTE if name in words), None)


def colour_mask(image: np.ndarray, colour: str) -> np.ndarray:
    """Saturated pixels whose hue is nearest to ``colour``'s among the palette colours (OpenCV hue, period 180)."""
    from .synthetic import PALETTE

    hues = cv2.cvtColor(np.asarray([[c1 for _, c1, _ in PALETTE]], np.uint8), cv2.COLOR_RGB2HSV)[0, :, 0]
    hsv = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2HSV)
    diff = np.abs(hsv[..., 0:1].astype(np.int16) - hues.astype(np.int16)[None, None, :])
    nearest = np.argmin(np.minimum(diff, 180 - diff), axis=-1)
    index = [name for name, _, _ in PALETTE].index(colour)
    return saturated_mask(image)[0] & (nearest == index)


class SyntheticColorDetector:
    """TEST-ONLY: one box per connected saturated region of at least ``min_pixels`` pixels; score = its mean
    saturation. The prompt is ignored unless it names a palette colour ("red.", "blue ball."): then only regions
    of that hue are found (multi-subject tests: one prompt per subject)."""

    name = "synthetic-color"

    def __init__(self, min_pixels: int = 4, **_: object):
        self.min_pixels = int(min_pixels)

    def detect(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[Detections]:
        if len(images) != len(prompts):
            raise ValueError(f"detect: {len(images)} images but {len(prompts)} prompts")
        out = []
        for image, prompt in zip(images, prompts):
            mask, sat = saturated_mask(image)
            colour = prompt_colour(prompt)
            if colour is not None:
                mask = colour_mask(image, colour)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
            boxes, scores = [], []
            for label in range(1, n):
                x, y, w, h, area = stats[label]
                if area < self.min_pixels:
                    continue
                boxes.append([x, y, x + w, y + h])
                scores.append(float(sat[labels == label].mean()))
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32)))
        return out


class SyntheticColorSegmenter:
    """TEST-ONLY: the saturated pixels inside each box; score 1.0."""

    name = "synthetic-color"

    def __init__(self, **_: object):
        pass

    def segment(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[Segmentation]:
        out = []
        for image, bxs in zip(images, boxes):
            mask, _ = saturated_mask(image)
            bxs = np.asarray(bxs, np.float32).reshape(-1, 4)
            masks = np.zeros((len(bxs),) + mask.shape, bool)
            for i, (x0, y0, x1, y1) in enumerate(bxs):
                y0i, x0i = int(np.floor(y0)), int(np.floor(x0))
                y1i, x1i = int(np.ceil(y1)), int(np.ceil(x1))
                masks[i, y0i:y1i, x0i:x1i] = mask[y0i:y1i, x0i:x1i]
            out.append(Segmentation(masks, np.ones(len(bxs), np.float32)))
        return out


def write_video(path, frames: np.ndarray, *, fps: float = 8.0, codec: str = "libx264", pix_fmt: str = "yuv444p",
                container_format: str | None = None, options: dict | None = None,
                container_options: dict | None = None, gop: int | None = None):
    """TEST-ONLY: encode uint8 RGB frames with any codec / pixel format / size (odd sizes, grayscale ...), which
    :func:`vm_common.media.write_mp4` (yuv420p, even sizes) does not cover."""
    import av

    frames = np.asarray(frames, np.uint8)
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=int(round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        opts = dict(options or {})
        if gop is not None:
            opts["g"] = str(gop)
        if opts:
            stream.options = opts
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
