"""Where the model comes from: one :class:`ModelSources` object, embedded in every command's config.

Each field is a local path, a Hugging Face id, or ``builtin:<name>`` for a component the toolkit builds or ships
itself (``builtin:tiny``: small random components built offline for tests; ``builtin:toy``: the small trained toy
VideoMaker shipped in the package; see :mod:`vm_model.presets`). The same
four flags name them in every command: ``--base-model``, ``--motion-adapter``, ``--vae`` and ``--weights``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from .registry import BASE_MODEL, MOTION_ADAPTER

BUILTIN_PREFIX = "builtin:"
NO_WEIGHTS = ("", "none", "None")

# builtin name -> component -> "module:function" returning the component's local path (built on first use).
BUILTIN_COMPONENTS: dict[str, dict[str, str]] = {
    "tiny": {"base_model": "vm_model.tiny:tiny_base_model", "motion_adapter": "vm_model.tiny:tiny_motion_adapter"},
    # the shipped toy VideoMaker, trained on CPU (vm_model/toy/weights; docs/toy_customization.md)
    "toy": {"base_model": "vm_model.toy.shipped:toy_base_model",
            "motion_adapter": "vm_model.toy.shipped:toy_motion_adapter",
            "videomaker_weights": "vm_model.toy.shipped:toy_videomaker_weights"},
}
# builtins whose weights are random (anything made with them is labelled random_weights: true)
RANDOM_BUILTINS = frozenset({"tiny"})


@dataclass
class ModelSources:
    """Where each pretrained component comes from: a local path, a Hugging Face id, or ``builtin:<name>``."""

    base_model: str = field(default=BASE_MODEL.default, metadata={
        "help": "SD1.5 base model: folder (diffusers layout), Hugging Face id, builtin:tiny or builtin:toy"})
    motion_adapter: str = field(default=MOTION_ADAPTER.default, metadata={
        "help": "AnimateDiff motion adapter: folder, Hugging Face id, builtin:tiny or builtin:toy"})
    vae: str | None = field(default=None, metadata={"help": "VAE folder or Hugging Face id (default: the base "
                                                            "model's vae/)"})
    videomaker_weights: str | None = field(default=None, metadata={
        "flag": "weights",
        "help": "VideoMaker weights: 'human' / 'object' (official release), a .bin/.safetensors state dict, a "
                "`vm train` run or checkpoint folder, builtin:toy, or 'none' (the base model with untrained PISA)"})

    def __post_init__(self) -> None:
        if self.videomaker_weights in NO_WEIGHTS:
            self.videomaker_weights = None

    @property
    def random_weights(self) -> bool:
        """True when any component is a random built-in (the outputs mean nothing)."""
        return any(builtin_name(s) in RANDOM_BUILTINS for s in (self.base_model, self.motion_adapter, self.vae,
                                                                 self.videomaker_weights) if s)


def builtin_name(source: str | None) -> str | None:
    return source[len(BUILTIN_PREFIX):] if source and source.startswith(BUILTIN_PREFIX) else None


def resolve_builtin(source: str, component: str) -> Path:
    """The local path of a built-in component (built on first use); ValueError naming what exists otherwise."""
    name = builtin_name(source)
    builders = BUILTIN_COMPONENTS.get(name or "", {})
    if component not in builders:
        known = sorted(f"{BUILTIN_PREFIX}{n} ({', '.join(sorted(c))})" for n, c in BUILTIN_COMPONENTS.items())
        raise ValueError(f"{source!r} is not a built-in {component.replace('_', ' ')}; built-ins: {', '.join(known)}")
    module, function = builders[component].split(":")
    return Path(getattr(importlib.import_module(module), function)())
