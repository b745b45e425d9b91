"""The models of VBench's dimensions (:mod:`vm_eval.vbench`), each loaded on first use.

Full preset: DINO ViT-B/16 (timm ``vit_base_patch16_224.dino``, the weights of ``facebookresearch/dino``'s
``dino_vitb16``), CLIP ViT-B/32 (shared with the paper's CLIP metrics), CLIP ViT-L/14 (open_clip
``ViT-L-14-quickgelu`` + OpenAI weights) and the LAION aesthetic linear head; each by Hugging Face id or local
path (:mod:`vm_eval.registry`; a missing one raises :class:`~vm_common.weights.MissingWeightsError`). AMT-S
(motion smoothness) and MUSIQ (imaging quality) are optional: missing weights skip their dimension with the
reason. Tiny preset:
random stand-ins built offline (:mod:`vm_eval.tiny`) that load through the same code.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DINO_B16_NAME = "vit_base_patch16_224.dino"
CLIP_L14_NAME = "ViT-L-14-quickgelu"


@dataclass
class TimmModel:
    model: torch.nn.Module
    device: torch.device
    dtype: torch.dtype
    model_id: str


def load_dino_b16(weights: Path, *, device: torch.device, dtype: torch.dtype, model_id: str) -> TimmModel:
    """timm DINO ViT-B/16 from a state dict file (safetensors or DINO's own ``.pth``: the key names agree).
    A ``timm_kwargs.json`` beside the file (tiny builds) shrinks the architecture."""
    import timm

    kwargs_file = Path(weights).parent / "timm_kwargs.json"
    kwargs = json.loads(kwargs_file.read_text()) if kwargs_file.exists() else {}
    model = timm.create_model(DINO_B16_NAME, pretrained=True, num_classes=0,
                              pretrained_cfg_overlay=dict(file=str(weights)), **kwargs)
    model = model.to(device=device, dtype=dtype).eval()
    logger.info("loaded DINO %s from %s (%s, %s)", DINO_B16_NAME, weights, device, dtype)
    return TimmModel(model, device, dtype, model_id)


def load_aesthetic_head(path: Path, device: torch.device) -> torch.nn.Linear:
    """The LAION aesthetic predictor: one ``Linear(D, 1)`` state dict (``weight`` (1, D), ``bias`` (1,))."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    head = torch.nn.Linear(int(state["weight"].shape[1]), 1)
    head.load_state_dict(state)
    logger.info("loaded aesthetic head from %s", path)
    return head.to(device=device, dtype=torch.float32).eval()


class VBenchModels:
    """``encoders``: the session's :class:`~vm_eval.encoders.Encoders` (device, dtype, preset, weight sources)."""

    def __init__(self, encoders):
        self.encoders = encoders
        self.config = encoders.config
        self.tiny = self.config.preset == "tiny"
        self._optional_models: dict[str, tuple] = {}

    @cached_property
    def dino(self) -> TimmModel:
        """Always float32: VBench runs ``torch.hub``'s DINO in float32 on every device (its CLIP models, loaded by
        ``clip.load``, are fp16 on CUDA, as our CLIP encoders)."""
        enc = self.encoders
        if self.tiny:
            from .tiny import tiny_vbench_dino

            return load_dino_b16(tiny_vbench_dino() / "model.safetensors", device=enc.device, dtype=torch.float32,
                                 model_id=f"tiny-random:{DINO_B16_NAME}")
        from .registry import VBENCH_DINO

        src = self.config.vbench_dino_weights
        return load_dino_b16(VBENCH_DINO.resolve(src), device=enc.device, dtype=torch.float32,
                             model_id=f"timm:{DINO_B16_NAME}:{src or VBENCH_DINO.default}")

    @property
    def clip_b32(self):
        return self.encoders.clip

    @cached_property
    def clip_l14(self):
        from .clip import ClipEncoder

        enc = self.encoders
        if self.tiny:
            from .tiny import TINY_CLIP_NAME, tiny_clip

            folder = tiny_clip()
            return ClipEncoder.load(folder / "open_clip_model.safetensors", TINY_CLIP_NAME, config_dir=folder,
                                    device=enc.device, dtype=enc.dtype, model_id=f"tiny-random:{TINY_CLIP_NAME}")
        from .registry import CLIP_L14

        src = self.config.clip_l14_weights
        return ClipEncoder.load(CLIP_L14.resolve(src), CLIP_L14_NAME, device=enc.device, dtype=enc.dtype,
                                model_id=f"open_clip:{CLIP_L14_NAME}:{src or CLIP_L14.default}")

    @cached_property
    def aesthetic_head(self) -> torch.nn.Linear:
        if self.tiny:
            from .tiny import tiny_aesthetic_head

            return load_aesthetic_head(tiny_aesthetic_head(), torch.device("cpu"))
        from .registry import AESTHETIC

        return load_aesthetic_head(AESTHETIC.resolve(self.config.aesthetic_weights), torch.device("cpu"))

    def _optional(self, name: str, load):
        """Load an optional model once; missing weights -> ``(None, reason)`` so its dimension is skipped with the
        reason (the other dimensions still run)."""
        from vm_common.weights import MissingWeightsError

        if name not in self._optional_models:
            try:
                self._optional_models[name] = (load(), None)
            except MissingWeightsError as exc:
                logger.warning("%s", exc)
                self._optional_models[name] = (None, str(exc))
        return self._optional_models[name]

    @property
    def amt(self):
        """(AMT-S or None, reason): VBench motion smoothness's frame interpolator, float32 on every device."""
        from .amt import load_amt_s

        def load():
            if self.tiny:
                from .tiny import tiny_amt

                return load_amt_s(tiny_amt(), device=self.encoders.device)
            from .registry import AMT_S_WEIGHTS

            return load_amt_s(AMT_S_WEIGHTS.resolve(self.config.amt_weights), device=self.encoders.device)
        return self._optional("amt", load)

    @property
    def musiq(self):
        """(MUSIQ or None, reason): VBench imaging quality's MUSIQ (SPAQ), float32 on every device."""
        from .musiq import load_musiq

        def load():
            if self.tiny:
                from .tiny import tiny_musiq

                return load_musiq(tiny_musiq(), device=self.encoders.device)
            from .registry import MUSIQ_SPAQ_WEIGHTS

            return load_musiq(MUSIQ_SPAQ_WEIGHTS.resolve(self.config.musiq_weights), device=self.encoders.device)
        return self._optional("musiq", load)

    @property
    def model_id(self) -> str:
        c = self.config
        if self.tiny:
            return ("tiny-random: DINO ViT-B/16 layout, CLIP stand-ins, Linear aesthetic head, AMT-S and MUSIQ at "
                    "small widths")
        from .registry import AESTHETIC, AMT_S_WEIGHTS, CLIP_L14, MUSIQ_SPAQ_WEIGHTS, VBENCH_DINO

        return (f"DINO {c.vbench_dino_weights or VBENCH_DINO.default}; CLIP ViT-B/32 (as CLIP-T); "
                f"CLIP ViT-L/14 {c.clip_l14_weights or CLIP_L14.default}; "
                f"aesthetic {c.aesthetic_weights or AESTHETIC.default}; "
                f"AMT-S {c.amt_weights or AMT_S_WEIGHTS.default}; "
                f"MUSIQ {c.musiq_weights or MUSIQ_SPAQ_WEIGHTS.default}")
