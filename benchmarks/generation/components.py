"""The pipeline the generation benchmark measures: every component with random weights, built offline.

``full``: the SD1.5 UNet + v1-5 motion adapter of ``benchmarks/pisa/model.py``, the SD1.5 VAE (``AutoencoderKL``
with the SD1.5 config) and the CLIP ViT-L/14 text encoder (SD1.5's ``text_encoder``), the full CLIP tokenizer.
``tiny``: the tiny specs of ``vm_model/tiny.py`` (a smoke run in seconds).

:func:`build_components` writes them once into a folder (state dicts as ``.pt`` files read back with
``weights_only=True``); :func:`load_generation_pipeline` makes a :class:`~vm_model.pipeline.VideoMakerPipeline` from
that folder for one execution setting and places it exactly as ``vm generate`` does
(:func:`vm_model.execution.place_pipeline`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from benchmarks.pisa.model import CLIP_L_TEXT_CONFIG, SD15_VAE_CONFIG, build_unet, meta_unet

logger = logging.getLogger(__name__)

PISA_MODES = ("auto", "concat", "lse", "official")


def component_configs(preset: str) -> tuple[dict, dict]:
    """(AutoencoderKL kwargs, CLIPTextConfig kwargs) of a preset."""
    if preset == "full":
        return dict(SD15_VAE_CONFIG), dict(CLIP_L_TEXT_CONFIG)
    if preset == "tiny":
        from vm_model.tiny import TextEncoderSpec, VAESpec

        return VAESpec().config(), TextEncoderSpec().config()
    raise ValueError(f"unknown preset {preset!r}")


def _vae(preset: str):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**component_configs(preset)[0])


def _text_encoder(preset: str):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**component_configs(preset)[1]))


def build_components(preset: str, folder: str | Path, seed: int = 0) -> dict:
    """Random UNet (+ motion modules), VAE, text encoder and the CLIP tokenizer into ``folder``; returns the
    parameter counts and the build time."""
    from vm_model.tiny import write_clip_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    counts = {}
    unet = build_unet(preset, seed=seed)
    counts["unet"] = sum(p.numel() for p in unet.parameters())
    torch.save(unet.state_dict(), folder / "unet.pt")
    del unet
    for name, make in (("vae", _vae), ("text_encoder", _text_encoder)):
        torch.manual_seed(seed)
        module = make(preset)
        counts[name] = sum(p.numel() for p in module.parameters())
        torch.save(module.state_dict(), folder / f"{name}.pt")
        del module
    write_clip_tokenizer(folder / "tokenizer")
    return dict(parameters=counts, build_s=time.perf_counter() - t0)


def _loaded(module, path: Path, dtype: torch.dtype):
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return module.to(dtype=dtype).eval()


def load_generation_pipeline(preset: str, folder: str | Path, device: str, dtype: torch.dtype, pisa_mode: str,
                             execution=None):
    """A ready :class:`~vm_model.pipeline.VideoMakerPipeline` from :func:`build_components`' folder.

    ``pisa_mode``: ``concat`` / ``lse`` (``vm_model.pisa``) or ``official`` (the release's repeated-reference layout,
    ``benchmarks/pisa/official.py``; same videos, the official cost); ``auto`` is resolved by the caller
    (:meth:`vm_model.protocol.GenerationProtocol.attention_mode`). ``execution``: offload, VAE slicing/tiling,
    compile (:class:`vm_model.execution.ExecutionOptions`)."""
    from transformers import CLIPTokenizer

    from vm_model.execution import place_pipeline
    from vm_model.pipeline import VideoMakerPipeline
    from vm_model.pisa import PISAConfig
    from vm_model.scheduler import inference_scheduler

    if pisa_mode not in ("concat", "lse", "official"):
        raise ValueError(f"pisa_mode must be concat, lse or official here, got {pisa_mode!r}")
    folder = Path(folder)
    # the UNet's weights memory-mapped from the file (file-backed pages, not anonymous memory: on a shared machine
    # the kernel can drop and re-read them instead of killing a process when memory runs short)
    unet = meta_unet(preset)
    unet.load_state_dict(torch.load(folder / "unet.pt", map_location="cpu", weights_only=True, mmap=True),
                         strict=True, assign=True)
    unet = unet.to(dtype=dtype).eval()
    pipe = VideoMakerPipeline(vae=_loaded(_vae(preset), folder / "vae.pt", dtype),
                              text_encoder=_loaded(_text_encoder(preset), folder / "text_encoder.pt", dtype),
                              tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"), unet=unet,
                              motion_adapter=None, scheduler=inference_scheduler(),
                              pisa_config=PISAConfig(mode="concat" if pisa_mode == "official" else pisa_mode))
    if pisa_mode == "official":
        from benchmarks.pisa.official import install_official_layout

        install_official_layout(pipe.unet)
    place_pipeline(pipe, device, execution)
    pipe.set_progress_bar_config(disable=True)
    return pipe
