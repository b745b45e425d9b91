"""The toy base model folder: a tiny UNet / CLIP text encoder / motion adapter (random, built by
:mod:`vm_model.tiny`'s builders with the toy's specs) and a small VAE trained on the toy domain, saved in diffusers'
layout so that `vm train` and ``load_pipeline`` read it through exactly the code they use for Stable Diffusion 1.5 +
AnimateDiff.

The VAE differs from the tiny preset's: 3 levels (downsampling x4, so that 32x32 frames give 8x8 latents; 2 levels
for the scaled-down test's 16x16 frames), no mid-block attention, and it is trained (reconstruction MSE + a small KL
term) because a random decoder cannot carry appearance. Its ``scaling_factor`` is set to 1 / std of the domain's
latents, as Stable Diffusion's 0.18215 was.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from vm_model.tiny import (BaseSpec, MotionAdapterSpec, TextEncoderSpec, UNetSpec, VAESpec, build_base,
                           build_motion_adapter)

logger = logging.getLogger(__name__)

VAE_CHANNELS = (16, 16, 32)  # the 3-level toy VAE; 2 levels use the last two


def toy_base_spec(seed: int = 0, size: int = 32, max_tokens: int = 8, text_layers: int = 2,
                  token_embedding_scale: float = 1.0, prediction_type: str = "epsilon", vae_levels: int = 3
                  ) -> BaseSpec:
    """The toy base: the tiny preset's UNet with one attention head per layer (on CPU, several tiny heads cost more
    than they bring) on latents of ``size / 2 ** (vae_levels - 1)`` pixels, and a ``vae_levels``-level VAE with
    small channels and no mid-block attention (it runs on every training step, so its cost matters as much as the
    UNet's on CPU)."""
    if vae_levels not in (2, 3):
        raise ValueError(f"the toy VAE has 2 or 3 levels (downsampling x2 or x4), not {vae_levels}")
    vae = VAESpec(block_out_channels=VAE_CHANNELS[-vae_levels:], sample_size=size, mid_block_attention=False)
    return BaseSpec(unet=UNetSpec(sample_size=size // vae.downsampling, attention_head_dim=1), vae=vae,
                    text_encoder=TextEncoderSpec(layers=text_layers, token_embedding_scale=token_embedding_scale),
                    max_tokens=max_tokens, prediction_type=prediction_type, seed=seed)


def build_toy_base(folder: str | Path, seed: int = 0, size: int = 32, max_tokens: int = 8, text_layers: int = 2,
                   token_embedding_scale: float = 1.0, prediction_type: str = "epsilon", vae_levels: int = 3) -> Path:
    """Write unet/ vae/ (untrained) text_encoder/ tokenizer/ scheduler/ into ``folder`` (see :func:`toy_base_spec`).

    The tokenizer is the full CLIP BPE tokenizer with ``model_max_length = max_tokens``: the toy captions are five
    words, and with 77 positions the frozen random text encoder's embeddings of "moving left" and "moving right"
    differ by about 10% (relative L2), with 8 by about 18%, which the UNet picks up faster."""
    return build_base(folder, toy_base_spec(seed, size, max_tokens, text_layers, token_embedding_scale,
                                            prediction_type, vae_levels))


def build_toy_motion_adapter(folder: str | Path, seed: int = 0) -> Path:
    """The tiny preset's motion adapter (it matches the toy UNet's channels)."""
    return build_motion_adapter(folder, MotionAdapterSpec(), seed=seed)


def train_toy_vae(vae_dir: str | Path, images: np.ndarray, steps: int, batch_size: int = 32, lr: float = 2e-3,
                  kl_weight: float = 1e-6, subject_weight: float = 0.0, logvar_init: float = -8.0,
                  seed: int = 0) -> dict:
    """Train the VAE in ``vae_dir`` on ``images`` (N, H, W, 3) uint8 and save it back with its scaling factor.

    Loss: pixel MSE of the reconstruction from a posterior sample + ``kl_weight`` x KL. Returns a summary
    (losses, reconstruction error on the training images in 0..255 units, scaling factor, seconds)."""
    from diffusers import AutoencoderKL
    from tqdm.auto import tqdm

    vae_dir = Path(vae_dir)
    torch.manual_seed(seed)
    vae = AutoencoderKL.from_pretrained(vae_dir).train()
    with torch.no_grad():  # start from a narrow posterior (std exp(logvar_init / 2)): reconstruction learns at once
        latent = vae.config.latent_channels
        vae.quant_conv.bias[latent:] = logvar_init
    data = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    g = torch.Generator().manual_seed(seed)
    from .domain import BACKGROUND

    bg = torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1.0
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.1)
    t0 = time.perf_counter()
    losses = []
    for step in tqdm(range(steps), desc="vae", disable=not logger.isEnabledFor(logging.INFO)):
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        x = data[idx]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        err = (rec - x).pow(2)
        mse = err.mean()
        if subject_weight:  # extra weight on pixels that are neither the video background nor the white one
            subject = ((x - bg).abs().amax(1, keepdim=True) > 0.1) & ((x - 1).abs().amax(1, keepdim=True) > 0.1)
            mse_w = (err * (1 + subject_weight * subject)).mean()
        else:
            mse_w = mse
        kl = post.kl().mean() / x[0].numel()
        loss = mse_w + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(mse.detach()))
    vae.eval()
    with torch.no_grad():
        probe = data[torch.randperm(len(data), generator=g)[:256]]
        mean = torch.cat([vae.encode(probe[i:i + 64]).latent_dist.mean for i in range(0, len(probe), 64)])
        rec = torch.cat([vae.decode(mean[i:i + 64]).sample for i in range(0, len(mean), 64)])
        diff = (rec.clamp(-1, 1) - probe).abs()
        mae = float(diff.mean() * 127.5)
        subject = ((probe - bg).abs().amax(1) > 0.1) & ((probe - 1).abs().amax(1) > 0.1)
        subject_mae = float(diff.mean(1)[subject].mean() * 127.5)
        scaling = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    vae.save_pretrained(vae_dir)
    summary = {"steps": steps, "batch_size": batch_size, "lr": lr, "kl_weight": kl_weight,
               "final_mse": float(np.mean(losses[-20:])) if losses else None, "reconstruction_mae_255": mae,
               "subject_reconstruction_mae_255": subject_mae,
               "scaling_factor": scaling, "seconds": time.perf_counter() - t0,
               "loss_curve": [float(np.mean(losses[i:i + 20])) for i in range(0, len(losses), 20)]}
    logger.info("toy VAE: %d steps, reconstruction MAE %.2f/255 (subject pixels %.2f), scaling factor %.3f (%.0f s)",
                steps, mae, subject_mae, scaling, summary["seconds"])
    return summary
