"""Loading the model components named by a :class:`~vm_model.sources.ModelSources`: the base model, the motion
adapter and the VideoMaker weights (the official release, a `vm train` run, or a built-in)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from vm_common.devices import default_device, default_dtype
from vm_common.weights import MissingWeightsError, resolve_source

from .execution import ExecutionOptions, place_pipeline
from .pisa import PISAConfig
from .registry import VIDEOMAKER_HUMAN, VIDEOMAKER_OBJECT
from .sources import ModelSources, builtin_name, resolve_builtin

logger = logging.getLogger(__name__)

OFFICIAL_WEIGHTS = {"human": VIDEOMAKER_HUMAN, "object": VIDEOMAKER_OBJECT}

__all__ = ["ModelSources", "load_base_components", "load_pipeline", "resolve_videomaker_weights",
           "base_model_prediction_type", "base_scheduler_config", "default_dtype"]


def _how(source: str) -> str:
    return (f"on a machine with network access run `hf download {source}` and copy "
            f"~/.cache/huggingface to this machine, or pass a local folder; `vm weights` lists everything needed")


def component_path(source: str, component: str, what: str, *, subfolder: str | None = None,
                   filename: str | None = None) -> Path:
    """The local folder/file of one component: a built-in (built on first use), a local path or a hub id."""
    if builtin_name(source):
        path = resolve_builtin(source, component)
        path = path / subfolder if subfolder else path
        path = path / filename if filename else path
        if not path.exists():
            raise MissingWeightsError(what, source, [str(path)], "the built-in component is incomplete; delete it "
                                      "(under $VM_TINY_DIR) to have it rebuilt")
        return path
    return resolve_source(source, subfolder=subfolder, filename=filename, what=what, how=_how(source))


def base_scheduler_config(base_model: str) -> Path | None:
    """The base model's ``scheduler/scheduler_config.json``, or None (with a warning) when it has none."""
    try:
        return component_path(base_model, "base_model", "base scheduler config", subfolder="scheduler",
                              filename="scheduler_config.json")
    except MissingWeightsError:
        logger.warning("%s has no scheduler/scheduler_config.json: assuming an epsilon-prediction base (SD 1.x, "
                       "AnimateDiff) and the paper's DDIM", base_model)
        return None


def base_model_prediction_type(base_model: str) -> str:
    """What the base UNet predicts (``scheduler/scheduler_config.json``'s ``prediction_type``; epsilon when the
    base has no scheduler config, as for SD 1.x)."""
    from .scheduler import read_prediction_type

    config = base_scheduler_config(base_model)
    return "epsilon" if config is None else read_prediction_type(config)


def vae_folder(sources: ModelSources) -> Path:
    """The VAE's folder: ``--vae`` when given, else the base model's ``vae/``."""
    if sources.vae:
        return component_path(sources.vae, "vae", "VAE")
    return component_path(sources.base_model, "base_model", "base VAE", subfolder="vae")


ALL_PARTS = ("unet", "vae", "text_encoder", "tokenizer")


def load_base_components(sources: ModelSources, dtype: torch.dtype = torch.float32,
                         parts: tuple[str, ...] = ALL_PARTS) -> dict:
    """vae, text_encoder, tokenizer, unet (UNetMotionModel), motion_adapter, scheduler (DDIM as the release builds
    it: the base's scheduler config with the release's overrides). ``parts``: which of :data:`ALL_PARTS` to load
    (the motion adapter comes with the UNet, the scheduler always); the others are None and never read from disk
    (`vm train --latent-cache` trains without the VAE and text encoder)."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .scheduler import inference_scheduler_for

    unknown = sorted(set(parts) - set(ALL_PARTS))
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; known: {list(ALL_PARTS)}")
    base = sources.base_model
    # every folder first, so that a missing component is reported before anything large is loaded
    dirs = {}
    if "unet" in parts:
        dirs["unet"] = component_path(base, "base_model", "base UNet", subfolder="unet")
        dirs["motion_adapter"] = component_path(sources.motion_adapter, "motion_adapter", "motion adapter")
    if "text_encoder" in parts:
        dirs["text_encoder"] = component_path(base, "base_model", "base text encoder", subfolder="text_encoder")
    if "tokenizer" in parts:
        dirs["tokenizer"] = component_path(base, "base_model", "base tokenizer", subfolder="tokenizer")
    if "vae" in parts:
        dirs["vae"] = vae_folder(sources)
    scheduler = inference_scheduler_for(base_scheduler_config(base))

    out = dict(vae=None, text_encoder=None, tokenizer=None, unet=None, motion_adapter=None, scheduler=scheduler)
    if "unet" in parts:
        unet2d = UNet2DConditionModel.from_pretrained(dirs["unet"], torch_dtype=dtype)
        adapter = MotionAdapter.from_pretrained(dirs["motion_adapter"], torch_dtype=dtype)
        unet = UNetMotionModel.from_unet2d(unet2d, adapter)
        if dtype != torch.float32:
            unet.to(dtype=dtype)
        del unet2d
        out.update(unet=unet, motion_adapter=adapter)
    if "vae" in parts:
        out["vae"] = AutoencoderKL.from_pretrained(dirs["vae"], torch_dtype=dtype)
    if "text_encoder" in parts:
        out["text_encoder"] = CLIPTextModel.from_pretrained(dirs["text_encoder"], torch_dtype=dtype)
    if "tokenizer" in parts:
        out["tokenizer"] = CLIPTokenizer.from_pretrained(dirs["tokenizer"])
    return out


def resolve_videomaker_weights(spec: str) -> Path:
    """'human' / 'object' -> the official files; ``builtin:<name>`` -> shipped weights; otherwise a local file or
    folder (our training checkpoints)."""
    if spec in OFFICIAL_WEIGHTS:
        return OFFICIAL_WEIGHTS[spec].resolve()
    if builtin_name(spec):
        return resolve_builtin(spec, "videomaker_weights")
    path = Path(spec).expanduser()
    if not path.exists():
        raise MissingWeightsError("VideoMaker weights", spec, [str(path.resolve())],
                                  "pass 'human' or 'object' for the official release, a state-dict file, or a "
                                  "`vm train` output/checkpoint folder")
    return path


def load_pipeline(sources: ModelSources | None = None, device: str | None = None, dtype: torch.dtype | None = None,
                  pisa: PISAConfig = PISAConfig(), execution: ExecutionOptions | None = None):
    """Build a ready-to-call :class:`VideoMakerPipeline` (PISA installed, VideoMaker weights loaded if given).

    ``sources`` default to the official base and motion adapter without VideoMaker weights;
    ``ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny")`` are the tiny random components.
    ``execution``: offload, VAE slicing/tiling, compile (:mod:`vm_model.execution`)."""
    from .checkpoint import load_videomaker_weights
    from .pipeline import VideoMakerPipeline

    sources = sources or ModelSources()
    device = device or default_device()
    dtype = dtype or default_dtype(device)
    pipe = VideoMakerPipeline(**load_base_components(sources, dtype=dtype), pisa_config=pisa)
    pipe.weights_report = None
    if sources.videomaker_weights:
        pipe.weights_report = load_videomaker_weights(pipe.unet,
                                                      resolve_videomaker_weights(sources.videomaker_weights))
    pipe.sources = sources
    place_pipeline(pipe, device, execution)
    pipe.set_progress_bar_config(disable=not logger.isEnabledFor(logging.INFO))
    return pipe
