"""`vm train` under FSDP (``accelerate launch --config_file configs/accelerate/fsdp.yaml``): what changes.

Under FSDP2 (``fully_shard``) every parameter, gradient and AdamW state tensor is a ``DTensor`` holding one shard per
process. Checkpoints stay the files a one-process or DDP run writes (``trainable.safetensors`` with the full
trainable weights under the UNet's own parameter names, ``state.pt`` with the optimizer's ``state_dict`` indexed as
torch indexes it), so a run resumes under DDP, FSDP or one process alike:

- saving: every process gathers (:func:`gathered_trainable_state`, :func:`gathered_optimizer_state`: collective
  ``full_tensor`` calls, in the same order on every process) and the main process writes;
- resuming: the weights load into the unsharded model before ``accelerator.prepare`` shards it; the optimizer state,
  whose tensors must match the sharded parameters, loads after it (:func:`shard_optimizer_state`).

FSDP1 (``fsdp_version: 1``) flattens parameters and is refused; so are LoRA, EMA and validation videos, which read
whole parameters on one process (not supported under FSDP here; use DDP for them).
"""

from __future__ import annotations

import torch

from vm_common.config import ConfigError

from ..checkpoint import clean_parameter_name


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def check_fsdp_supported(accelerator, *, lora: bool, ema: bool, validation: bool) -> None:
    """Refuse, with one line naming what, the settings `vm train` does not support under FSDP."""
    if not is_fsdp(accelerator):
        return
    if not getattr(accelerator, "is_fsdp2", False):
        raise ConfigError("FSDP1 (fsdp_version: 1) flattens parameters and is not supported by `vm train`; set "
                          "fsdp_version: 2 in the accelerate config (configs/accelerate/fsdp.yaml)")
    refused = [flag for flag, on in (("--lora-rank", lora), ("--ema-decay", ema), ("--validation-every", validation))
               if on]
    if refused:
        raise ConfigError(f"{', '.join(refused)} not supported under FSDP; use DDP (accelerate launch --multi_gpu) "
                          f"for them")


def full_tensor(value):
    """A DTensor gathered into one full tensor (a collective: every process must call it); anything else as is."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def gathered_trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters, full (gathered from the shards), on the CPU, keyed like
    :func:`vm_model.checkpoint.trainable_state_dict`. Every process must call it."""
    return {clean_parameter_name(n): full_tensor(p.detach()).to("cpu").contiguous()
            for n, p in model.named_parameters() if p.requires_grad}


def gathered_optimizer_state(optimizer) -> dict:
    """``optimizer.state_dict()`` with every sharded state tensor gathered and on the CPU: the dict an unsharded
    optimizer over the same parameters would return. Every process must call it."""
    state = optimizer.state_dict()
    gathered = {}
    for index in sorted(state["state"]):  # the same order on every process: the collectives pair up
        gathered[index] = {key: full_tensor(value).to("cpu") if isinstance(value, torch.Tensor) else value
                           for key, value in state["state"][index].items()}
    return {"state": gathered, "param_groups": state["param_groups"]}


def shard_optimizer_state(state: dict, optimizer) -> dict:
    """A full (unsharded) optimizer ``state_dict`` made to match ``optimizer``'s sharded parameters: each state
    tensor of a parameter's full shape becomes a DTensor laid out like the parameter (this process keeps its
    shard); scalars such as ``step`` stay. Raises ValueError when the state does not fit the parameters."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for index, entry in state["state"].items():
        index = int(index)
        if not 0 <= index < len(params):
            raise ValueError(f"optimizer state for parameter {index}, but the optimizer has {len(params)}")
        param = params[index]
        converted = {}
        for key, value in entry.items():
            if isinstance(param, DTensor) and isinstance(value, torch.Tensor) and value.dim() > 0:
                if tuple(value.shape) != tuple(param.shape):
                    raise ValueError(f"optimizer state {key!r} of parameter {index} has shape {tuple(value.shape)}, "
                                     f"the parameter {tuple(param.shape)}")
                value = distribute_tensor(value.to(param.device), param.device_mesh, param.placements)
            converted[key] = value
        out[index] = converted
    return {"state": out, "param_groups": state["param_groups"]}
