"""Reference augmentation for training: RandomHorizontalFlip + RandomAffine on a white background, seeded.

The parameters are drawn from a caller-given ``numpy.random.Generator`` (the dataset derives it from seed, epoch
and index), so an augmented reference is a pure function of (image, config, generator state). The sampling follows
torchvision's ``RandomHorizontalFlip`` / ``RandomAffine``: angle ~ U(-degrees, degrees), translation ~
U(-t*W, t*W) x U(-t*H, t*H) pixels (rounded), scale ~ U(scale), shear ~ U(-shear, shear); the area uncovered by
the transform is filled with white, the background of subject-highlight references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, TypeVar

import numpy as np
import torch

T = TypeVar("T")


@dataclass
class AugmentConfig:
    """Reference augmentation. ``enabled=False`` (or ``augment=None`` in the dataset) turns it off."""

    hflip_p: float = field(default=0.5, metadata={"help": "probability of a horizontal flip"})
    degrees: float = field(default=15.0, metadata={"help": "max rotation, degrees"})
    translate: tuple[float, float] = field(default=(0.05, 0.05), metadata={"help": "max shift, fraction of W and H"})
    scale: tuple[float, float] = field(default=(0.9, 1.1), metadata={"help": "scale range"})
    shear: float = field(default=0.0, metadata={"help": "max x shear, degrees"})
    fill: float = field(default=1.0, metadata={"help": "fill value of uncovered pixels in [0, 1] (1 = white)"})
    enabled: bool = field(default=True, metadata={"help": "apply the augmentation"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.hflip_p <= 1.0:
            raise ValueError(f"AugmentConfig.hflip_p must lie in [0, 1], got {self.hflip_p}")
        self.translate = tuple(float(v) for v in self.translate)  # type: ignore[assignment]
        self.scale = tuple(float(v) for v in self.scale)  # type: ignore[assignment]
        if len(self.translate) != 2 or len(self.scale) != 2 or self.scale[0] <= 0 or self.scale[0] > self.scale[1]:
            raise ValueError(f"AugmentConfig: translate needs 2 values and scale a range (lo <= hi, lo > 0); got "
                             f"translate={self.translate}, scale={self.scale}")


@dataclass(frozen=True)
class AugmentParams:
    flip: bool
    angle: float
    translate: tuple[int, int]
    scale: float
    shear: float


def sample_params(config: AugmentConfig, rng: np.random.Generator, height: int, width: int) -> AugmentParams:
    flip = bool(rng.random() < config.hflip_p)
    angle = float(rng.uniform(-config.degrees, config.degrees)) if config.degrees else 0.0
    tx = int(round(rng.uniform(-config.translate[0] * width, config.translate[0] * width)))
    ty = int(round(rng.uniform(-config.translate[1] * height, config.translate[1] * height)))
    scale = float(rng.uniform(*config.scale)) if config.scale[0] != config.scale[1] else config.scale[0]
    shear = float(rng.uniform(-config.shear, config.shear)) if config.shear else 0.0
    return AugmentParams(flip, angle, (tx, ty), scale, shear)


def apply_params(image: torch.Tensor, params: AugmentParams, fill: float = 1.0) -> torch.Tensor:
    """Apply ``params`` to a float image (3, H, W) with values in [0, 1]."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    if params.flip:
        image = F.horizontal_flip(image)
    if params.angle or params.translate != (0, 0) or params.scale != 1.0 or params.shear:
        image = F.affine(image, angle=params.angle, translate=list(params.translate), scale=params.scale,
                         shear=[params.shear, 0.0], interpolation=InterpolationMode.BILINEAR, fill=[fill] * image.shape[0])
    return image


def augment_reference(image: torch.Tensor, config: AugmentConfig | None, rng: np.random.Generator) -> torch.Tensor:
    """Augment a float reference (3, H, W) in [0, 1]; returns it unchanged when ``config`` is None or disabled."""
    if config is None or not config.enabled:
        return image
    params = sample_params(config, rng, image.shape[-2], image.shape[-1])
    return apply_params(image, params, config.fill)


def pick_reference(references: Sequence[T], rng: np.random.Generator) -> T:
    """One of the K references of a clip, uniformly at random (the paper: one of four per training step)."""
    if len(references) == 0:
        raise ValueError("pick_reference: the clip has no references")
    return references[int(rng.integers(len(references)))]
