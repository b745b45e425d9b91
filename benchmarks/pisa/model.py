"""The UNet the PISA benchmarks measure, its forward variants and its inputs.

Full SD1.5 UNet + v1-5 motion adapter (``MotionAdapter()`` defaults, ``motion_max_seq_length`` 32) with random
weights built offline, or the tiny configs of ``vm_model/tiny.py``. Forward variants:

* ``stock``        stock AnimateDiff, F frames, no reference (stock attention processors)
* ``no_pisa``      F + 1 frames, ``PISAConfig(enabled=False)`` (the reference is only an extra frame)
* ``pisa_concat``  F + 1 frames, PISA ``mode="concat"`` (the method as trained)
* ``pisa_lse``     F + 1 frames, PISA ``mode="lse"`` (inference-only exact merge)
* ``official``     F + 1 frames, the official release's layout: the reference repeated next to every frame and
                   projected F times (``benchmarks/pisa/official.py``; same result as ``pisa_concat``)
"""

from __future__ import annotations

import torch

from benchmarks.harness.flops import flop_counter

SD15_UNET_CONFIG = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                        layers_per_block=2, sample_size=64)
TEXT_TOKENS = 77
# The full-size encoders beside the UNet, from their published configs (random weights in the benchmarks):
# diffusers' AutoencoderKL as in runwayml/stable-diffusion-v1-5 vae/config.json, and transformers' CLIPTextConfig of
# openai/clip-vit-large-patch14 (SD1.5's text encoder)
SD15_VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                       layers_per_block=2, norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
                       down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
CLIP_L_TEXT_CONFIG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                          bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
FORWARD_VARIANTS = ("stock", "no_pisa", "pisa_concat", "pisa_lse", "official")
VARIANT_DESCRIPTIONS = {
    "stock": "stock AnimateDiff, F frames, no reference",
    "no_pisa": "F + 1 frames, PISAConfig(enabled=False)",
    "pisa_concat": "F + 1 frames, PISA concat",
    "pisa_lse": "F + 1 frames, PISA lse (inference)",
    "official": "F + 1 frames, the official release's repeated-reference layout",
}


def model_configs(preset: str) -> tuple[dict, dict, int]:
    """(UNet2DConditionModel kwargs, MotionAdapter kwargs, text embedding width) of a preset."""
    if preset == "full":
        return dict(SD15_UNET_CONFIG), {}, SD15_UNET_CONFIG["cross_attention_dim"]
    if preset == "tiny":
        from vm_model.tiny import TINY_TEXT_DIM, tiny_motion_adapter_config, tiny_unet_config

        return tiny_unet_config(), tiny_motion_adapter_config(), TINY_TEXT_DIM
    raise ValueError(f"unknown preset {preset!r}")


