"""Weights I/O: trainable-only checkpoints of `vm train`, and the officially released state dicts."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vm_common.io_utils import atomic_output

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "trainable.safetensors"
_WRAPPER = "._checkpoint_wrapped_module"
_PREFIXES = ("module.", "unet.", "_orig_mod.")
_STEP_DIR = re.compile(r"^step-(\d+)$")
_LORA_MARKERS = (".lora_A.", ".lora_B.")


def is_lora_state(state: dict) -> bool:
    """True for a state dict of LoRA matrices (a `vm train --lora-rank` checkpoint or any peft-saved one)."""
    return any(marker in key for key in state for marker in _LORA_MARKERS)


def clean_parameter_name(name: str) -> str:
    """Parameter name without activation-checkpoint wrapper segments (state-dict keys never have them)."""
    return name.replace(_WRAPPER, "")


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {clean_parameter_name(n): p.detach().to("cpu").contiguous()
            for n, p in model.named_parameters() if p.requires_grad}


def save_trainable_weights(model: torch.nn.Module | None, path: str | Path, metadata: dict | None = None, *,
                           tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """The trainable weights of ``model`` (or ``tensors``, already gathered, e.g. from FSDP shards) as safetensors."""
    from safetensors.torch import save_file

    tensors = trainable_state_dict(model) if tensors is None else tensors
    if not tensors:
        raise ValueError("the model has no trainable parameters to save")
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in (metadata or {}).items()})
    return Path(path)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` folder of a run (None when there is none)."""
    ckpt_root = Path(run_dir) / "checkpoints"
    best: tuple[int, Path] | None = None
    if ckpt_root.is_dir():
        for child in ckpt_root.iterdir():
            m = _STEP_DIR.match(child.name)
            if m and (child / WEIGHTS_FILE).exists() and (child / "state.pt").exists():
                if best is None or int(m.group(1)) > best[0]:
                    best = (int(m.group(1)), child)
    return best[1] if best else None


def weights_file(path: str | Path) -> Path:
    """The weights file a path names: itself, or a run / checkpoint folder's ``trainable.safetensors`` (the newest
    checkpoint's for a run folder)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / WEIGHTS_FILE
        if not candidate.exists():
            latest = latest_checkpoint(path)
            if latest is None:
                raise FileNotFoundError(
                    f"no weights in {path}: expected {WEIGHTS_FILE} or checkpoints/step-N/{WEIGHTS_FILE}")
            candidate = latest / WEIGHTS_FILE
        path = candidate
    return path


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = weights_file(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code objects are refused by weights_only
        raise ValueError(f"cannot load {path} as a plain tensor state dict (weights_only=True): {exc}") from exc
    for key in ("state_dict", "module", "unet"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a state dict of tensors")
    return obj


@dataclass
class WeightsReport:
    source: str
    loaded: int
    unexpected: list[str] = field(default_factory=list)
    not_covered: dict[str, int] = field(default_factory=dict)  # per group: parameters the file did not set

    def summary(self) -> str:
        parts = [f"{self.loaded} tensors loaded from {self.source}"]
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys (first: {self.unexpected[:3]})")
        parts += [f"{group}: {n} parameters not in the file" for group, n in self.not_covered.items() if n]
        return "; ".join(parts)


def _group(name: str) -> str:
    if "motion_modules" in name:
        return "motion_modules"
    if ".vm_router." in name:
        return "router"
    if ".attentions." in name and ".attn1." in name:
        return "spatial_self_attention"
    return "other"


def load_videomaker_weights(unet: torch.nn.Module, path: str | Path) -> WeightsReport:
    """Load a (partial) UNet state dict: official ``*_pytorch_model.bin`` or our ``trainable.safetensors`` (a LoRA
    run's file is merged into the UNet: :func:`vm_model.training.lora.apply_lora_file`). A file with ID routers
    (``vm_model.routing``) gives the UNet its routers first; one with routers only (`vm train --train-router-only`)
    is loaded on top of the weights its run started from (its ``start_weights`` metadata).

    Keys are matched to the UNetMotionModel; common wrapper prefixes are stripped; a shape mismatch is an error;
    missing and unexpected keys are reported (and logged), never silently ignored.
    """
    path = weights_file(path)
    raw = _read_state_dict(path)
    if is_lora_state(raw):  # a LoRA run's matrices: start weights, then the LoRA merged in
        from .training.lora import apply_lora_file

        return apply_lora_file(unet, path, raw)
    state = {}
    for key, value in raw.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    from .routing import (add_routers, has_routers, is_router_parameter, router_dim_in_state,
                          router_neighbourhood_in_metadata, state_has_router)

    start = None
    if state and all(is_router_parameter(k) for k in state):  # a `vm train --train-router-only` file
        from .components import resolve_videomaker_weights
        from .training.lora import read_metadata

        start = read_metadata(path).get("start_weights")
        if start:
            logger.info("%s holds ID routers only, trained on top of %s; loading those first", path, start)
            load_videomaker_weights(unet, resolve_videomaker_weights(start))
    if state_has_router(state) and not has_routers(unet):  # routing is on when the weights have a router
        add_routers(unet, router_dim_in_state(state), router_neighbourhood_in_metadata(path))
        logger.info("%s has ID routers: routing on (vm_model.routing)", path)
    own = unet.state_dict()
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"{path}: {len(mismatched)} tensors do not match the model's shapes: {mismatched[:5]}")
    result = unet.load_state_dict(state, strict=False)
    unexpected = list(result.unexpected_keys)
    not_covered: dict[str, int] = {}
    parameter_names = {clean_parameter_name(n) for n, _ in unet.named_parameters()}
    for key in result.missing_keys:
        if key not in parameter_names:  # buffers (e.g. positional encodings) are not weights to be trained
            continue
        group = _group(key)
        if group != "other" and not start:  # a routers-only file: the rest came from its start weights
            not_covered[group] = not_covered.get(group, 0) + 1
    report = WeightsReport(str(path), loaded=len(state) - len(unexpected), unexpected=unexpected,
                           not_covered=not_covered)
    if report.loaded == 0:
        raise ValueError(f"{path}: none of its {len(state)} keys belong to this UNet (first: {list(state)[:3]})")
    (logger.warning if unexpected or any(not_covered.values()) else logger.info)("VideoMaker weights: %s",
                                                                                report.summary())
    return report
