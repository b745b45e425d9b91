"""The schedulers of the official release / paper protocol, and what the model is trained to predict.

Inference builds DDIM the way the official ``inference.py`` does: the base model's own
``scheduler/scheduler_config.json`` with the release's overrides (:data:`RELEASE_DDIM_OVERRIDES`: linear betas,
``clip_sample=False``, ``linspace`` spacing, ``steps_offset=1``); Stable Diffusion 1.5 ships ``scaled_linear`` there,
which the override replaces with AnimateDiff's linear schedule. A base without a scheduler config gets
:data:`DDIM_CONFIG` (the same numbers for SD 1.x). Training uses DDPM with the same fixed betas. What the UNet predicts
is a property of its weights: epsilon for SD 1.x / AnimateDiff (and the official VideoMaker weights),
``v_prediction`` for some bases (SD 2.x 768, our toy base). :func:`read_prediction_type` reads it from a base
model's scheduler config (``vm_model.components.base_model_prediction_type`` finds that file), and both training
(the loss target) and inference (the DDIM update) follow it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PREDICTION_TYPES = ("epsilon", "v_prediction")

NOISE_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                      clip_sample=False)
RELEASE_DDIM_OVERRIDES = dict(clip_sample=False, timestep_spacing="linspace", beta_schedule="linear", steps_offset=1)
DDIM_CONFIG = dict(**NOISE_SCHEDULE, timestep_spacing="linspace", steps_offset=1, prediction_type="epsilon",
                   set_alpha_to_one=False)


def check_prediction_type(prediction_type: str) -> str:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction type {prediction_type!r} is not supported; choose one of {PREDICTION_TYPES}")
    return prediction_type


def inference_scheduler(prediction_type: str = "epsilon"):
    """DDIM as used by the official inference and the paper's evaluation."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**{**DDIM_CONFIG, "prediction_type": check_prediction_type(prediction_type)})


def inference_scheduler_for(scheduler_config: str | Path | None, prediction_type: str | None = None):
    """DDIM from a base model's scheduler config file with the release's overrides (``None``: :data:`DDIM_CONFIG`).

    ``prediction_type`` overrides the file's (what the UNet predicts); the file's own value otherwise."""
    from diffusers import DDIMScheduler

    if scheduler_config is None:
        return inference_scheduler(prediction_type or "epsilon")
    try:
        config = json.loads(Path(scheduler_config).read_text())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the base model's scheduler config {scheduler_config}: {err}") from err
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    config.update(RELEASE_DDIM_OVERRIDES)
    config["prediction_type"] = check_prediction_type(prediction_type or config.get("prediction_type", "epsilon"))
    return DDIMScheduler.from_config(config)


def training_scheduler(prediction_type: str = "epsilon"):
    """DDPM with the same betas (its ``add_noise`` is the paper's forward process, used for video and GIRL noise)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE, prediction_type=check_prediction_type(prediction_type))


def training_target(scheduler, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet must output for ``add_noise(clean, noise, timesteps)``: the noise (epsilon) or the velocity
    sqrt(acp) * noise - sqrt(1 - acp) * clean (v_prediction), following ``scheduler.config.prediction_type``."""
    if check_prediction_type(scheduler.config.prediction_type) == "epsilon":
        return noise
    return scheduler.get_velocity(clean, noise, timesteps)


def read_prediction_type(scheduler_config: str | Path) -> str:
    """``prediction_type`` of a scheduler config file (diffusers' default, epsilon, when the key is absent)."""
    try:
        return check_prediction_type(json.loads(Path(scheduler_config).read_text()).get("prediction_type", "epsilon"))
    except (ValueError, AttributeError) as err:  # JSONDecodeError is a ValueError; AttributeError: not an object
        raise ValueError(f"cannot read the prediction type of the base model from {scheduler_config}: {err}") from err