def meta_unet(preset: str):
    """The UNetMotionModel of a preset on the meta device (no memory, no weights)."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    unet_cfg, adapter_cfg, _ = model_configs(preset)
    with torch.device("meta"):
        return UNetMotionModel.from_unet2d(UNet2DConditionModel(**unet_cfg), MotionAdapter(**adapter_cfg),
                                           load_weights=False)


def _adapter_state_dict(adapter, unet) -> dict[str, torch.Tensor]:
    """The motion adapter's weights under the UNetMotionModel's parameter names (what ``load_motion_modules`` loads)."""
    out: dict[str, torch.Tensor] = {}
    groups = [(f"down_blocks.{i}", b) for i, b in enumerate(adapter.down_blocks)]
    groups += [(f"up_blocks.{i}", b) for i, b in enumerate(adapter.up_blocks)]
    if hasattr(unet.mid_block, "motion_modules") and getattr(adapter, "mid_block", None) is not None:
        groups.append(("mid_block", adapter.mid_block))
    for prefix, block in groups:
        for key, value in block.motion_modules.state_dict().items():
            out[f"{prefix}.motion_modules.{key}"] = value
    return out


def build_unet(preset: str, seed: int = 0):
    """Random-weight UNetMotionModel with the same weights as
    ``torch.manual_seed(seed); UNetMotionModel.from_unet2d(UNet2DConditionModel(**cfg), MotionAdapter(**cfg))``.

    The tensors of the 2-D UNet and of the adapter are assigned into a meta-device skeleton instead of being copied,
    so building the full model peaks at one copy of the weights (~5.3 GB) instead of two.
    """
    from diffusers import MotionAdapter, UNet2DConditionModel

    unet_cfg, adapter_cfg, _ = model_configs(preset)
    model = meta_unet(preset)
    wanted = set(model.state_dict())
    torch.manual_seed(seed)
    unet2d = UNet2DConditionModel(**unet_cfg)
    res = model.load_state_dict(unet2d.state_dict(), strict=False, assign=True)
    if res.unexpected_keys:
        raise RuntimeError(f"UNet2D weights with no place in the motion UNet: {res.unexpected_keys[:5]}")
    del unet2d
    adapter = MotionAdapter(**adapter_cfg)
    motion = _adapter_state_dict(adapter, model)
    if set(res.missing_keys) != set(motion):
        raise RuntimeError("motion adapter weights do not cover the motion UNet's remaining weights")
    model.load_state_dict(motion, strict=False, assign=True)
    del adapter, motion
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover or set(model.state_dict()) != wanted:
        raise RuntimeError(f"weights left unset: {leftover[:5]}")
    return model.eval()


def load_unet(preset: str, weights: str, device: str, dtype: torch.dtype):
    """The model saved by the ``build`` job (``benchmarks.pisa.jobs``), loaded without an intermediate copy."""
    model = meta_unet(preset)
    state = torch.load(weights, map_location=device, weights_only=True)
    model.load_state_dict(state, strict=True, assign=True)
    del state
    if dtype != torch.float32:
        model = model.to(dtype=dtype)
    return model.eval()


def make_inputs(preset: str, frames: int, refs: int, resolution: int, device: str, dtype: torch.dtype,
                seed: int = 1) -> dict:
    """Batch-1 inputs of one UNet call: noisy video (1, 4, F, h, w), reference (1, 4, R, h, w) or None, text."""
    _, _, text_dim = model_configs(preset)
    side = resolution // 8
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(1, 4, frames, side, side, generator=g)
    ref = torch.randn(1, 4, refs, side, side, generator=g) if refs else None
    text = torch.randn(1, TEXT_TOKENS, text_dim, generator=g)
    to = dict(device=device, dtype=dtype)
    return dict(noisy_video=video.to(**to), reference=None if ref is None else ref.to(**to),
                text_embeds=text.to(**to), timestep=torch.tensor([500], device=device))


def apply_variant(unet, variant: str) -> int:
    """Install the attention processors of a forward variant; returns its number of reference frames."""
    from vm_model.pisa import PISAConfig, install_pisa, uninstall_pisa

    if variant == "stock":
        uninstall_pisa(unet)
        return 0
    if variant == "official":
        from benchmarks.pisa.official import install_official_layout

        install_official_layout(unet)
        return 1
    configs = {"no_pisa": PISAConfig(enabled=False), "pisa_concat": PISAConfig(mode="concat"),
               "pisa_lse": PISAConfig(mode="lse")}
    if variant not in configs:
        raise ValueError(f"unknown variant {variant!r}")
    install_pisa(unet, configs[variant])
    return 1


def unet_call(unet, inputs: dict):
    """One UNet call on :func:`make_inputs`' inputs, through the same entry point as training and generation."""
    from vm_model.unet_call import unet_with_reference

    return unet_with_reference(unet, inputs["noisy_video"], inputs["reference"], inputs["timestep"],
                               inputs["text_embeds"])


def count_forward_flops(preset: str, variant: str, frames: int, resolution: int) -> int:
    """FLOPs of one UNet call of ``variant`` at batch 1, counted on the meta device."""
    unet = meta_unet(preset)
    refs = apply_variant(unet, variant)
    inputs = make_inputs(preset, frames, refs, resolution, "meta", torch.float32)
    counter = flop_counter()
    with torch.inference_mode(), counter:
        unet_call(unet, inputs)
    return int(counter.get_total_flops())
