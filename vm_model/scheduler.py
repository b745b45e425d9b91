"""The schedulers of the official release / paper protocol."""

from __future__ import annotations

DDIM_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
    timestep_spacing="linspace", steps_offset=1, prediction_type="epsilon", set_alpha_to_one=False,
)


def inference_scheduler():
    """DDIM as used by the official inference and the paper's evaluation."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**DDIM_CONFIG)


def training_scheduler():
    """DDPM with the same betas (its ``add_noise`` is the paper's forward process, used for video and GIRL noise)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                         clip_sample=False, prediction_type="epsilon")
