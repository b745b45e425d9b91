"""Tiny UNetMotionModel built in memory for the model tests (same configs as the tiny preset)."""

from __future__ import annotations

import torch


def tiny_motion_unet(seed: int = 0):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from vm_model.tiny import tiny_motion_adapter_config, tiny_unet_config

    torch.manual_seed(seed)
    unet2d = UNet2DConditionModel(**tiny_unet_config())
    adapter = MotionAdapter(**tiny_motion_adapter_config())
    unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    # random, non-trivial motion modules (the adapter zero-initialises proj_out)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "motion_modules" in name and "proj_out" in name:
                p.normal_(0, 0.02)
    return unet.eval()


def unet_inputs(batch: int = 2, frames: int = 4, refs: int = 1, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 4, frames, 8, 8, generator=g)
    ref = torch.randn(batch, 4, refs, 8, 8, generator=g) if refs else None
    text = torch.randn(batch, 7, 32, generator=g)
    return video, ref, text


def randomize_routers(unet, seed: int = 3) -> None:
    """Give every ID router (vm_model.routing) random weights, so that routing visibly changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if ".vm_router." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
