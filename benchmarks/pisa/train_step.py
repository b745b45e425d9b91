"""One training step of the PISA UNet: its peak memory and time, with or without full gradient checkpointing.

Forward + backward of the loss (``videomaker_loss``, beta 0.1) with PISA concat; trainable = spatial ``attn1`` +
motion modules (``vm_model.train.set_trainable``), the rest frozen; with a dtype other than float32, trainable
weights stay float32 and the forward autocasts, as in ``vm_model.train``.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from benchmarks.harness.device import sync
from benchmarks.harness.memory import PeakMemory, peak_fields
from benchmarks.harness.timing import timed
from benchmarks.pisa.model import make_inputs

CHECKPOINTING_RUNS = (("no_checkpointing", False), ("checkpointing", True))  # run name, checkpointing on


def prepare_for_training(unet, checkpointing: bool, dtype: torch.dtype) -> int:
    """PISA concat, the trainable set of ``vm_model.train`` (returns its parameter count), checkpointing on or off,
    trainable weights float32 and frozen ones in ``dtype``, train mode."""
    from vm_model.grad_checkpointing import disable_full_gradient_checkpointing, enable_full_gradient_checkpointing
    from vm_model.pisa import PISAConfig, install_pisa
    from vm_model.train import set_trainable

    install_pisa(unet, PISAConfig())
    n_trainable = set_trainable(unet, train_motion_modules=True)
    if checkpointing:
        enable_full_gradient_checkpointing(unet)
    else:
        disable_full_gradient_checkpointing(unet)
    mixed = dtype != torch.float32
    for p in unet.parameters():
        p.data = p.data.to(dtype if (mixed and not p.requires_grad) else torch.float32)
        p.grad = None
    unet.train()
    return n_trainable


def training_step_memory(unet, preset: str, frames: int, resolution: int, checkpointing: bool, device: str,
                         dtype: torch.dtype) -> dict:
    """Peak memory (and time) of one training step above the loaded model, including the gradients of the
    trainable parameters (``grad_bytes``)."""
    from vm_model.losses import videomaker_loss
    from vm_model.unet_call import unet_with_reference

    n_trainable = prepare_for_training(unet, checkpointing, dtype)
    inputs = make_inputs(preset, frames, 1, resolution, device, torch.float32)
    g = torch.Generator().manual_seed(2)
    noise_video = torch.randn(inputs["noisy_video"].shape, generator=g).to(device)
    noise_ref = torch.randn(inputs["reference"].shape, generator=g).to(device)
    kept = torch.ones(1, dtype=torch.bool, device=device)
    autocast = (torch.autocast(device_type=device.split(":")[0], dtype=dtype) if dtype != torch.float32
                else nullcontext())

    def step():
        with autocast:
            pred_video, pred_ref = unet_with_reference(unet, inputs["noisy_video"], inputs["reference"],
                                                       inputs["timestep"], inputs["text_embeds"])
        loss = videomaker_loss(pred_video, noise_video, pred_ref, noise_ref, kept, beta=0.1).total
        loss.backward()
        return loss

    with PeakMemory(device) as mem:
        t = timed(step, lambda: sync(device))
    trainable = [p for p in unet.parameters() if p.requires_grad]
    with_grad = sum(1 for p in trainable if p.grad is not None)
    grad_bytes = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
    return dict(checkpointing=checkpointing, **peak_fields(mem), time_s=t.wall_s, loss=float(t.value.detach()),
                trainable_params=n_trainable, trainable_tensors=len(trainable), trainable_tensors_with_grad=with_grad,
                grad_bytes=grad_bytes)
