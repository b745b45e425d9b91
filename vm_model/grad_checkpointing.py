"""Gradient checkpointing that covers the whole UNetMotionModel, motion modules included.

diffusers' ``enable_gradient_checkpointing()`` covers resnets, spatial transformer blocks and the mid block, but
not the motion modules of the down/up blocks, which hold most of the activation memory at 16+ frames. Those are
wrapped with PyTorch's own activation-checkpoint wrapper (non-reentrant), whose state-dict hooks keep the
parameter names unchanged, so checkpoints are identical with and without it.
"""

from __future__ import annotations

import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointImpl,
    CheckpointWrapper,
    checkpoint_wrapper,
)


def _motion_module_lists(unet) -> list[torch.nn.ModuleList]:
    return [block.motion_modules for block in list(unet.down_blocks) + list(unet.up_blocks)
            if hasattr(block, "motion_modules")]


def enable_full_gradient_checkpointing(unet) -> None:
    unet.enable_gradient_checkpointing()
    for modules in _motion_module_lists(unet):
        for i, module in enumerate(modules):
            if not isinstance(module, CheckpointWrapper):
                modules[i] = checkpoint_wrapper(module, checkpoint_impl=CheckpointImpl.NO_REENTRANT)


def disable_full_gradient_checkpointing(unet) -> None:
    unet.disable_gradient_checkpointing()
    for modules in _motion_module_lists(unet):
        for i, module in enumerate(modules):
            if isinstance(module, CheckpointWrapper):
                modules[i] = module._checkpoint_wrapped_module
