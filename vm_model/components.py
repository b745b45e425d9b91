"""Loading the model components: the official base (or the tiny preset), the motion adapter, VideoMaker weights."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vm_common.weights import MissingWeightsError, resolve_source

from .pisa import PISAConfig
from .registry import BASE_MODEL, MOTION_ADAPTER, VIDEOMAKER_HUMAN, VIDEOMAKER_OBJECT

logger = logging.getLogger(__name__)

OFFICIAL_WEIGHTS = {"human": VIDEOMAKER_HUMAN, "object": VIDEOMAKER_OBJECT}


@dataclass
class ModelSources:
    """Where each pretrained component comes from: a local path or a Hugging Face id."""

    base_model: str = field(default=BASE_MODEL.default, metadata={"help": "SD1.5 base (diffusers layout)"})
    motion_adapter: str = field(default=MOTION_ADAPTER.default, metadata={"help": "AnimateDiff motion adapter"})
    vae: str | None = field(default=None, metadata={"help": "VAE folder/id (default: the base model's vae/)"})
    videomaker_weights: str | None = field(default=None, metadata={
        "help": "'human' / 'object' (official release), a .bin/.safetensors state dict, or a `vm train` run or "
                "checkpoint folder; none = the base model with untrained PISA"})


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str | torch.device) -> torch.dtype:
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def tiny_sources(videomaker_weights: str | None = None) -> ModelSources:
    from .tiny import tiny_base_model, tiny_motion_adapter

    return ModelSources(base_model=str(tiny_base_model()), motion_adapter=str(tiny_motion_adapter()),
                        videomaker_weights=videomaker_weights)


def sources_for_preset(preset: str, sources: ModelSources | None = None) -> ModelSources:
    """``tiny`` replaces the base model and motion adapter with the tiny random ones (keeping trained weights)."""
    if preset == "tiny":
        return tiny_sources(sources.videomaker_weights if sources else None)
    if preset == "full":
        return sources or ModelSources()
    raise ValueError(f"unknown preset {preset!r}; choose 'full' or 'tiny'")


def load_base_components(sources: ModelSources, dtype: torch.dtype = torch.float32) -> dict:
    """vae, text_encoder, tokenizer, unet (UNetMotionModel), motion_adapter, scheduler (DDIM, paper protocol)."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .scheduler import inference_scheduler

    def where(source: str, subfolder: str | None, what: str) -> Path:
        return resolve_source(source, subfolder=subfolder, what=what, how=_how(source))

    unet_dir = where(sources.base_model, "unet", "base UNet")
    text_dir = where(sources.base_model, "text_encoder", "base text encoder")
    tok_dir = where(sources.base_model, "tokenizer", "base tokenizer")
    vae_dir = where(sources.vae, None, "VAE") if sources.vae else where(sources.base_model, "vae", "base VAE")
    adapter_dir = where(sources.motion_adapter, None, "motion adapter")

    unet2d = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=dtype)
    adapter = MotionAdapter.from_pretrained(adapter_dir, torch_dtype=dtype)
    unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    if dtype != torch.float32:
        unet.to(dtype=dtype)
    del unet2d
    return dict(
        vae=AutoencoderKL.from_pretrained(vae_dir, torch_dtype=dtype),
        text_encoder=CLIPTextModel.from_pretrained(text_dir, torch_dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(tok_dir),
        unet=unet,
        motion_adapter=adapter,
        scheduler=inference_scheduler(base_model_prediction_type(sources.base_model)),
    )


def base_model_prediction_type(base_model: str) -> str:
    """What the base UNet predicts (``scheduler/scheduler_config.json``'s ``prediction_type``; epsilon when the
    base has no scheduler config, as for SD 1.x)."""
    from .scheduler import read_prediction_type

    try:
        config = resolve_source(base_model, subfolder="scheduler", filename="scheduler_config.json",
                                what="base scheduler config")
    except MissingWeightsError:
        logger.warning("%s has no scheduler/scheduler_config.json: assuming an epsilon-prediction base (SD 1.x, "
                       "AnimateDiff)", base_model)
        return "epsilon"
    return read_prediction_type(config)


def _how(source: str) -> str:
    return (f"on a machine with network access run `huggingface-cli download {source}` and copy "
            f"~/.cache/huggingface to this machine, or pass a local folder; `vm weights` lists everything needed")


def resolve_videomaker_weights(spec: str) -> Path:
    """'human' / 'object' -> the official files; otherwise a local file or folder (our training checkpoints)."""
    if spec in OFFICIAL_WEIGHTS:
        return OFFICIAL_WEIGHTS[spec].resolve()
    path = Path(spec).expanduser()
    if not path.exists():
        raise MissingWeightsError("VideoMaker weights", spec, [str(path.resolve())],
                                  "pass 'human' or 'object' for the official release, a state-dict file, or a "
                                  "`vm train` output/checkpoint folder")
    return path


def load_pipeline(sources: ModelSources | None = None, preset: str = "full", device: str | None = None,
                  dtype: torch.dtype | None = None, pisa: PISAConfig = PISAConfig()):
    """Build a ready-to-call :class:`VideoMakerPipeline` (PISA installed, VideoMaker weights loaded if given)."""
    from .checkpoint import load_videomaker_weights
    from .pipeline import VideoMakerPipeline

    device = device or default_device()
    dtype = dtype or default_dtype(device)
    sources = sources_for_preset(preset, sources)
    components = load_base_components(sources, dtype=dtype)
    pipe = VideoMakerPipeline(**components, pisa_config=pisa)
    if sources.videomaker_weights:
        report = load_videomaker_weights(pipe.unet, resolve_videomaker_weights(sources.videomaker_weights))
        pipe.weights_report = report
    pipe.sources = sources
    pipe.preset = preset
    pipe.to(device)
    pipe.set_progress_bar_config(disable=not logger.isEnabledFor(logging.INFO))
    return pipe
