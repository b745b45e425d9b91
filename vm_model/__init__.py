"""vm_model: PISA on diffusers' AnimateDiff, the GIRL loss, training, and the generation pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["VideoMakerPipeline", "PISAConfig", "install_pisa", "uninstall_pisa", "load_pipeline", "ModelSources",
           "GenerationProtocol"]

if TYPE_CHECKING:  # pragma: no cover
    from .components import load_pipeline
    from .protocol import GenerationProtocol
    from .sources import ModelSources
    from .pipeline import VideoMakerPipeline
    from .pisa import PISAConfig, install_pisa, uninstall_pisa

_LAZY = {
    "VideoMakerPipeline": ".pipeline", "PISAConfig": ".pisa", "install_pisa": ".pisa", "uninstall_pisa": ".pisa",
    "load_pipeline": ".components", "ModelSources": ".sources", "GenerationProtocol": ".protocol",
}


def __getattr__(name: str):  # imported on first use: `vm --help` stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'vm_model' has no attribute {name!r}")
