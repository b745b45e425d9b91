"""The toy domain: one textured subject moving across a plain dark background in a named direction.

Each subject has a random colour pair (two saturated colours of different hue), a texture (horizontal stripes,
vertical stripes or a checkerboard, with a random cell size), a random shape (disc, square, diamond) and size. It
moves in a straight line, left / right / up / down, and the texture moves with it. The caption names only the
direction ("a shape moving left"), never the appearance, so a model can only get the subject's look from the
reference image: the subject alone on white, cropped and resized as subject-highlight preprocessing
(``vm_data.reference.make_reference``) produces it.

With ``SubjectRanges.attribute == "stripes"`` the subject also has an attribute that the caption *and* the reference
both show: its stripe orientation (``hstripes``: the two colours split top / bottom; ``vstripes``: left / right;
no checkerboard; colour 1 bright, colour 2 dark). The caption names it ("a shape with horizontal stripes moving
left") and the reference, cut from the same clip, shows it. A model that pastes the reference copies the
reference's orientation when a caption asks for the other one (the toy analogue of a reference photo's pose
leaking into the video; docs/injection_schedule.md).
"""

from __future__ import annotations

import colorsys
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

BACKGROUND = (16, 16, 16)  # the known plain background: dark, so that every subject (saturated, bright) stands out
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
TEXTURES = ("hstripes", "vstripes", "checker")
SHAPES = ("disc", "square", "diamond")
ATTRIBUTES = ("none", "stripes")  # what, besides the direction, the caption names (SubjectRanges.attribute)
STRIPES = {"hstripes": "horizontal", "vstripes": "vertical"}  # the orientations of the "stripes" attribute


def caption_for(direction: str, stripes: str | None = None) -> str:
    """The toy caption: the direction, and with ``stripes`` (a key of :data:`STRIPES`) the stripe orientation."""
    if stripes is None:
        return f"a shape moving {direction}"
    if stripes not in STRIPES:
        raise ValueError(f"stripes must be one of {sorted(STRIPES)}, got {stripes!r}")
    return f"a shape with {STRIPES[stripes]} stripes moving {direction}"


def opposite_stripes(stripes: str) -> str:
    """The other orientation: what a caption that contradicts the reference asks for."""
    return "vstripes" if stripes == "hstripes" else "hstripes"


def stripes_in_caption(caption: str) -> str | None:
    """The stripe orientation a toy caption names, or None."""
    words = set(caption.lower().replace(".", " ").replace(",", " ").split())
    named = [key for key, word in STRIPES.items() if word in words]
    return named[0] if len(named) == 1 else None


@dataclass(frozen=True)
class ToySubject:
    """A subject and its motion. Pixel units; ``start`` is the centre in frame 0; ``speed`` pixels per frame."""

    color1: tuple[int, int, int]
    color2: tuple[int, int, int]
    texture: str
    cell: int
    shape: str
    radius: float
    direction: str
    speed: float
    start: tuple[float, float]

    def to_dict(self) -> dict:
        return asdict(self)

    def center(self, t: int) -> tuple[float, float]:
        dx, dy = DIRECTIONS[self.direction]
        return self.start[0] + dx * self.speed * t, self.start[1] + dy * self.speed * t

    def mask(self, t: int, size: int) -> np.ndarray:
        cx, cy = self.center(t)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        dx, dy = xx - cx, yy - cy
        if self.shape == "square":
            return (np.abs(dx) <= self.radius * 0.85) & (np.abs(dy) <= self.radius * 0.85)
        if self.shape == "diamond":
            return np.abs(dx) + np.abs(dy) <= self.radius * 1.2
        return dx * dx + dy * dy <= self.radius * self.radius

    def texture_map(self, t: int, size: int) -> np.ndarray:
        """Which of the two colours each pixel would have (bool, True = colour 1); moves with the subject."""
        cx, cy = self.center(t)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        u = np.floor((xx - cx) / self.cell).astype(int)
        v = np.floor((yy - cy) / self.cell).astype(int)
        if self.texture == "hstripes":
            return v % 2 == 0
        if self.texture == "vstripes":
            return u % 2 == 0
        return (u + v) % 2 == 0


def _saturated(rng: np.random.Generator, hue: float,
               value: tuple[float, float] = (0.6, 1.0)) -> tuple[int, int, int]:
    s, v = rng.uniform(0.6, 1.0), rng.uniform(*value)
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


@dataclass(frozen=True)
class SubjectRanges:
    """Ranges subjects are drawn from, as fractions of the frame side."""

    radius: tuple[float, float] = (0.2, 0.25)
    cell: tuple[float, float] = (0.2, 0.25)  # texture cell: about the radius = halves / quadrants of the subject
    travel: tuple[float, float] = (0.28, 0.34)  # distance covered over the clip (clipped to what fits)
    jitter: float = 1.0  # start position: 0 = the centre of the path's allowed range, 1 = anywhere in it
    lanes: bool = False  # each direction in its own lane along one side (LANES); False: paths anywhere
    colours: int = 2  # 1: plain subjects (colour 2 = colour 1, so the texture is invisible)
    attribute: str = "none"  # "stripes": horizontal / vertical stripes only, named in the caption (see the docstring)


