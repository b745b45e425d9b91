"""One UNet call with reference frames: the layout, text-embedding repetition and PISA kwargs in one place."""

from __future__ import annotations

import dataclasses

import torch

from vm_common.config import ConfigError

from .pisa import check_pisa_installed, pisa_kwargs


def max_frames(unet) -> int | None:
    """Most frames (generated + reference) the motion modules' positional encoding supports."""
    model = getattr(unet, "module", unet)  # DistributedDataParallel keeps the model in .module
    return getattr(model.config, "motion_max_seq_length", None)


def check_frame_count(unet, num_frames: int, num_references: int) -> None:
    limit = max_frames(unet)
    total = num_frames + num_references
    if limit is not None and total > limit:
        raise ConfigError(  # a user's frame count (flag or config): exit 2 with this line
            f"{num_frames} generated + {num_references} reference frames = {total} exceeds the motion modules' "
            f"maximum sequence length {limit}; use at most {limit - num_references} frames"
        )


def unet_with_reference(
    unet,
    noisy_video: torch.Tensor,
    reference: torch.Tensor | None,
    timestep: torch.Tensor | int,
    text_embeds: torch.Tensor,
    added_cond_kwargs: dict | None = None,
    reference_weight: float = 1.0,
    routing=None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``unet`` on ``[video frames ; reference frames]`` and split the prediction.

    noisy_video: (B, C, F, h, w); reference: (B, C, R, h, w) or None; text_embeds: (B, L, D) (repeated per frame
    here, as diffusers' UNetMotionModel expects (B*T, L, D)); reference_weight: the reference's weight w in [0, 1]
    inside PISA for this call (``vm_model.pisa``; 1 = the paper, passed as nothing); routing: a
    :class:`vm_model.routing.RoutingControl` for this call (None: layers with a router route softly). Returns (video prediction
    (B, C, F, h, w), reference prediction (B, C, R, h, w) or None).
    """
    frames = noisy_video.shape[2]
    refs = 0 if reference is None else reference.shape[2]
    check_frame_count(unet, frames, refs)
    if refs:
        check_pisa_installed(unet, weighted=reference_weight != 1.0, routed=routing is not None)
    elif reference_weight != 1.0:
        raise ValueError(f"reference weight {reference_weight} given for a call without reference frames")
    if routing is not None and routing.latent_hw is None:  # the token grids (a neighbourhood router); same capture
        routing = dataclasses.replace(routing, latent_hw=tuple(noisy_video.shape[-2:]))
    sample = noisy_video if reference is None else torch.cat([noisy_video, reference.to(noisy_video.dtype)], dim=2)
    total = frames + refs
    if text_embeds.shape[0] != noisy_video.shape[0]:
        raise ValueError(f"text embeddings for {text_embeds.shape[0]} samples, video batch {noisy_video.shape[0]}")
    encoder_hidden_states = text_embeds.repeat_interleave(total, dim=0)
    out = unet(
        sample, timestep, encoder_hidden_states=encoder_hidden_states,
        cross_attention_kwargs=pisa_kwargs(total, refs, reference_weight, routing) if refs else None,
        added_cond_kwargs=added_cond_kwargs, return_dict=False,
    )[0]
    if refs == 0:
        return out, None
    return out[:, :, :frames], out[:, :, frames:]
