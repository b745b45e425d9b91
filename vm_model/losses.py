"""The training objective as pure functions: MSE to the target (the noise, or the velocity for a v-prediction
base; ``vm_model.scheduler.training_target``) on the video plus GIRL on the reference frame(s)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def girl_timesteps(timesteps: torch.Tensor, alpha: float) -> torch.Tensor:
    """t' = round(alpha * t): the remind-noise level of the reference (paper eq. 3)."""
    return torch.round(timesteps.float() * alpha).long()


def add_remind_noise(scheduler, reference: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                     alpha: float) -> torch.Tensor:
    """r_t' = sqrt(acp[t']) r + sqrt(1 - acp[t']) eps_r with the training scheduler's ``add_noise``.

    Note that t' = 0 still adds noise of std sqrt(1 - acp[0]) (0.029 for SD1.5's betas)."""
    return scheduler.add_noise(reference, noise, girl_timesteps(timesteps, alpha).to(reference.device))


@dataclass
class LossTerms:
    total: torch.Tensor
    video: torch.Tensor
    reg: torch.Tensor
    routing: torch.Tensor | None = None  # the routing loss (vm_model.routing), when a router is trained on masks


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the samples where ``mask`` (B,) is true; 0 (with a graph) when none is."""
    per_sample = (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    weights = mask.to(per_sample.dtype)
    return (per_sample * weights).sum() / weights.sum().clamp(min=1.0)


def videomaker_loss(pred_video: torch.Tensor, target_video: torch.Tensor, pred_ref: torch.Tensor | None,
                    target_ref: torch.Tensor | None, reference_kept: torch.Tensor, beta: float,
                    girl: bool = True) -> LossTerms:
    """L = L_video + beta * L_reg (paper eq. 5). The targets are the noises added (epsilon prediction, the paper's
    case) or the matching velocities (v prediction), each at its own timestep (t for the video, t' for the reference).

    ``reference_kept`` (B,) masks the GIRL term for samples whose image condition was dropped (zero latent): there
    is no reference to recognise there. With ``girl=False`` the reference output is simply discarded.
    """
    video = F.mse_loss(pred_video.float(), target_video.float())
    if girl and pred_ref is not None and target_ref is not None:
        reg = masked_mse(pred_ref, target_ref, reference_kept)
    else:
        reg = torch.zeros((), device=video.device)
    return LossTerms(total=video + beta * reg, video=video, reg=reg)