_EXTENT = {"disc": 1.0, "square": 0.85, "diamond": 1.2}  # half-width of each shape, in radii
# with SubjectRanges.lanes: the side of the frame each direction's path keeps to (its cross-axis coordinate is as
# close to that side as the subject fits, plus up to ``jitter`` x its radius)
LANES = {"right": "top", "left": "bottom", "up": "left", "down": "right"}


def random_subject(rng: np.random.Generator, size: int = 32, num_frames: int = 8, direction: str | None = None,
                   ranges: SubjectRanges = SubjectRanges(), texture: str | None = None) -> ToySubject:
    """A random subject whose whole path stays inside the frame (``texture``: fixed instead of drawn; the draw
    still happens, so the rest of the stream does not depend on it)."""
    if ranges.attribute not in ATTRIBUTES:
        raise ValueError(f"toy attribute must be one of {ATTRIBUTES}, got {ranges.attribute!r}")
    hue = rng.uniform(0.0, 1.0)
    # stripes: colour 1 bright, colour 2 dark, so that the orientation changes the mean image (where the bright half
    # is) and a caption can carry it; with random-brightness colours it lives only in second-order statistics
    bright, dark = ((0.85, 1.0), (0.4, 0.55)) if ranges.attribute == "stripes" else ((0.6, 1.0), (0.6, 1.0))
    color1 = _saturated(rng, hue, bright)
    color2 = _saturated(rng, hue + rng.uniform(0.25, 0.75), dark)  # a clearly different second hue
    if ranges.colours == 1:
        color2 = color1
    elif ranges.colours != 2:
        raise ValueError(f"toy subjects have 1 or 2 colours, not {ranges.colours}")
    shape = str(rng.choice(SHAPES))
    drawn = str(rng.choice(tuple(STRIPES) if ranges.attribute == "stripes" else TEXTURES))
    texture = texture or drawn
    radius = float(rng.uniform(*ranges.radius) * size)
    cell = max(2, int(round(rng.uniform(*ranges.cell) * size)))
    direction = direction or str(rng.choice(list(DIRECTIONS)))
    margin = radius * _EXTENT[shape] + 1.0
    travel = min(float(rng.uniform(*ranges.travel) * size), size - 2 * margin)
    if travel < 0.15 * size:
        raise ValueError(f"frames of {size} px are too small for a subject of radius {radius:.1f} px to move")
    speed = travel / max(1, num_frames - 1)
    dx, dy = DIRECTIONS[direction]
    lo_x, hi_x = margin - min(dx, 0) * travel, size - margin - max(dx, 0) * travel
    lo_y, hi_y = margin - min(dy, 0) * travel, size - margin - max(dy, 0) * travel
    mid_x, mid_y, j = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2, ranges.jitter / 2
    start = [float(rng.uniform(mid_x - j * (hi_x - lo_x), mid_x + j * (hi_x - lo_x))),
             float(rng.uniform(mid_y - j * (hi_y - lo_y), mid_y + j * (hi_y - lo_y)))]
    if ranges.lanes:
        offset = float(rng.uniform(0.0, ranges.jitter * radius))
        side = LANES[direction]
        axis = 1 if side in ("top", "bottom") else 0
        start[axis] = margin + offset if side in ("top", "left") else size - margin - offset
    return ToySubject(color1=color1, color2=color2, texture=texture, cell=cell, shape=shape, radius=radius,
                      direction=direction, speed=speed, start=(start[0], start[1]))


@dataclass(frozen=True)
class ToyDomain:
    """Where a toy model's data comes from: frame size, clip length, subject ranges, and the seed of its streams
    (training clips: ``seed``; held-out subjects: ``[seed, 1]``, a stream the training data never uses)."""

    size: int = 32
    num_frames: int = 4
    ranges: SubjectRanges = field(default_factory=lambda: SubjectRanges(jitter=0.2))
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ToyDomain":
        ranges = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(data.get("ranges", {})).items()}
        return cls(**{**{k: v for k, v in data.items() if k != "ranges"}, "ranges": SubjectRanges(**ranges)})


