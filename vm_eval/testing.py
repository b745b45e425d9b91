"""Helpers for tests and benchmarks: synthetic videos of known motion, a fake generator, video files."""

from __future__ import annotations

import numpy as np
from PIL import Image


def smooth_texture(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (uint8, size x size) that optical flow can track."""
    import cv2

    rng = np.random.RandomState(seed)
    t = rng.rand(max(2, size // 4), max(2, size // 4), 3).astype(np.float32)
    t = cv2.resize(t, (size, size), interpolation=cv2.INTER_CUBIC)
    return (np.clip(t, 0, 1) * 255).astype(np.uint8)


def shifting_video(image: np.ndarray, shift_px: int, num_frames: int) -> np.ndarray:
    """Frames of ``image`` translated (wrapping) by ``shift_px`` pixels per frame along x."""
    return np.stack([np.roll(image, shift_px * i, axis=1) for i in range(num_frames)])


def image_video(image: Image.Image, size: int, num_frames: int) -> np.ndarray:
    arr = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC))
    return np.stack([arr] * num_frames)


class FakeGenerator:
    """generate_fn(prompt, reference_image, seed) -> uint8 frames: a slow pan over the reference (deterministic)."""

    def __init__(self, num_frames: int = 8, size: int = 128, shift_px: int = 3):
        self.num_frames, self.size, self.shift_px = num_frames, size, shift_px
        self.calls: list[tuple[str, int]] = []

    def __call__(self, prompt: str, reference_image: Image.Image, seed: int) -> np.ndarray:
        self.calls.append((prompt, seed))
        base = np.asarray(reference_image.convert("RGB").resize((self.size, self.size), Image.BICUBIC))
        return shifting_video(base, self.shift_px + seed % 3, self.num_frames)
