"""Tiny, random, deterministic AnimateDiff components for the `tiny` preset (built offline, saved in diffusers'
and transformers' own formats so that they load through the same code as the real base model)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch

from vm_common.tiny import save_transformers_model, tiny_component

TINY_RESOLUTION = 64  # pixels; the tiny VAE downsamples by 8 like the real one
TINY_TEXT_DIM = 32


def _write_clip_tokenizer(folder: Path) -> None:
    """Write the full CLIP BPE tokenizer (vocab.json, merges.txt) from the vocabulary that ships inside open_clip."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        merges = fh.read().split("\n")[1: 49152 - 256 - 2 + 1]
    merge_pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in merge_pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in merge_pairs) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }))


def tiny_unet_config() -> dict:
    return dict(
        sample_size=TINY_RESOLUTION // 8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, cross_attention_dim=TINY_TEXT_DIM, norm_num_groups=8, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )


def tiny_motion_adapter_config() -> dict:
    return dict(block_out_channels=(32, 64), motion_layers_per_block=1, motion_norm_num_groups=8,
                motion_num_attention_heads=4, motion_max_seq_length=32)


def _build_base(folder: Path) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .scheduler import DDIM_CONFIG

    torch.manual_seed(0)
    UNet2DConditionModel(**tiny_unet_config()).save_pretrained(folder / "unet")
    torch.manual_seed(0)
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 32, 32), layers_per_block=1,
        norm_num_groups=8, sample_size=TINY_RESOLUTION,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ).save_pretrained(folder / "vae")
    torch.manual_seed(0)
    save_transformers_model(CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=TINY_TEXT_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )), folder / "text_encoder")
    _write_clip_tokenizer(folder / "tokenizer")
    DDIMScheduler(**DDIM_CONFIG).save_pretrained(folder / "scheduler")


def _build_motion_adapter(folder: Path) -> None:
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    MotionAdapter(**tiny_motion_adapter_config()).save_pretrained(folder)


def tiny_base_model() -> Path:
    """A folder in the Stable Diffusion diffusers layout (unet/ vae/ text_encoder/ tokenizer/ scheduler/)."""
    return tiny_component("sd15-base", _build_base)


def tiny_motion_adapter() -> Path:
    return tiny_component("motion-adapter", _build_motion_adapter)
