"""Exponential moving average of the trainable weights (``--ema-decay``), kept in fp32 beside the model.

After every optimizer step ``ema = decay * ema + (1 - decay) * weight`` for each parameter that requires grad
(the paper's trainable set, or the LoRA matrices). Only the trainable set is averaged, so the cost is one fp32 copy
of it, never a second UNet. :meth:`TrainableEMA.swapped_in` puts the averaged weights into the model for a block
(validation) and restores the raw ones after. Checkpoints hold it as ``ema.safetensors`` beside
``trainable.safetensors``, with the same keys, so that ``--resume`` continues it exactly and ``vm generate
--weights RUN/checkpoints/step-N/ema.safetensors`` generates with it.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from ..checkpoint import clean_parameter_name

EMA_FILE = "ema.safetensors"


class TrainableEMA:
    """The moving average of ``model``'s parameters that require grad, keyed by their clean names."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema-decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {
            clean_parameter_name(n): p.detach().float().clone() for n, p in model.named_parameters()
            if p.requires_grad}
        if not self.shadow:
            raise ValueError("EMA: the model has no trainable parameters")

    def _params(self, model: torch.nn.Module) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for name, param in model.named_parameters():
            if param.requires_grad:
                yield self.shadow[clean_parameter_name(name)], param

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for shadow, param in self._params(model):
            shadow.mul_(self.decay).add_(param.detach().float(), alpha=1.0 - self.decay)

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module):
        """The averaged weights in ``model`` for the block; the raw weights, bit for bit, after it."""
        pairs = list(self._params(model))
        backup = [param.detach().clone() for _, param in pairs]
        with torch.no_grad():
            for shadow, param in pairs:
                param.copy_(shadow.to(param.dtype))
        try:
            yield model
        finally:
            with torch.no_grad():
                for (_, param), raw in zip(pairs, backup):
                    param.copy_(raw)

    def state_dict(self, key: Callable[[str], str] = lambda k: k) -> dict[str, torch.Tensor]:
        """The averaged weights on the CPU, keyed by ``key(clean parameter name)``."""
        return {key(name): value.detach().to("cpu").contiguous() for name, value in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], key: Callable[[str], str] = lambda k: k) -> None:
        """Restore from :meth:`state_dict` (the same ``key``); every trainable parameter must be there."""
        by_key = {key(name): name for name in self.shadow}
        missing = sorted(set(by_key) - set(state))
        unexpected = sorted(set(state) - set(by_key))
        if missing or unexpected:
            raise ValueError(f"EMA state does not match the trainable parameters: {len(missing)} missing (first: "
                             f"{missing[:3]}), {len(unexpected)} unexpected (first: {unexpected[:3]})")
        for file_key, name in by_key.items():
            self.shadow[name].copy_(state[file_key].to(self.shadow[name].device, torch.float32))
