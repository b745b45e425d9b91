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


def _build_curricularface(folder: Path) -> None:
    from safetensors.torch import save_file

    from .curricularface import IRBackbone, save_arch, tiny_arch

    torch.manual_seed(0)
    model = IRBackbone(tiny_arch()).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode outputs depend on every layer
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "curricularface.safetensors"))
    save_arch(tiny_arch(), folder)


def tiny_curricularface() -> Path:
    """A tiny-width random CurricularFace IR backbone (TFace state dict layout) + its architecture file."""
    return tiny_component("eval-curricularface", _build_curricularface) / "curricularface.safetensors"


def _build_opens2v_aesthetic(folder: Path) -> None:
    from .opens2v import AestheticMLP

    torch.manual_seed(0)
    torch.save(AestheticMLP(TINY_CLIP_CONFIG["embed_dim"]).state_dict(), folder / "aesthetic-model.pth")


def tiny_opens2v_aesthetic() -> Path:
    """A random OpenS2V aesthetic MLP head on the tiny CLIP's embedding size, in the released file's format."""
    return tiny_component("eval-opens2v-aesthetic", _build_opens2v_aesthetic) / "aesthetic-model.pth"


# VBench motion smoothness / imaging quality: the released architectures at small widths (vm_eval.amt, vm_eval.musiq)
TINY_AMT = {"channels": [8, 8, 12, 12], "skip_channels": 4, "feat_channels": [8, 8, 16], "feat_dim": 16,
            "hidden_dim": 16, "flow_dim": 4, "corr_dim": 8, "fc_dim": 8, "corr_radius": 1, "corr_levels": 2,
            "num_flows": 2}
TINY_MUSIQ = {"hidden_size": 32, "mlp_dim": 64, "num_heads": 2, "num_layers": 2, "token_dim": 32}


def randomise_musiq_tables(encoder: nn.Module) -> None:
    """Random position / scale tables and class token (zeros would hide a wrong position or scale index)."""
    with torch.no_grad():
        for t in (encoder.posembed_input.position_emb, encoder.scaleembed_input.scale_emb, encoder.cls):
            t.normal_(0.0, 1.0)


def _build_amt(folder: Path) -> None:
    from safetensors.torch import save_file

    from .amt import AMTS, AMTConfig

    torch.manual_seed(0)
    model = AMTS(AMTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_AMT.items()}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "amt-s.safetensors"))
    (folder / "amt_config.json").write_text(json.dumps(TINY_AMT))


def tiny_amt() -> Path:
    """A random AMT-S at small widths (``amt_config.json`` beside it), loaded by :func:`vm_eval.amt.load_amt_s`."""
    return tiny_component("eval-amt", _build_amt) / "amt-s.safetensors"


def _build_musiq(folder: Path) -> None:
    from safetensors.torch import save_file

    from .musiq import MUSIQ, MUSIQConfig

    torch.manual_seed(0)
    model = MUSIQ(MUSIQConfig(**TINY_MUSIQ))
    randomise_musiq_tables(model.transformer_encoder)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "musiq.safetensors"))
    (folder / "musiq_config.json").write_text(json.dumps(TINY_MUSIQ))


def tiny_musiq() -> Path:
    """A random MUSIQ at small widths (``musiq_config.json`` beside it), loaded by :func:`vm_eval.musiq.load_musiq`."""
    return tiny_component("eval-musiq", _build_musiq) / "musiq.safetensors"


GME_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                      "<|image_pad|>", "<|video_pad|>")


# Qwen2-VL's chat layout in a few lines (images as vision-start / image-pad / vision-end, then the text parts)
TINY_VLM_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _build_gme(folder: Path) -> None:
    """A tiny random Qwen2-VL (transformers' own classes) with a byte-level tokenizer holding Qwen2-VL's special
    tokens, saved as a model folder that ``AutoModelForImageTextToText`` / ``AutoProcessor`` load."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration,
                              Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor)

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(GME_SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    ids = {t: fast.convert_tokens_to_ids(t) for t in GME_SPECIAL_TOKENS}
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=fast,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=TINY_VLM_CHAT_TEMPLATE)
    cfg = Qwen2VLConfig(
        text_config=dict(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [4, 2, 2]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, embed_dim=16, num_heads=2, hidden_size=32, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_chans=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(cfg).eval().save_pretrained(folder)
    processor.save_pretrained(folder)


def tiny_gme() -> Path:
    """Folder of a tiny random Qwen2-VL (GME-Qwen2-VL's architecture and processor, byte-level tokenizer, a chat
    template): GME's stand-in, and a local NaturalScore judge for tests."""
    return tiny_component("eval-gme", _build_gme)