def balanced_texture(ranges: SubjectRanges, index: int) -> str | None:
    """The texture of clip / subject ``index`` when the domain balances it (the stripes attribute: the orientation
    alternates every 4 items, so each direction gets both), else None (drawn at random)."""
    if ranges.attribute == "stripes":
        return tuple(STRIPES)[(index // len(DIRECTIONS)) % len(STRIPES)]
    return None


def subject_caption(subject: ToySubject, ranges: SubjectRanges, stripes: str | None = None) -> str:
    """The caption of ``subject`` in a domain with ``ranges``: the direction, plus the stripe orientation in the
    stripes domain (``stripes`` overrides the subject's own, for captions that contradict the reference)."""
    if ranges.attribute == "stripes":
        return caption_for(subject.direction, stripes or subject.texture)
    return caption_for(subject.direction)


def heldout_subjects(domain: ToyDomain, count: int) -> list[ToySubject]:
    """The first ``count`` held-out subjects of ``domain`` (directions balanced: subject i moves in direction
    i % 4; in the stripes domain the orientation alternates every 4). Subject i is the same whatever ``count`` is,
    so a benchmark can name subjects by index."""
    rng = np.random.default_rng([domain.seed, 1])
    names = list(DIRECTIONS)
    return [random_subject(rng, domain.size, domain.num_frames, direction=names[i % len(names)],
                           ranges=domain.ranges, texture=balanced_texture(domain.ranges, i)) for i in range(count)]


def heldout_reference(domain: ToyDomain, index: int) -> np.ndarray:
    """The subject-highlight reference (uint8 (size, size, 3)) of held-out subject ``index``."""
    if index < 0:
        raise ValueError(f"held-out subject index must be >= 0, got {index}")
    subject = heldout_subjects(domain, index + 1)[index]
    return reference_image(subject, domain.num_frames, domain.size)


def direction_in_caption(caption: str) -> str | None:
    """The direction a toy caption names (``caption_for``'s wording, or any text naming exactly one direction)."""
    words = set(caption.lower().replace(".", " ").replace(",", " ").split())
    named = [d for d in DIRECTIONS if d in words]
    return named[0] if len(named) == 1 else None


def render(subject: ToySubject, num_frames: int = 8, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T, H, W, 3), subject masks bool (T, H, W))."""
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    masks = np.empty((num_frames, size, size), bool)
    bg = np.asarray(BACKGROUND, np.uint8)
    c1, c2 = np.asarray(subject.color1, np.uint8), np.asarray(subject.color2, np.uint8)
    for t in range(num_frames):
        m = subject.mask(t, size)
        tex = np.where(subject.texture_map(t, size)[..., None], c1, c2)
        frames[t] = np.where(m[..., None], tex, bg)
        masks[t] = m
    return frames, masks


def reference_image(subject: ToySubject, num_frames: int = 8, size: int = 32) -> np.ndarray:
    """The subject-highlight reference (uint8 (size, size, 3)): the subject of the middle frame alone on white,
    cropped to its box with a margin and resized, exactly what ``make_reference`` makes of a perfect mask."""
    from vm_data.reference import make_reference

    frames, masks = render(subject, num_frames, size)
    t = num_frames // 2
    return np.asarray(make_reference(frames[t], masks[t], size=size))


def reference_mask(reference: np.ndarray, threshold: int = 40) -> np.ndarray:
    """Subject pixels of a white-background reference (anything clearly not white)."""
    return (255 - reference.astype(np.int32)).max(axis=-1) > threshold


def subject_from_dict(data: dict) -> ToySubject:
    """Inverse of :meth:`ToySubject.to_dict` (JSON turns tuples into lists)."""
    return ToySubject(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def make_toy_dataset(out_dir: str | Path, num_clips: int, num_frames: int = 8, size: int = 32,
                     seed: int = 0, ranges: SubjectRanges = SubjectRanges()) -> Path:
    """Write ``num_clips`` clips (GIF), their references (PNG) and a `vm train` manifest; returns the manifest.

    Directions are balanced (clip i moves in direction i % 4), and so is the stripe orientation in the stripes
    domain (see :func:`balanced_texture`)."""
    from PIL import Image

    from vm_common.io_utils import atomic_output, atomic_write_text, dumps_row
    from vm_common.media import write_gif
    from vm_data.clip_manifest import ManifestRow

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "references").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(DIRECTIONS)
    rows = []
    for i in range(num_clips):
        subject = random_subject(rng, size, num_frames, direction=names[i % len(names)], ranges=ranges,
                                 texture=balanced_texture(ranges, i))
        frames, _ = render(subject, num_frames, size)
        clip_id = f"toy_{i:05d}"
        # GIF, not mp4: H.264's 4:2:0 chroma subsampling washes out 3-4 px colour textures at 32x32; GIF is
        # lossless for these few-colour frames and reads through the same PyAV path (vm_data.video.read_frames)
        write_gif(out / "videos" / f"{clip_id}.gif", frames, fps=8.0)
        with atomic_output(out / "references" / f"{clip_id}.png") as tmp:
            Image.fromarray(reference_image(subject, num_frames, size)).save(tmp, format="PNG")
        rows.append(ManifestRow(
            clip_id=clip_id, video=f"videos/{clip_id}.gif", caption=subject_caption(subject, ranges),
            references=[f"references/{clip_id}.png"], class_word="shape", status="kept", num_frames=num_frames,
            fps=8.0, width=size, height=size, extra={"toy_subject": subject.to_dict(), "seed": seed}))
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(dumps_row(r.to_dict()) + "\n" for r in rows))
    logger.info("wrote %d toy clips to %s", num_clips, out)
    return manifest
