"""Classifier-free guidance of a reference-conditioned video model: the paper's single scale, or separate text and
reference scales.

The paper (and the official release) guides with one scale s over two branches, the unconditional one being the
negative prompt together with an all-zero reference latent:

    eps = eps(uncond) + s * (eps(text, ref) - eps(uncond))

Separate guidance adds a third branch, the negative prompt with the reference, and splits the direction in two:

    eps = eps(uncond) + s_text * (eps(text, ref) - eps(uncond, ref)) + s_ref * (eps(uncond, ref) - eps(uncond))

With s_text = s_ref = s it is the paper's guidance (the two differences telescope); lowering s_ref against s_text
lets the prompt win over what the reference shows. The branch order in the batch is fixed here and in
:func:`guidance_branches`.
"""

from __future__ import annotations

import math

import torch

TWO_BRANCHES = ("uncond", "text_ref")  # the paper: (negative prompt, zero reference), (prompt, reference)
THREE_BRANCHES = ("uncond", "uncond_ref", "text_ref")  # + (negative prompt, reference)


def check_reference_guidance_scale(scale: float | None) -> None:
    if scale is not None and not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"reference_guidance_scale must be a finite number >= 0 or None, got {scale}")


def guidance_branches(separate: bool) -> tuple[str, ...]:
    """The branches of one guided UNet call, in batch order."""
    return THREE_BRANCHES if separate else TWO_BRANCHES


def single_scale(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """The paper's guidance (the release's expression, unchanged)."""
    return uncond + scale * (cond - uncond)


def separate_scales(uncond: torch.Tensor, uncond_ref: torch.Tensor, text_ref: torch.Tensor, text_scale: float,
                    reference_scale: float) -> torch.Tensor:
    """Text and reference guided separately (module docstring)."""
    return uncond + text_scale * (text_ref - uncond_ref) + reference_scale * (uncond_ref - uncond)


def combine(prediction: torch.Tensor, guidance_scale: float, reference_guidance_scale: float | None) -> torch.Tensor:
    """The guided prediction from a batch stacked as :func:`guidance_branches` says (chunks along dim 0)."""
    if reference_guidance_scale is None:
        uncond, cond = prediction.chunk(2)
        return single_scale(uncond, cond, guidance_scale)
    uncond, uncond_ref, text_ref = prediction.chunk(3)
    return separate_scales(uncond, uncond_ref, text_ref, guidance_scale, reference_guidance_scale)
