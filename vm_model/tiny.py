"""Small AnimateDiff components built offline from parameterised specs, saved in diffusers' and transformers' own
formats so that they load through the same code as the real base model.

The ``tiny`` preset's random components (:func:`tiny_base_model`, :func:`tiny_motion_adapter`) use the default
specs; the toy model (:mod:`vm_model.toy.components`) builds its base from the same builders with its own specs.
Every builder seeds torch right before it creates its module, so a spec and a seed give the same weights.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vm_common.tiny import save_transformers_model, tiny_component

TINY_RESOLUTION = 64  # pixels; the tiny VAE downsamples by 8 like the real one
TINY_TEXT_DIM = 32
LATENT_CHANNELS = 4
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_POSITIONS = 77


@dataclass(frozen=True)
class UNetSpec:
    """A 2D conditional UNet: one cross-attention level per entry of ``block_out_channels`` but the last."""

    sample_size: int = TINY_RESOLUTION // 8  # latent pixels
    block_out_channels: tuple[int, ...] = (32, 64)
    cross_attention_dim: int = TINY_TEXT_DIM
    attention_head_dim: int = 8

    def config(self) -> dict:
        levels = len(self.block_out_channels)
        return dict(
            sample_size=self.sample_size, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
            block_out_channels=tuple(self.block_out_channels), layers_per_block=1,
            cross_attention_dim=self.cross_attention_dim, norm_num_groups=8,
            attention_head_dim=self.attention_head_dim,
            down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        )


@dataclass(frozen=True)
class VAESpec:
    """A KL autoencoder with one level per entry of ``block_out_channels`` (downsampling x2 ** (levels - 1))."""

    block_out_channels: tuple[int, ...] = (16, 16, 32, 32)
    sample_size: int = TINY_RESOLUTION
    mid_block_attention: bool = True

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    def config(self) -> dict:
        levels = len(self.block_out_channels)
        return dict(
            in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
            block_out_channels=tuple(self.block_out_channels), layers_per_block=1, norm_num_groups=8,
            sample_size=self.sample_size, mid_block_add_attention=self.mid_block_attention,
            down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        )


@dataclass(frozen=True)
class TextEncoderSpec:
    """A CLIP text transformer over the full CLIP vocabulary; ``token_embedding_scale`` multiplies its random
    token embeddings after initialisation (>1: word identity outweighs the position embedding)."""

    hidden_size: int = TINY_TEXT_DIM
    layers: int = 2
    intermediate_size: int = 64
    heads: int = 4
    token_embedding_scale: float = 1.0

    def config(self) -> dict:
        return dict(vocab_size=CLIP_VOCAB_SIZE, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
                    num_hidden_layers=self.layers, num_attention_heads=self.heads,
                    max_position_embeddings=CLIP_MAX_POSITIONS, bos_token_id=49406, eos_token_id=49407,
                    pad_token_id=49407)


@dataclass(frozen=True)
class MotionAdapterSpec:
    """An AnimateDiff motion adapter matching a UNet with the same ``block_out_channels``."""

    block_out_channels: tuple[int, ...] = (32, 64)
    heads: int = 4
    max_seq_length: int = 32

    def config(self) -> dict:
        return dict(block_out_channels=tuple(self.block_out_channels), motion_layers_per_block=1,
                    motion_norm_num_groups=8, motion_num_attention_heads=self.heads,
                    motion_max_seq_length=self.max_seq_length)


@dataclass(frozen=True)
class BaseSpec:
    """A base model folder in the Stable Diffusion diffusers layout."""

    unet: UNetSpec = field(default_factory=UNetSpec)
    vae: VAESpec = field(default_factory=VAESpec)
    text_encoder: TextEncoderSpec = field(default_factory=TextEncoderSpec)
    max_tokens: int = CLIP_MAX_POSITIONS  # the tokenizer's model_max_length
    prediction_type: str = "epsilon"  # recorded in scheduler/scheduler_config.json; training and DDIM follow it
    seed: int = 0


def tiny_unet_config() -> dict:
    return UNetSpec().config()


def tiny_motion_adapter_config() -> dict:
    return MotionAdapterSpec().config()


def write_clip_tokenizer(folder: Path, max_length: int = CLIP_MAX_POSITIONS) -> None:
    """Write the full CLIP BPE tokenizer (vocab.json, merges.txt) from the vocabulary that ships inside open_clip,
    with ``model_max_length = max_length``."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        merges = fh.read().split("\n")[1: 49152 - 256 - 2 + 1]
    merge_pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in merge_pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in merge_pairs) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": int(max_length), "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }))


def build_unet(folder: Path, spec: UNetSpec, seed: int = 0) -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    UNet2DConditionModel(**spec.config()).save_pretrained(folder)


def build_vae(folder: Path, spec: VAESpec, seed: int = 0) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(**spec.config()).save_pretrained(folder)


def build_text_encoder(folder: Path, spec: TextEncoderSpec, seed: int = 0) -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    model = CLIPTextModel(CLIPTextConfig(**spec.config()))
    if spec.token_embedding_scale != 1.0:
        with torch.no_grad():
            model.embeddings.token_embedding.weight.mul_(spec.token_embedding_scale)
    save_transformers_model(model, folder)


def write_scheduler(folder: Path, prediction_type: str = "epsilon") -> None:
    """DDIM with the release's config (:data:`vm_model.scheduler.DDIM_CONFIG`) and ``prediction_type``."""
    from diffusers import DDIMScheduler

    from .scheduler import DDIM_CONFIG

    DDIMScheduler(**{**DDIM_CONFIG, "prediction_type": prediction_type}).save_pretrained(folder)


def build_base(folder: str | Path, spec: BaseSpec = BaseSpec()) -> Path:
    """Write unet/ vae/ text_encoder/ tokenizer/ scheduler/ into ``folder`` (diffusers' SD layout)."""
    folder = Path(folder)
    build_unet(folder / "unet", spec.unet, spec.seed)
    build_vae(folder / "vae", spec.vae, spec.seed)
    build_text_encoder(folder / "text_encoder", spec.text_encoder, spec.seed)
    write_clip_tokenizer(folder / "tokenizer", spec.max_tokens)
    write_scheduler(folder / "scheduler", spec.prediction_type)
    return folder


def build_motion_adapter(folder: str | Path, spec: MotionAdapterSpec = MotionAdapterSpec(), seed: int = 0) -> Path:
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    MotionAdapter(**spec.config()).save_pretrained(folder)
    return Path(folder)


def tiny_base_model() -> Path:
    """A folder in the Stable Diffusion diffusers layout (unet/ vae/ text_encoder/ tokenizer/ scheduler/)."""
    return tiny_component("sd15-base", build_base)


def tiny_motion_adapter() -> Path:
    return tiny_component("motion-adapter", build_motion_adapter)
