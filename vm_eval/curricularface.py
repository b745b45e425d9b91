"""CurricularFace's IR backbone (the face recogniser of OpenS2V-Eval's FaceSim-Cur), written for this toolkit.

The released model (``glint360k_curricular_face_r101_backbone.bin`` in ``BestWishYsh/OpenS2V-Weight``) is an
"improved residual" (IR) ResNet in TFace's layout, 100 layers ("IR_101"), for 112x112 RGB crops scaled to
[-1, 1], giving a 512-d embedding. Its state dict names, which our module reproduces so the file loads strictly:

* ``input_layer``: 3x3 conv (3 -> 64, no bias), BatchNorm2d, PReLU;
* ``body.<i>``: one unit per residual block, four stages of (64, 3), (128, 13), (256, 30), (512, 3) units, the
  first unit of each stage with stride 2. A unit has ``res_layer`` = BN, 3x3 conv (stride 1), BN, PReLU, 3x3 conv
  (the unit's stride), BN, and ``shortcut_layer`` = a 1x1 max-pool with the stride when the width is unchanged
  (no parameters), else a 1x1 strided conv + BN;
* ``output_layer``: BatchNorm2d, Dropout, Flatten, Linear(width x 7 x 7 -> 512), BatchNorm1d without affine.

:class:`IRBackbone` takes the stage widths, unit counts and embedding size, so a tiny-width instance with the same
layout stands in for tests and the ``tiny`` preset (:func:`tiny_arch`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

INPUT_SIZE = 112
ARCH_FILE = "curricularface_arch.json"  # beside a tiny build's weights: its shrunken architecture


@dataclass(frozen=True)
class IRArch:
    widths: tuple[int, ...] = (64, 128, 256, 512)
    units: tuple[int, ...] = (3, 13, 30, 3)  # IR-101 ("100 layers" in TFace's naming)
    stem: int = 64
    embedding: int = 512

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.units) or not self.widths:
            raise ValueError(f"IR architecture needs one unit count per stage width: {self.widths} vs {self.units}")


IR_101 = IRArch()


def tiny_arch() -> IRArch:
    return IRArch(widths=(8, 16, 16, 32), units=(1, 2, 1, 1), stem=8, embedding=16)


class IRUnit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if c_in == c_out:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """(N, 3, 112, 112) in [-1, 1] -> (N, embedding) (not normalised; the caller L2-normalises)."""

    def __init__(self, arch: IRArch = IR_101):
        super().__init__()
        self.arch = arch
        self.input_layer = nn.Sequential(nn.Conv2d(3, arch.stem, 3, 1, 1, bias=False), nn.BatchNorm2d(arch.stem),
                                         nn.PReLU(arch.stem))
        units, c_in = [], arch.stem
        for width, count in zip(arch.widths, arch.units):
            for i in range(count):
                units.append(IRUnit(c_in, width, 2 if i == 0 else 1))
                c_in = width
        self.body = nn.Sequential(*units)
        side = INPUT_SIZE // 2 ** len(arch.widths)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.Dropout(0.4), nn.Flatten(), nn.Linear(c_in * side * side, arch.embedding),
            nn.BatchNorm1d(arch.embedding, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (tensors only: ``weights_only=True``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_curricularface(path: Path, *, device: torch.device | str = "cpu", arch: IRArch | None = None) -> IRBackbone:
    """The backbone with the weights in ``path`` (strict: every key and shape must match). ``arch`` defaults to
    the one recorded beside the file (tiny builds) or IR-101."""
    path = Path(path)
    if arch is None:
        arch_file = path.parent / ARCH_FILE
        arch = IRArch(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in json.loads(arch_file.read_text()).items()}) if arch_file.exists() else IR_101
    model = IRBackbone(arch)
    model.load_state_dict(read_state_dict(path), strict=True)
    logger.info("loaded CurricularFace IR backbone %s from %s", arch, path)
    return model.to(device).eval()


def save_arch(arch: IRArch, folder: Path) -> None:
    (Path(folder) / ARCH_FILE).write_text(json.dumps(asdict(arch)))
