"""Tiny, random, deterministic stand-ins for the evaluation encoders (the ``tiny`` preset and the tests).

Each is saved in its library's own format and loads through exactly the code that loads the real weights:
an open_clip model config + checkpoint (``open_clip.create_model``), a timm ViT checkpoint
(``timm.create_model(..., pretrained_cfg_overlay=dict(file=...))``), ArcFace and SCRFD-layout ONNX files
(``insightface.model_zoo.get_model``) and a torchvision RAFT state dict. Their numbers mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from vm_common.tiny import tiny_component

TINY_CLIP_NAME = "vm-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
# timm kwargs that shrink vit_small_patch16_224 (same class, same loader)
TINY_DINO_KWARGS = {"depth": 2, "embed_dim": 48, "num_heads": 2}
TINY_FACE_DIM = 64
TINY_DET_SIZE = 640


def _build_clip(folder: Path) -> None:
    import open_clip
    from safetensors.torch import save_file

    (folder / f"{TINY_CLIP_NAME}.json").write_text(json.dumps(TINY_CLIP_CONFIG, indent=2))
    torch.manual_seed(0)
    model = open_clip.CLIP(**{k: v for k, v in TINY_CLIP_CONFIG.items() if k != "quick_gelu"}, quick_gelu=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def tiny_clip() -> Path:
    """Folder with ``vm-tiny-clip.json`` (an open_clip model config) and ``open_clip_model.safetensors``."""
    return tiny_component("eval-clip", _build_clip)


def _build_dino(folder: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0, **TINY_DINO_KWARGS)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "timm_kwargs.json").write_text(json.dumps(TINY_DINO_KWARGS))


def tiny_dino() -> Path:
    return tiny_component("eval-dino", _build_dino)


class _TinyArcFace(nn.Module):
    """112x112 face crop -> TINY_FACE_DIM embedding (the ArcFace input/output contract, random weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.PReLU(8), nn.Conv2d(8, 16, 3, 2, 1), nn.PReLU(16),
            nn.Conv2d(16, 32, 3, 2, 1), nn.PReLU(32), nn.AvgPool2d(7),
        )
        self.fc = nn.Linear(32 * 4, TINY_FACE_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


class _TinyScrfd(nn.Module):
    """SCRFD output layout (3 strides x 2 anchors; scores, box distances, 5 keypoints), random weights.

    Outputs are 2-D (anchors, channels) as in the single-image SCRFD exports insightface reads.
    """

    strides = (8, 16, 32)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 8, 8), nn.ReLU())
        self.score = nn.Conv2d(8, 2, 1)
        self.bbox = nn.Conv2d(8, 8, 1)
        self.kps = nn.Conv2d(8, 20, 1)
        with torch.no_grad():  # content-dependent scores (some faces on photos), boxes of a few strides
            self.score.weight.mul_(30.0)
            self.score.bias.fill_(-3.0)
            self.bbox.bias.fill_(3.0)

    def forward(self, x: torch.Tensor):
        feat = self.stem(x)
        outs: dict[str, list[torch.Tensor]] = {"score": [], "bbox": [], "kps": []}
        for i, _ in enumerate(self.strides):
            f = feat if i == 0 else nn.functional.avg_pool2d(feat, 2 ** i)
            s = torch.sigmoid(self.score(f)).permute(0, 2, 3, 1).reshape(-1, 1)
            b = torch.relu(self.bbox(f)).permute(0, 2, 3, 1).reshape(-1, 4)
            k = self.kps(f).permute(0, 2, 3, 1).reshape(-1, 10)
            outs["score"].append(s)
            outs["bbox"].append(b)
            outs["kps"].append(k)
        return (*outs["score"], *outs["bbox"], *outs["kps"])


def _export(module: nn.Module, example: torch.Tensor, path: Path, output_names: list[str],
            dynamic_batch: bool) -> None:
    module.eval()
    kwargs = {"dynamic_axes": {"input": {0: "batch"}, output_names[0]: {0: "batch"}}} if dynamic_batch else {}
    torch.onnx.export(module, (example,), str(path), input_names=["input"], output_names=output_names,
                      opset_version=17, dynamo=False, **kwargs)


def _build_face(folder: Path) -> None:
    torch.manual_seed(0)
    _export(_TinyArcFace(), torch.zeros(1, 3, 112, 112), folder / "w600k_r50.onnx", ["embedding"], True)
    torch.manual_seed(0)
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in _TinyScrfd.strides]
    _export(_TinyScrfd(), torch.zeros(1, 3, TINY_DET_SIZE, TINY_DET_SIZE), folder / "det_10g.onnx", names, False)


def tiny_face_pack() -> Path:
    """A folder laid out like insightface's buffalo_l pack (det_10g.onnx, w600k_r50.onnx), tiny and random."""
    return tiny_component("eval-face", _build_face)


def export_arcface_onnx(path: Path, seed: int = 0) -> Path:
    """Export a tiny random ArcFace-contract ONNX to ``path`` (tests use it with given landmarks)."""
    torch.manual_seed(seed)
    _export(_TinyArcFace(), torch.zeros(1, 3, 112, 112), Path(path), ["embedding"], True)
    return Path(path)


def _build_raft(folder: Path) -> None:
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    torch.save(raft_small(weights=None).state_dict(), folder / "raft_small.pth")


def tiny_raft() -> Path:
    """A random torchvision ``raft_small`` state dict file."""
    return tiny_component("eval-raft", _build_raft) / "raft_small.pth"


def _build_vbench_dino(folder: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224.dino", pretrained=False, num_classes=0, **TINY_DINO_KWARGS)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "timm_kwargs.json").write_text(json.dumps(TINY_DINO_KWARGS))


def tiny_vbench_dino() -> Path:
    """A shrunken random timm ``vit_base_patch16_224.dino`` (VBench subject consistency's DINO ViT-B/16 layout)."""
    return tiny_component("eval-vbench-dino", _build_vbench_dino)


def _build_aesthetic(folder: Path) -> None:
    torch.manual_seed(0)
    head = nn.Linear(TINY_CLIP_CONFIG["embed_dim"], 1)
    torch.save(head.state_dict(), folder / "sa_0_4_vit_l_14_linear.pth")


def tiny_aesthetic_head() -> Path:
    """A random ``Linear(embed_dim of the tiny CLIP, 1)`` state dict in the LAION head's file format."""
    return tiny_component("eval-aesthetic", _build_aesthetic) / "sa_0_4_vit_l_14_linear.pth"
