"""Synthetic clips: coloured, striped subjects moving over plain low-saturation backgrounds.

Used by tests, benchmarks and `vm train --data synthetic`. The subjects are saturated and the backgrounds are
not, so :mod:`vm_data.testing`'s colour detector finds them exactly, and the subject masks are known, so the
references written here are what preprocessing with a perfect detector would produce.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vm_common.io_utils import atomic_output, atomic_write_text
from vm_common.media import write_mp4
from vm_common.status import KEPT

from .clip_manifest import ManifestRow
from .reference import make_reference
from .video import uniform_indices

logger = logging.getLogger(__name__)

# (name, stripe colour 1, stripe colour 2): all strongly saturated
PALETTE = (
    ("red", (220, 40, 40), (150, 20, 30)),
    ("blue", (40, 80, 220), (20, 40, 140)),
    ("green", (40, 190, 60), (20, 110, 40)),
    ("orange", (240, 140, 20), (170, 80, 10)),
    ("magenta", (200, 40, 200), (120, 20, 120)),
    ("yellow", (230, 200, 20), (160, 130, 10)),
)
BACKGROUNDS = ((200, 198, 190), (170, 175, 180), (215, 210, 205), (150, 150, 150))
SHAPES = ("ball", "box")
FPS = 8.0


@dataclass
class SyntheticSubject:
    """A striped subject. Positions and radius are fractions of the frame; velocity is per frame."""

    color: tuple[int, int, int] = PALETTE[0][1]
    color2: tuple[int, int, int] = PALETTE[0][2]
    radius: float = 0.18
    start: tuple[float, float] = (0.3, 0.5)
    velocity: tuple[float, float] = (0.01, 0.0)
    shape: str = "ball"
    stripe: int = 3

    def center(self, t: int) -> tuple[float, float]:
        x = self.start[0] + self.velocity[0] * t
        y = self.start[1] + self.velocity[1] * t
        # bounce inside the frame
        return _bounce(x, self.radius), _bounce(y, self.radius)

    def mask(self, t: int, height: int, width: int) -> np.ndarray:
        cx, cy = self.center(t)
        yy, xx = np.mgrid[0:height, 0:width]
        r = self.radius * min(height, width)
        dx, dy = xx + 0.5 - cx * width, yy + 0.5 - cy * height
        if self.shape == "box":
            return (np.abs(dx) <= r) & (np.abs(dy) <= r * 0.8)
        return dx * dx + (dy * 1.15) ** 2 <= r * r


def _bounce(v: float, margin: float) -> float:
    lo, hi = margin, 1.0 - margin
    if hi <= lo:
        return 0.5
    span = hi - lo
    phase = (v - lo) % (2 * span)
    return lo + (phase if phase <= span else 2 * span - phase)


def render_frames(num_frames: int, size: int | tuple[int, int], subjects: list[SyntheticSubject], *,
                  background: tuple[int, int, int] = BACKGROUNDS[0], seed: int = 0,
                  noise: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T, H, W, 3), union masks bool (T, H, W)). ``size``: side, or (height, width)."""
    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), bool)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.broadcast_to(np.asarray(background, np.float32), (height, width, 3))
    for t in range(num_frames):
        frame = base + rng.normal(0.0, noise, size=(height, width, 3)).astype(np.float32)
        for s in subjects:
            m = s.mask(t, height, width)
            stripes = ((xx + yy + t) // max(1, s.stripe)) % 2 == 0
            texture = np.where(stripes[..., None], np.asarray(s.color, np.float32), np.asarray(s.color2, np.float32))
            frame = np.where(m[..., None], texture, frame)
            masks[t] |= m
        frames[t] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return frames, masks


def random_subject(rng: np.random.Generator, *, radius: tuple[float, float] = (0.15, 0.25)) -> tuple[str, SyntheticSubject]:
    name, c1, c2 = PALETTE[int(rng.integers(len(PALETTE)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    r = float(rng.uniform(*radius))
    start = (float(rng.uniform(r, 1 - r)), float(rng.uniform(r, 1 - r)))
    speed = float(rng.uniform(0.01, 0.03))
    angle = float(rng.uniform(0, 2 * np.pi))
    subject = SyntheticSubject(color=c1, color2=c2, radius=r, start=start,
                               velocity=(speed * np.cos(angle), speed * np.sin(angle)), shape=shape)
    return name, subject


def _direction(subject: SyntheticSubject) -> str:
    vx, vy = subject.velocity
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


def make_synthetic_dataset(out_dir: str | Path, num_clips: int = 8, num_frames: int = 24, size: int = 64,
                           seed: int = 0, *, references_per_clip: int = 1) -> Path:
    """Write ``num_clips`` synthetic mp4 clips, their white-background references and masks, and a manifest.

    Layout: ``out_dir/videos/synthetic_XXXX.mp4``, ``out_dir/references/synthetic_XXXX_K.png``,
    ``out_dir/masks/synthetic_XXXX_K.png``, ``out_dir/manifest.jsonl`` (every row ``kept``; paths relative to
    ``out_dir``). Deterministic in ``seed``. Returns the manifest path.
    """
    from PIL import Image

    if num_clips < 1 or num_frames < 1 or size < 16:
        raise ValueError(f"make_synthetic_dataset: need num_clips >= 1, num_frames >= 1, size >= 16; got "
                         f"{num_clips}, {num_frames}, {size}")
    out = Path(out_dir)
    for sub in ("videos", "references", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[ManifestRow] = []
    for c in range(num_clips):
        clip_id = f"synthetic_{c:04d}"
        colour, subject = random_subject(rng)
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        frames, masks = render_frames(num_frames, size, [subject], background=background, seed=seed * 1000 + c)
        video_rel = f"videos/{clip_id}.mp4"
        write_mp4(out / video_rel, frames, fps=FPS)
        refs, mask_paths, boxes, areas = [], [], [], []
        indices = uniform_indices(num_frames, references_per_clip)
        for k, t in enumerate(indices):
            ref_rel, mask_rel = f"references/{clip_id}_{k}.png", f"masks/{clip_id}_{k}.png"
            with atomic_output(out / ref_rel) as tmp:
                make_reference(frames[t], masks[t], size=size).save(tmp, format="PNG")
            with atomic_output(out / mask_rel) as tmp:
                Image.fromarray(masks[t].astype(np.uint8) * 255).save(tmp, format="PNG")
            ys, xs = np.nonzero(masks[t])
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
            areas.append(float(masks[t].mean()))
            refs.append(ref_rel)
            mask_paths.append(mask_rel)
        word = subject.shape
        rows.append(ManifestRow(
            clip_id=clip_id, video=video_rel,
            caption=f"a {colour} striped {word} moving {_direction(subject)} over a plain background",
            references=refs, class_word=word, status=KEPT, masks=mask_paths, boxes=boxes,
            scores=[1.0] * len(refs), mask_area=areas, frame_indices=indices, num_frames=num_frames, fps=FPS,
            width=size, height=size, extra={"synthetic": True, "seed": seed},
        ))
    manifest = out / "manifest.jsonl"
    from vm_common.io_utils import dumps_row

    atomic_write_text(manifest, "".join(dumps_row(r.to_dict()) + "\n" for r in rows))
    logger.info("wrote %d synthetic clips to %s", num_clips, out)
    return manifest
