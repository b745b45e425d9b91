"""LoRA on VideoMaker's trainable set through peft: injection for training, the small safetensors file, loading
it for generation (merged into the UNet), and the merged export in the official release's layout.

Targets: every linear layer of the spatial self-attention (``attn1`` of the spatial transformer blocks: ``to_q``,
``to_k``, ``to_v``, ``to_out.0``) and, with the motion modules trained, the motion modules' attention and
feed-forward projections. The motion modules' ``proj_in`` / ``proj_out`` are left out: diffusers calls them as
``proj_in(input=...)``, which peft's LoRA layer does not accept; they stay frozen.

File: ``trainable.safetensors`` of a LoRA checkpoint holds only the LoRA matrices, keyed as peft saves them
(``<module>.lora_A.weight`` / ``<module>.lora_B.weight``, no adapter name), with metadata ``lora`` (rank, alpha,
targets) and ``start_weights`` (the VideoMaker weights the run started from, applied first when loading).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..checkpoint import clean_parameter_name, is_lora_state

logger = logging.getLogger(__name__)

__all__ = ["add_lora", "apply_lora_file", "has_lora", "is_lora_state", "load_lora_state", "lora_state_dict",
           "lora_target_modules", "merge_lora", "peft_key", "read_metadata", "save_lora_weights",
           "start_weights_spec"]

LORA_KEY_MARKERS = (".lora_A.", ".lora_B.")
_SKIPPED_LINEARS = ("proj_in", "proj_out")  # called with input=...: peft's layers take x


def has_lora(model: torch.nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def lora_target_modules(unet: torch.nn.Module, train_motion_modules: bool = True) -> list[str]:
    """Names of the linear layers LoRA adapts (see the module docstring)."""
    names = []
    for name, module in unet.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        clean = clean_parameter_name(name)
        in_motion = "motion_modules" in clean
        spatial_self = ".attentions." in clean and ".attn1." in clean and not in_motion
        motion = train_motion_modules and in_motion and clean.rsplit(".", 1)[-1] not in _SKIPPED_LINEARS
        if spatial_self or motion:
            names.append(name)
    if not names:
        raise ValueError("no linear layers of the trainable set found for LoRA")
    return names


def lora_metadata(rank: int, alpha: float, targets: list[str]) -> dict:
    return {"rank": int(rank), "alpha": float(alpha), "target_modules": [clean_parameter_name(t) for t in targets]}


def add_lora(unet: torch.nn.Module, rank: int, alpha: float | None = None, *,
             train_motion_modules: bool = True) -> dict:
    """Freeze the UNet and inject LoRA (rank ``rank``, scale ``alpha / rank``; alpha defaults to the rank) into the
    trainable set; only the LoRA matrices require gradients. Returns the metadata recorded in checkpoints."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"--lora-rank must be >= 1, got {rank}")
    alpha = float(rank if alpha is None else alpha)
    targets = lora_target_modules(unet, train_motion_modules)
    unet.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets), unet)
    for name, param in unet.named_parameters():
        param.requires_grad_(any(marker in name for marker in LORA_KEY_MARKERS))
    return lora_metadata(rank, alpha, targets)


def lora_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA matrices keyed as peft saves them (``<module>.lora_A.weight``: no adapter name), on the CPU."""
    return {peft_key(n): p.detach().to("cpu").contiguous() for n, p in unet.named_parameters()
            if any(m in n for m in LORA_KEY_MARKERS)}


def peft_key(parameter_name: str) -> str:
    """A LoRA parameter's name (``...lora_A.default.weight``) as keyed in the file (``...lora_A.weight``)."""
    return clean_parameter_name(parameter_name).replace(".lora_A.default.", ".lora_A.").replace(
        ".lora_B.default.", ".lora_B.")


def save_lora_weights(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict) -> Path:
    """Write LoRA matrices (file keys) with JSON metadata (``lora`` required), atomically."""
    from .files import save_tensors

    if "lora" not in metadata:
        raise ValueError("LoRA weights need their 'lora' metadata (rank, alpha, targets)")
    return save_tensors(tensors, path, metadata)


def load_lora_state(unet: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "LoRA weights") -> int:
    """Copy LoRA matrices (file keys) into a UNet that carries the adapters; every key must match a LoRA parameter
    and every LoRA parameter must be set. Matched by name here rather than through ``load_state_dict``, so it is
    the same with and without the activation-checkpoint wrappers of gradient checkpointing."""
    params = {peft_key(n): p for n, p in unet.named_parameters() if any(m in n for m in LORA_KEY_MARKERS)}
    missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(f"{source} do not match the model's LoRA layers: {len(unexpected)} unexpected "
                         f"(first: {unexpected[:3]}), {len(missing)} missing (first: {missing[:3]})")
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(p.shape)}" for k, p in params.items()
             if state[k].shape != p.shape]
    if wrong:
        raise ValueError(f"{source}: {len(wrong)} LoRA matrices do not match the model's shapes: {wrong[:3]}")
    with torch.no_grad():
        for key, param in params.items():
            param.copy_(state[key].to(param.device, param.dtype))
    return len(params)


def read_metadata(path: str | Path) -> dict:
    """A safetensors file's metadata with each value JSON-decoded (``{}`` for other files)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        raw = fh.metadata() or {}
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def merge_lora(unet: torch.nn.Module) -> int:
    """Fold every LoRA layer into its base weight and put the plain layer back (the release's layout again)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(unet.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(unet.get_submodule(parent) if parent else unet, child, module.get_base_layer())
            merged += 1
    if hasattr(unet, "peft_config"):
        del unet.peft_config
    return merged


def start_weights_spec(spec: str | None) -> str | None:
    """How a run records the VideoMaker weights it started from: names as given, local paths made absolute."""
    if not spec:
        return None
    from ..components import OFFICIAL_WEIGHTS
    from ..sources import builtin_name

    if spec in OFFICIAL_WEIGHTS or builtin_name(spec):
        return spec
    return str(Path(spec).expanduser().resolve())


def apply_lora_file(unet: torch.nn.Module, path: Path, state: dict[str, torch.Tensor]):
    """Generation: the start weights first (if the run had any), then the LoRA matrices, merged into the UNet.

    Returns a :class:`~vm_model.checkpoint.WeightsReport`."""
    from peft import LoraConfig, inject_adapter_in_model

    from ..checkpoint import WeightsReport, load_videomaker_weights
    from ..components import resolve_videomaker_weights

    metadata = read_metadata(path)
    start = metadata.get("start_weights")
    if start:
        logger.info("%s: LoRA trained from %s; loading those first", path, start)
        load_videomaker_weights(unet, resolve_videomaker_weights(start))
    info = metadata.get("lora") or {}
    ranks = {v.shape[0] for k, v in state.items() if ".lora_A." in k}
    rank = int(info.get("rank") or (ranks.pop() if len(ranks) == 1 else 0))
    if rank < 1:
        raise ValueError(f"{path}: LoRA matrices without 'lora' metadata and with mixed ranks {sorted(ranks)}")
    alpha = float(info.get("alpha", rank))
    if "alpha" not in info:
        logger.warning("%s: no LoRA alpha recorded; using alpha = rank = %d", path, rank)
    targets = sorted({key.split(".lora_A.")[0] for key in state if ".lora_A." in key})
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets), unet)
    loaded = load_lora_state(unet, state, source=str(path))
    merge_lora(unet)
    report = WeightsReport(str(path), loaded=loaded)
    logger.info("VideoMaker weights: %s (LoRA rank %d, alpha %g, merged)", report.summary(), rank, alpha)
    return report
