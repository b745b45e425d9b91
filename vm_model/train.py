"""`vm train`: train VideoMaker (PISA + GIRL) on a manifest; the same command scales with `accelerate launch`.

    vm train --preset tiny --data synthetic --max-steps 2 --output-dir runs/tiny
    accelerate launch -m vm_model.train --data OUT/manifest.jsonl --output-dir runs/celebv --mixed-precision fp16
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m vm_model.train ...   # sharded (FSDP2)

Trainable: the spatial self-attention layers (PISA works through their existing weights) and, by default, the
motion modules (or LoRA matrices on them, ``--lora-rank``); everything else is frozen (and kept in half precision
on GPU under mixed precision). One optimizer step is ``--gradient-accumulation-steps`` forward/backward passes.
Run folder: ``config.json`` (resolved), ``provenance.json`` (versions, seeds, weights, effective batch),
``losses.jsonl`` (exactly once across kill + ``--resume``), ``checkpoints/step-N/`` (``trainable.safetensors``,
``ema.safetensors`` with ``--ema-decay``, ``state.pt`` with optimizer and RNG state), ``logs/`` (``--report-to``)
and ``validation/step-N/`` (``--validation-every``). The parts: :mod:`vm_model.training`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import random
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vm_common.config import ConfigError, add_dataclass_arguments, build_config, config_to_dict
from vm_common.devices import use_cpu
from vm_common.errors import InputFileError, StaleOutputError, run_main
from vm_common.io_utils import append_jsonl, atomic_write_json, current_umask
from vm_common.output_lock import clear_folder, folder_has_outputs, hold_output_folder

from .checkpoint import WEIGHTS_FILE, clean_parameter_name, latest_checkpoint, save_trainable_weights
from .components import load_base_components, resolve_videomaker_weights
from .presets import PRESET_HELP, PRESETS, presets_for
from .sources import ModelSources
from .training.trackers import REPORT_TO, resolve_report_to
from .losses import add_remind_noise, girl_timesteps, videomaker_loss
from .pisa import PISAConfig, install_pisa
from .routing import NEIGHBOURHOOD_KEY, routers_neighbourhood
from .scheduler import training_scheduler, training_target
from .unet_call import check_frame_count, unet_with_reference

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A non-finite loss: the run stops and the last checkpoint is left as it was."""


@dataclass
class TrainConfig:
    output_dir: Path = field(default=Path("runs/train"), metadata={"help": "run folder"})
    data: str = field(default="synthetic", metadata={"help": "a manifest.jsonl from `vm preprocess-dataset`, or "
                                                              "'synthetic' for a small generated dataset"})
    preset: str = field(default="full", metadata={"help": PRESET_HELP, "choices": sorted(PRESETS)})
    sources: ModelSources = field(default_factory=ModelSources, metadata={
        "group": "model sources", "help": "--weights: VideoMaker weights to start from (default: none)"})
    num_frames: int = field(default=16, metadata={"min": 1, "help": "generated frames per clip"})
    frame_stride: int = field(default=8, metadata={"min": 1, "help": "stride between sampled frames"})
    resolution: int = field(default=512, metadata={"min": 8, "max": 4096, "help": "training resolution (square)"})
    batch_size: int = field(default=1, metadata={"min": 1, "help": "clips per GPU per forward pass"})
    gradient_accumulation_steps: int = field(default=1, metadata={"min": 1,
        "help": "forward/backward passes per optimizer step (accelerate); effective batch = processes x "
                "batch size x this, recorded in provenance.json"})
    max_steps: int = field(default=150_000, metadata={"min": 1, "help": "optimizer steps"})
    learning_rate: float = field(default=1e-5, metadata={"gt": 0, "help": "AdamW learning rate"})
    optimizer: str = field(default="adamw", metadata={
        "help": "adamw (torch) or adamw8bit (bitsandbytes' 8-bit AdamW: needs bitsandbytes and a CUDA GPU)",
        "choices": ["adamw", "adamw8bit"]})
    weight_decay: float = field(default=1e-2, metadata={"min": 0, "help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"min": 0, "help": "linear learning-rate warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"min": 0, "help": "gradient clipping norm"})
    prediction_type: str = field(default="auto", metadata={
        "help": "what the UNet predicts, the loss target of video and reference frames: auto = the base model's "
                "scheduler config (epsilon for SD 1.x / AnimateDiff)", "choices": ["auto", "epsilon", "v_prediction"]})
    girl: bool = field(default=True, metadata={"help": "GIRL loss on the reference frame"})
    girl_alpha: float = field(default=0.01, metadata={"min": 0, "max": 1, "help": "remind-noise timestep factor t' = round(alpha t)"})
    girl_beta: float = field(default=0.1, metadata={"min": 0, "help": "weight of the GIRL loss"})
    pisa: bool = field(default=True, metadata={"help": "PISA (off: the reference is only an extra frame)"})
    reference_in_cross_attention: bool = field(default=True, metadata={"help": "reference frame in text "
                                                                               "cross-attention"})
    train_motion_modules: bool = field(default=True, metadata={"help": "also train the motion modules"})
    train_whole_unet: bool = field(default=False, metadata={"help": "train every UNet parameter (pretraining a "
                                                                    "base model on a new domain, not the method)"})
    text_dropout: float = field(default=0.05, metadata={"min": 0, "max": 1, "help": "probability of an empty caption"})
    image_dropout: float = field(default=0.05, metadata={"min": 0, "max": 1, "help": "probability of a zero reference latent"})
    joint_dropout: float = field(default=0.05, metadata={"min": 0, "max": 1, "help": "probability of dropping both (the "
                                                                 "unconditional branch of guidance)"})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "checkpoint activations (motion "
                                                                         "modules included)"})
    mixed_precision: str = field(default="no", metadata={"help": "accelerate mixed precision",
                                                         "choices": ["no", "fp16", "bf16"]})
    checkpoint_every: int = field(default=1000, metadata={"min": 1, "help": "save a checkpoint every N steps"})
    keep_checkpoints: int = field(default=3, metadata={"min": 0, "help": "checkpoints kept (oldest removed)"})
    log_every: int = field(default=1, metadata={"min": 1, "help": "log losses every N steps"})
    num_workers: int = field(default=2, metadata={"min": 0, "help": "data loader workers"})
    seed: int = field(default=0, metadata={"min": 0, "max": 2**31 - 1, "help": "global seed"})
    augment: bool = field(default=True, metadata={"help": "reference augmentation (flip + affine)"})
    synthetic_clips: int = field(default=8, metadata={"min": 1, "help": "clips of --data synthetic"})
    report_to: str = field(default="auto", metadata={
        "help": "experiment tracker through accelerate: auto = tensorboard when installed, else none",
        "choices": list(REPORT_TO)})
    tracker_project: str = field(default="vm-train", metadata={"help": "tracker project name (TensorBoard: "
                                                                       "RUN/logs/<name>/)"})
    ema_decay: float = field(default=0.0, metadata={"min": 0, "max": 0.999999,
        "help": "EMA of the trainable weights with this decay (e.g. 0.9999); 0 = off. Saved as ema.safetensors in "
                "each checkpoint and used for validation"})
    validation_every: int = field(default=0, metadata={"min": 0, "help": "validation videos every N steps (0 = off; needs "
                                                                "--validation-manifest)"})
    validation_manifest: str | None = field(default=None, metadata={
        "help": "JSONL of held-out subjects: reference image + prompts (+ kind human/object); see docs/model.md"})
    validation_inference_steps: int = field(default=25, metadata={"min": 1, "help": "DDIM steps of validation videos"})
    validation_guidance_scale: float = field(default=8.0, metadata={"min": 0, "help": "guidance scale of validation videos"})
    validation_encoders: str = field(default="auto", metadata={
        "help": "vm_eval encoders scoring validation videos: auto (tiny for --preset tiny, else full), tiny, full, "
                "or none (GIFs only)", "choices": ["auto", "tiny", "full", "none"]})
    lora_rank: int = field(default=0, metadata={"min": 0, "help": "train LoRA matrices of this rank (peft) on the trainable "
                                                         "set instead of the weights themselves; 0 = off"})
    lora_alpha: float | None = field(default=None, metadata={"gt": 0, "help": "LoRA alpha (scale alpha / rank; default: the "
                                                                      "rank)"})
    router: bool = field(default=False, metadata={
        "help": "add an ID router to every PISA layer (vm_model.routing; docs/multi_subject.md): each generated token "
                "weights its attention to each reference by a predicted distribution over the references + none. "
                "Kept when --weights already has one"})
    router_dim: int = field(default=32, metadata={"min": 1, "help": "router projection width"})
    router_neighbourhood: int = field(default=0, metadata={
        "min": 0, "help": "position-aware routing: each token's reference scores pooled over its N x N spatial "
                          "neighbourhood (odd N >= 3; weighted by the neighbours' subject probability) before the "
                          "softmax, so a region routes together; 0 = off (docs/multi_subject.md)"})
    routing_loss_weight: float = field(default=0.1, metadata={
        "min": 0, "help": "weight of the routing loss (class-balanced cross-entropy of the router against the "
                          "per-token subject masks of multi-subject clips); needs --router and a multi-subject "
                          "manifest; 0 = off"})
    train_router_only: bool = field(default=False, metadata={
        "help": "train only the routers (the injection stays as --weights has it; Ingredients' second stage)"})
    latent_cache: str | None = field(default=None, metadata={
        "help": "a folder made by `vm cache-latents` from --data: train on its latents and text embeddings without "
                "loading the VAE and text encoder (with --augment the VAE is loaded to encode the augmented "
                "reference; with validation both are loaded). Refused when made with other settings"})

    def __post_init__(self) -> None:
        for name in ("batch_size", "gradient_accumulation_steps", "num_frames", "frame_stride", "resolution"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.validation_every > 0 and not self.validation_manifest:
            raise ValueError("--validation-every needs --validation-manifest (held-out references + prompts)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.lora_rank < 0:
            raise ValueError(f"--lora-rank must be >= 0, got {self.lora_rank}")
        if self.text_dropout + self.joint_dropout + self.image_dropout > 1.0:
            raise ValueError("--text-dropout + --joint-dropout + --image-dropout must be at most 1, got "
                             f"{self.text_dropout + self.joint_dropout + self.image_dropout}")
        if self.resolution % 8:
            raise ValueError(f"--resolution must be a multiple of 8 (the VAE's factor), got {self.resolution}")
        if self.lora_rank and self.train_whole_unet:
            raise ValueError("--lora-rank and --train-whole-unet exclude each other")
        if self.train_router_only and not self.router:
            raise ValueError("--train-router-only needs --router")
        if self.router_neighbourhood and not self.router:
            raise ValueError("--router-neighbourhood needs --router")
        if self.router_neighbourhood and (self.router_neighbourhood < 3 or self.router_neighbourhood % 2 == 0):
            raise ValueError(f"--router-neighbourhood must be 0 (off) or odd and >= 3, got {self.router_neighbourhood}")
        if self.router and self.lora_rank:
            raise ValueError("--router and --lora-rank exclude each other (the router is trained as full weights)")
        if self.latent_cache and self.data == "synthetic":
            raise ValueError("--latent-cache needs --data MANIFEST, the manifest the cache was made from (`vm "
                             "cache-latents --data MANIFEST`), not --data synthetic")

    def pisa_config(self) -> PISAConfig:
        return PISAConfig(enabled=self.pisa, reference_in_cross_attention=self.reference_in_cross_attention)

    def validation_protocol(self):
        """The generation protocol of validation videos: the training clip's frames and size, one seed."""
        from .protocol import GenerationProtocol

        return GenerationProtocol(num_frames=self.num_frames, height=self.resolution, width=self.resolution,
                                  steps=self.validation_inference_steps, guidance_scale=self.validation_guidance_scale,
                                  seeds=[self.seed])

    def validation_encoder_preset(self) -> str | None:
        if self.validation_encoders == "auto":
            return "tiny" if self.preset == "tiny" else "full"
        return None if self.validation_encoders == "none" else self.validation_encoders


TRAIN_PRESETS = presets_for({
    "tiny": dict(num_frames=4, frame_stride=2, resolution=64, gradient_checkpointing=False, num_workers=0,
                 checkpoint_every=1, validation_inference_steps=2),
    # the toy's clip shape (benchmarks/toy_customization.py trains with these); --weights builtin:toy continues
    # from the shipped model
    "toy": dict(num_frames=4, frame_stride=1, resolution=32, gradient_checkpointing=False, num_workers=0),
}, keys=("sources",))


# ---------------------------------------------------------------------------------------------------- model
def trainable_parameter_names(unet, train_motion_modules: bool, whole_unet: bool = False) -> list[str]:
    if whole_unet:
        return [name for name, _ in unet.named_parameters()]
    names = []
    for name, _ in unet.named_parameters():
        clean = clean_parameter_name(name)
        spatial_self = ".attentions." in clean and ".attn1." in clean and "motion_modules" not in clean
        if spatial_self or (train_motion_modules and "motion_modules" in clean):
            names.append(name)
    return names


def set_trainable(unet, train_motion_modules: bool, whole_unet: bool = False) -> int:
    wanted = set(trainable_parameter_names(unet, train_motion_modules, whole_unet))
    count = 0
    for name, param in unet.named_parameters():
        param.requires_grad_(name in wanted)
        count += param.numel() if name in wanted else 0
    return count


# ----------------------------------------------------------------------------------------------------- data
class StepSampler(torch.utils.data.Sampler):
    """Deterministic sample order as a function of (seed, step): epoch e is a seeded permutation, split over
    processes by rank. Starting at any step reproduces exactly the indices an uninterrupted run would see."""

    def __init__(self, size: int, batch_size: int, seed: int, start_step: int, rank: int = 0, world: int = 1):
        if size < 1:
            raise ValueError("the dataset has no usable clips")
        self.size, self.batch, self.seed, self.start, self.rank, self.world = size, batch_size, seed, start_step, \
            rank, world

    def _epoch(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self):
        per_step = self.batch * self.world
        position = self.start * per_step + self.rank * self.batch
        while True:
            for j in range(self.batch):
                flat = position + j
                epoch, offset = divmod(flat, self.size)
                yield (self._epoch(epoch)[offset], epoch)
            position += per_step

    def __len__(self) -> int:  # infinite in practice; a large number keeps DataLoader happy
        return 2**62


class _EpochKeyedDataset(torch.utils.data.Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        if hasattr(self.dataset, "set_epoch"):  # runs in the worker process, so workers see the right epoch
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def _collate(items: list[dict]) -> dict:
    batch = {
        "video": torch.stack([it["video"] for it in items]),
        "reference": torch.stack([it["reference"] for it in items]),
        "caption": [it["caption"] for it in items],
    }
    if "references" in items[0]:  # multi-subject items (vm_data.dataset): R references and per-frame masks
        batch["references"] = torch.stack([it["references"] for it in items])
        batch["subject_masks"] = torch.stack([it["subject_masks"] for it in items])
    return batch


def build_dataset(cfg: TrainConfig, output_dir: Path):
    from vm_data.augment import AugmentConfig
    from vm_data.dataset import VideoClipDataset

    if cfg.data == "synthetic":
        from vm_data.synthetic import make_synthetic_dataset

        manifest = output_dir / "synthetic-data" / "manifest.jsonl"
        # a resumed run keeps the data it started with (x264 encoding is not bit-reproducible)
        if not manifest.exists():
            manifest = make_synthetic_dataset(output_dir / "synthetic-data", num_clips=cfg.synthetic_clips,
                                              num_frames=max(24, cfg.num_frames * cfg.frame_stride),
                                              size=cfg.resolution, seed=cfg.seed)
    else:
        manifest = Path(cfg.data)
        if not manifest.exists():
            raise FileNotFoundError(f"--data: manifest not found: {manifest}")
    clips = VideoClipDataset(manifest, num_frames=cfg.num_frames, frame_stride=cfg.frame_stride,
                             resolution=cfg.resolution, augment=AugmentConfig() if cfg.augment else None,
                             seed=cfg.seed)
    if clips.num_subjects is not None and cfg.latent_cache:
        raise ConfigError(f"{manifest} is a multi-subject manifest: --latent-cache does not cache several "
                          f"references and their masks; train without it")
    if cfg.latent_cache:
        from .latent_cache.dataset import CachedClipDataset
        from .latent_cache.store import read_index

        return CachedClipDataset(clips, cfg.latent_cache, read_index(cfg.latent_cache))
    return clips


# ------------------------------------------------------------------------------------------------- run dir
def prepare_run_dir(output_dir: Path, resume: bool, overwrite: bool, is_main: bool) -> None:
    exists = folder_has_outputs(output_dir)
    if exists and not (resume or overwrite):
        raise StaleOutputError(f"run folder {output_dir} exists; pass --resume to continue it or --overwrite to "
                               f"replace it")
    if is_main:
        if exists and overwrite and not resume:
            clear_folder(output_dir)  # keeps the lock this run holds
        output_dir.mkdir(parents=True, exist_ok=True)


def _rng_state(generator: torch.Generator) -> dict:
    """Every RNG's state as tensors and plain data, so that ``torch.load(weights_only=True)`` reads it back."""
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state(),
             "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                        "gauss": gauss},
             "numpy": {"bit_generator": str(bit_generator), "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["generator"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["bit_generator"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_state(path: Path) -> dict:
    """A checkpoint's ``state.pt`` (optimizer, scheduler, RNG): data only (``weights_only=True``), so a crafted file
    cannot run code; anything else is refused with the file named."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler's refusals have many types
        raise InputFileError(f"cannot resume from {path}: not a data-only training state ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not {"step", "optimizer", "lr_scheduler", "rng"} <= set(state):
        raise InputFileError(f"cannot resume from {path}: expected a dict with step, optimizer, lr_scheduler and rng")
    return state


def check_optimizer(name: str) -> None:
    """Refuse ``adamw8bit`` up front, with what is missing, when bitsandbytes or a CUDA GPU is not there."""
    if name != "adamw8bit":
        return
    import importlib.util

    missing = [what for what, ok in (("the bitsandbytes package (`pip install bitsandbytes`)",
                                      importlib.util.find_spec("bitsandbytes") is not None),
                                     ("a CUDA GPU", torch.cuda.is_available() and not use_cpu())) if not ok]
    if missing:
        raise ConfigError(f"--optimizer adamw8bit needs {' and '.join(missing)}; use --optimizer adamw")


def build_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    check_optimizer(cfg.optimizer)
    if cfg.optimizer == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def _same(key: str) -> str:
    return key


def save_checkpoint(run_dir: Path, step: int, unet, optimizer, lr_scheduler, generator, cfg: TrainConfig,
                    keep: int, *, lora: dict | None = None, ema=None, start_weights: str | None = None,
                    gathered: tuple[dict, dict] | None = None) -> Path:
    """Write ``checkpoints/step-N`` into a temporary folder and rename it into place (never half-written).

    ``trainable.safetensors``: the trainable weights (a LoRA run: its LoRA matrices, with ``lora`` and
    ``start_weights`` metadata); ``ema.safetensors`` (with ``ema``): their moving average, same keys; ``state.pt``:
    optimizer, lr schedule and RNG states. ``gathered``: (trainable weights, optimizer state dict) already gathered
    from FSDP shards (:mod:`vm_model.training.sharded`), written instead of reading ``unet`` and ``optimizer``."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step:08d}"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:08d}.", suffix=".tmp", dir=root))  # ours alone
    os.chmod(tmp, 0o777 & ~current_umask())
    metadata = {"step": step, "config": config_to_dict(cfg)}
    if unet is not None and (neighbourhood := routers_neighbourhood(getattr(unet, "module", unet))) is not None:
        metadata[NEIGHBOURHOOD_KEY] = neighbourhood  # the routers' own (from --weights or the flag)
    ema_key = _same
    if lora is not None:
        from .training.lora import lora_state_dict, peft_key, save_lora_weights

        metadata.update(lora=lora, start_weights=start_weights)
        save_lora_weights(lora_state_dict(unet), tmp / WEIGHTS_FILE, metadata)
        ema_key = peft_key
    else:
        if start_weights:  # --train-router-only: the routers alone, loaded on top of these (vm_model.checkpoint)
            metadata["start_weights"] = start_weights
        save_trainable_weights(unet, tmp / WEIGHTS_FILE, metadata=metadata,
                               tensors=gathered[0] if gathered is not None else None)
    if ema is not None:
        from .training.ema import EMA_FILE
        from .training.files import save_tensors

        save_tensors(ema.state_dict(key=ema_key), tmp / EMA_FILE, {**metadata, "ema_decay": ema.decay})
    optimizer_state = gathered[1] if gathered is not None else optimizer.state_dict()
    torch.save({"step": step, "optimizer": optimizer_state, "lr_scheduler": lr_scheduler.state_dict(),
                "rng": _rng_state(generator)}, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    steps = sorted(p for p in root.iterdir() if p.name.startswith("step-"))
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint saved: %s", final)
    return final


def resume_checkpoint(latest: Path, unet, optimizer, lr_scheduler, generator, *, lora: bool, ema,
                      load_optimizer: bool = True) -> int:
    """Load a checkpoint into the model (weights or LoRA matrices), optimizer, lr schedule, RNGs and EMA; returns
    its step. ``load_optimizer=False`` (FSDP): the optimizer state is loaded after sharding
    (:func:`vm_model.training.sharded.shard_optimizer_state`)."""
    from safetensors.torch import load_file

    from .checkpoint import load_videomaker_weights

    if lora:
        from .training.lora import load_lora_state

        load_lora_state(unet, load_file(str(latest / WEIGHTS_FILE)), source=str(latest / WEIGHTS_FILE))
    else:
        load_videomaker_weights(unet, latest / WEIGHTS_FILE)
    state = load_training_state(latest / "state.pt")
    if load_optimizer:
        optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    _set_rng_state(generator, state["rng"])
    if ema is not None:
        from .training.ema import EMA_FILE
        from .training.lora import peft_key

        if (latest / EMA_FILE).exists():
            ema.load_state_dict(load_file(str(latest / EMA_FILE)), key=peft_key if lora else _same)
        else:
            logger.warning("%s has no %s: the EMA starts from the resumed weights", latest, EMA_FILE)
            ema.shadow = type(ema)(unet, ema.decay).shadow
    return int(state["step"])


# ------------------------------------------------------------------------------------------------- training
def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train into ``cfg.output_dir``, holding it alone (``vm_common.output_lock``) for the whole run."""
    from accelerate import PartialState

    if cfg.data != "synthetic" and not getattr(cfg, "latent_cache", None):
        from vm_data.manifest_check import check_manifest_files

        check_manifest_files(cfg.data)  # every row's files, before any model loads
    is_main = PartialState(cpu=use_cpu()).is_main_process
    with hold_output_folder(cfg.output_dir, is_main=is_main):
        if resume:
            check_same_config(Path(cfg.output_dir), cfg)
        return _train(cfg, resume=resume, overwrite=overwrite)


# options that change speed or bookkeeping, not what is trained: a resumed run may change them. Not latent_cache:
# cached latents equal on-the-fly ones only to float rounding (tiny preset, no augmentation: step-3 loss
# 1.3217068910598755 on the fly vs 1.3217066526412964 cached), so switching it on resume would break exact resume
RESUMABLE_CHANGES = ("max_steps", "num_workers", "log_every", "checkpoint_every", "keep_checkpoints", "report_to",
                     "tracker_project", "validation_every", "validation_manifest", "validation_inference_steps",
                     "validation_guidance_scale", "validation_encoders", "output_dir")


def check_same_config(run_dir: Path, cfg: TrainConfig) -> None:
    """``--resume`` continues only the run it was started as: a config that changes what is trained is refused,
    naming the changed keys."""
    import json

    from vm_common.fingerprint import config_changes

    recorded = run_dir / "config.json"
    if not recorded.is_file():
        return
    try:
        stored = json.loads(recorded.read_text())
    except (OSError, ValueError) as exc:
        raise StaleOutputError(f"cannot read {recorded} to check the resumed config: {exc}") from None
    changes = config_changes(stored, config_to_dict(cfg), ignore=RESUMABLE_CHANGES)
    if changes:
        raise StaleOutputError(f"--resume with other settings than {run_dir} was started with: "
                               + "; ".join(changes) + " (start a new run folder, or --overwrite)")


def _train(cfg: TrainConfig, *, resume: bool, overwrite: bool) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from tqdm.auto import tqdm

    from vm_common.provenance import provenance
    from vm_common.tiny import tiny_root

    from .training import trackers
    from .training.run_log import truncate_after_step

    run_dir = Path(cfg.output_dir)
    tracker = trackers.resolve_report_to(cfg.report_to)
    validator = None
    if cfg.validation_every > 0:
        from .training.validation import Validator, read_validation_manifest

        validator = Validator(read_validation_manifest(cfg.validation_manifest), cfg.validation_protocol(), run_dir,
                              cfg.validation_encoder_preset(), torch.device("cpu"))
    # without a GPU, `accelerate launch --multi_gpu` processes must be told to use CPU (gloo) explicitly, or
    # each of them silently runs alone
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=use_cpu(),
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps, log_with=tracker,
                              project_config=ProjectConfiguration(project_dir=str(run_dir),
                                                                  logging_dir=str(run_dir / trackers.LOGS_DIR)))
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    from .training import sharded

    fsdp = sharded.is_fsdp(accelerator)  # FSDP2: checkpoints gathered from the shards (vm_model.training.sharded)
    sharded.check_fsdp_supported(accelerator, lora=bool(cfg.lora_rank), ema=cfg.ema_decay > 0,
                                 validation=validator is not None)
    cache_index = None
    if cfg.latent_cache:  # refused before the run folder is touched when made with other settings
        from .latent_cache.settings import cache_settings, dtype_name
        from .latent_cache.store import open_for_training

        with accelerator.main_process_first():  # may build the tiny preset's components: the main process first
            wanted = cache_settings(cfg.sources, resolution=cfg.resolution, num_frames=cfg.num_frames,
                                    frame_stride=cfg.frame_stride, dtype=dtype_name(weight_dtype))
        cache_index = open_for_training(cfg.latent_cache, wanted)
    prepare_run_dir(run_dir, resume, overwrite, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    set_seed(cfg.seed + accelerator.process_index)
    device = accelerator.device
    if validator is not None:
        validator.device = device
        if accelerator.is_main_process:
            validator.check()

    # the main process first: it builds the tiny preset's cache (transformers' save_pretrained writes nothing on
    # ranks other than 0 once torch.distributed is up) and fills the hub cache; the others then only read
    # with a latent cache the VAE is loaded only for augmented references and validation, the text encoder only for
    # validation
    parts = ("unet", "vae", "text_encoder", "tokenizer")
    if cfg.latent_cache:
        parts = ("unet",) + (("vae",) if cfg.augment or validator is not None else ()) \
            + (("text_encoder", "tokenizer") if validator is not None else ())
    with accelerator.main_process_first():
        sources = cfg.sources
        comps = load_base_components(sources, dtype=torch.float32, parts=parts)
    vae, text_encoder, tokenizer, unet = comps["vae"], comps["text_encoder"], comps["tokenizer"], comps["unet"]
    install_pisa(unet, cfg.pisa_config())
    if sources.videomaker_weights:
        from .checkpoint import load_videomaker_weights

        load_videomaker_weights(unet, resolve_videomaker_weights(sources.videomaker_weights))
    if cfg.router:
        from .routing import add_routers

        # a --router-neighbourhood of 0 keeps the setting of routers that --weights already has
        logger.info("ID routers: %d parameters", add_routers(unet, cfg.router_dim, cfg.router_neighbourhood or None))
    lora_info = None
    if cfg.lora_rank:
        from .training.lora import add_lora

        lora_info = add_lora(unet, cfg.lora_rank, cfg.lora_alpha, train_motion_modules=cfg.train_motion_modules)
        n_trainable = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    elif cfg.train_router_only:
        from .routing import is_router_parameter

        n_trainable = 0
        for name, param in unet.named_parameters():
            param.requires_grad_(is_router_parameter(name))
            n_trainable += param.numel() if param.requires_grad else 0
    else:
        n_trainable = set_trainable(unet, cfg.train_motion_modules, cfg.train_whole_unet)
    check_frame_count(unet, cfg.num_frames, 1)
    if cfg.gradient_checkpointing:
        from .grad_checkpointing import enable_full_gradient_checkpointing

        enable_full_gradient_checkpointing(unet)
    for module in (vae, text_encoder):
        if module is None:  # not loaded (--latent-cache)
            continue
        module.requires_grad_(False).eval().to(device)
        if weight_dtype != torch.float32:
            module.to(dtype=weight_dtype)
    for param in unet.parameters():  # frozen UNet weights in half precision, trainable ones stay fp32
        if not param.requires_grad:
            param.data = param.data.to(weight_dtype)
    unet.train()
    prediction_type = comps["scheduler"].config.prediction_type if cfg.prediction_type == "auto" \
        else cfg.prediction_type
    if prediction_type != comps["scheduler"].config.prediction_type:
        logger.warning("training a %s-prediction base model to predict %s: load_pipeline / vm generate read the "
                       "prediction type from the base's scheduler config, so give the trained model a base folder "
                       "whose scheduler/scheduler_config.json says %s", comps["scheduler"].config.prediction_type,
                       prediction_type, prediction_type)
    noise_scheduler = training_scheduler(prediction_type)

    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg, params)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0)
    generator = torch.Generator().manual_seed(cfg.seed * 7919 + accelerator.process_index)
    ema = None
    if cfg.ema_decay > 0:
        from .training.ema import TrainableEMA

        unet.to(device)  # the average lives beside the weights
        ema = TrainableEMA(unet, cfg.ema_decay)

    start_step = 0
    if resume:
        latest = latest_checkpoint(run_dir)
        if latest is None:
            logger.info("--resume: no checkpoint in %s yet, starting from step 0", run_dir)
        else:
            start_step = resume_checkpoint(latest, unet, optimizer, lr_scheduler, generator,
                                           lora=lora_info is not None, ema=ema, load_optimizer=not fsdp)
            logger.info("resumed from %s (step %d)", latest, start_step)

    unet, optimizer = accelerator.prepare(unet, optimizer)
    # what is clipped: the trainable parameters, FSDP2's sharded ones under FSDP, where it is all of the model's:
    # accelerate clips a sharded model (and unscales fp16 gradients once) only when handed exactly
    # model.parameters(); the frozen ones have no gradient, so the norm is the same
    params = list(unet.parameters()) if fsdp else [p for p in unet.parameters() if p.requires_grad]
    if fsdp and start_step:  # the full optimizer state of the checkpoint, laid out like the sharded parameters
        optimizer.load_state_dict(sharded.shard_optimizer_state(
            load_training_state(latest_checkpoint(run_dir) / "state.pt")["optimizer"], optimizer))

    with accelerator.main_process_first():  # --data synthetic: the main process writes it, the others read it
        dataset = build_dataset(cfg, run_dir)
    check_frame_count(unet, cfg.num_frames, getattr(dataset, "num_subjects", None) or 1)
    accumulation = cfg.gradient_accumulation_steps
    # the sampler counts forward passes: a resumed run starts at the first pass of its next optimizer step
    sampler = StepSampler(len(dataset), cfg.batch_size, cfg.seed, start_step * accumulation,
                          accelerator.process_index, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(_EpochKeyedDataset(dataset), batch_size=cfg.batch_size, sampler=sampler,
                                         num_workers=cfg.num_workers, collate_fn=getattr(dataset, "collate", _collate),
                                         persistent_workers=cfg.num_workers > 0)
    conditioning = build_conditioning(cfg, cache_index, vae, text_encoder, tokenizer, device, weight_dtype)

    effective_batch = accelerator.num_processes * cfg.batch_size * accumulation
    start_weights = None
    if lora_info is not None or cfg.train_router_only:  # files that hold only what this run adds
        from .training.lora import start_weights_spec

        start_weights = start_weights_spec(sources.videomaker_weights)
    if accelerator.is_main_process:
        atomic_write_json(run_dir / "config.json", config_to_dict(cfg))
        atomic_write_json(run_dir / "provenance.json", {
            **provenance(), "seed": cfg.seed, "num_processes": accelerator.num_processes,
            "gradient_accumulation_steps": accumulation, "effective_batch_size": effective_batch,
            "sources": dataclasses.asdict(sources), "preset": cfg.preset, "random_weights": sources.random_weights,
            "tiny_cache": str(tiny_root()) if sources.random_weights else None,
            "trainable_parameters": n_trainable, "resumed_from_step": start_step,
            "prediction_type": prediction_type, "tracker": tracker, "lora": lora_info,
            "lora_start_weights": start_weights, "ema_decay": cfg.ema_decay or None,
            "latent_cache": None if cache_index is None else {
                "path": str(Path(cfg.latent_cache).resolve()), "settings_digest": cache_index.get("settings_digest"),
                "loaded": [name for name in ("vae", "text_encoder") if comps[name] is not None]},
        })
        truncate_after_step(run_dir / "losses.jsonl", start_step)  # exactly once across kill + --resume
    accelerator.init_trackers(cfg.tracker_project, config=trackers.flat_config({
        **config_to_dict(cfg), "num_processes": accelerator.num_processes, "effective_batch_size": effective_batch}),
        init_kwargs=trackers.init_kwargs(tracker, run_dir, start_step))
    logger.info("training %.2fM parameters%s on %d clips for steps %d..%d (%d process(es) x batch %d x "
                "accumulation %d = effective batch %d)", n_trainable / 1e6,
                f" (LoRA rank {cfg.lora_rank})" if lora_info else "", len(dataset), start_step, cfg.max_steps,
                accelerator.num_processes, cfg.batch_size, accumulation, effective_batch)

    step, last = start_step, {}
    data_iter = iter(loader)
    progress = tqdm(total=cfg.max_steps, initial=start_step, desc="train", disable=not accelerator.is_main_process)
    try:
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            values, grad_norm = _optimizer_step(cfg, data_iter, step, unet, conditioning, noise_scheduler,
                                                generator, device, accelerator, optimizer, params, run_dir)
            lr_scheduler.step()
            if ema is not None:
                ema.update(accelerator.unwrap_model(unet))
            step += 1
            progress.update(1)
            seconds = time.perf_counter() - t0
            last = {"step": step, "loss": values[0].item(), "loss_video": values[1].item(),
                    "loss_reg": values[2].item(), "lr": lr_scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                    "step_seconds": seconds, "samples_per_second": effective_batch / seconds,
                    "peak_memory_mb": trackers.peak_memory_mb(device)}
            if cfg.router:
                last["loss_routing"] = values[3].item()
            if accelerator.is_main_process and (step % cfg.log_every == 0 or step == cfg.max_steps):
                append_jsonl(run_dir / "losses.jsonl", [last])
                accelerator.log(trackers.tracker_values(last), step=step)
                progress.set_postfix(loss=f"{last['loss']:.4f}", reg=f"{last['loss_reg']:.4f}")
                logger.debug("step %d: %s", step, last)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                accelerator.wait_for_everyone()
                gathered = None
                if fsdp:  # every process takes part in gathering the shards; the main process writes
                    gathered = (sharded.gathered_trainable_state(accelerator.unwrap_model(unet)),
                                sharded.gathered_optimizer_state(optimizer))
                if accelerator.is_main_process:
                    save_checkpoint(run_dir, step, accelerator.unwrap_model(unet), optimizer, lr_scheduler,
                                    generator, cfg, cfg.keep_checkpoints, lora=lora_info, ema=ema,
                                    start_weights=start_weights, gathered=gathered)
            if validator is not None and step % cfg.validation_every == 0:
                if accelerator.is_main_process:
                    _validate(validator, step, accelerator, unet, ema, vae, text_encoder, tokenizer,
                              comps["scheduler"])
                accelerator.wait_for_everyone()
    except BaseException:
        for open_tracker in accelerator.trackers:  # keep what was logged; the process group is left as it is
            open_tracker.finish()
        raise
    finally:
        progress.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()  # finishes the trackers and ends the process group: no barrier after it
    return last


def _optimizer_step(cfg: TrainConfig, data_iter, step: int, unet, conditioning, noise_scheduler, generator, device,
                    accelerator, optimizer, params, run_dir: Path) -> tuple[torch.Tensor, float]:
    """One optimizer step: ``gradient_accumulation_steps`` forward/backward passes inside accelerate's
    ``accumulate`` (no gradient all-reduce until the last), clipping, the update. Returns the passes' mean
    (loss, video, reg), reduced over processes, and the gradient norm before clipping."""
    passes = cfg.gradient_accumulation_steps
    total = torch.zeros(4)
    grad_norm = float("nan")
    for index in range(passes):
        batch = next(data_iter)
        with accelerator.accumulate(unet):
            terms = training_step(cfg, batch, unet, conditioning, noise_scheduler, generator, device, accelerator)
            routing = terms.routing.detach() if terms.routing is not None else torch.zeros_like(terms.reg)
            values = torch.stack([terms.total.detach(), terms.video.detach(), terms.reg.detach(), routing]).float()
            values = accelerator.reduce(values, reduction="mean")
            if not torch.isfinite(values).all():
                latest = latest_checkpoint(run_dir)
                where = f" (pass {index + 1} of {passes})" if passes > 1 else ""
                raise TrainingDiverged(
                    f"non-finite loss at step {step + 1}{where} (total={values[0].item()}, "
                    f"video={values[1].item()}, reg={values[2].item()}); the run stopped before the optimizer "
                    f"step. Last checkpoint, untouched: {latest or 'none'}. Lower --learning-rate, use bf16, or "
                    f"check the data.")
            total += values.cpu()
            accelerator.backward(terms.total)  # divided by the accumulation steps by accelerate
            if accelerator.sync_gradients:
                norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0
                                                   else float("inf"))
                grad_norm = float(norm) if norm is not None else float("nan")
            optimizer.step()  # accelerate's optimizer steps (and zeroes) only on the last pass
            optimizer.zero_grad(set_to_none=True)
    if not accelerator.sync_gradients:
        raise RuntimeError("gradient accumulation out of step: the last pass did not synchronise")
    return total / passes, grad_norm


def _validate(validator, step: int, accelerator, unet, ema, vae, text_encoder, tokenizer, scheduler) -> None:
    """Validation videos at ``step`` with the current (EMA when on) weights; skipped when already done (resume)."""
    from .training.validation import VALIDATION_DIR

    if (validator.run_dir / VALIDATION_DIR / f"step-{step:08d}" / "scores.json").exists():
        logger.info("validation at step %d: already done", step)
        return
    model = accelerator.unwrap_model(unet)
    swap = ema.swapped_in(model) if ema is not None else contextlib.nullcontext()
    with swap:
        means = validator.run(step, unet=model, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler, autocast=accelerator.autocast)
    if means:
        accelerator.log(means, step=step)


def build_conditioning(cfg: TrainConfig, cache_index: dict | None, vae, text_encoder, tokenizer, device,
                       weight_dtype):
    """What turns a batch into latents and text embeddings (:mod:`vm_model.training.conditioning`): the encoders
    on the fly, or the latent cache (its VAE only for augmented references)."""
    from .training.conditioning import CachedConditioning, OnTheFlyConditioning

    if cache_index is None:
        return OnTheFlyConditioning(vae, text_encoder, tokenizer, device, weight_dtype)
    from .latent_cache.dataset import load_empty_text

    return CachedConditioning(load_empty_text(cfg.latent_cache), cache_index["settings"]["vae"]["scaling_factor"],
                              device, vae=vae if cfg.augment else None)


def training_step(cfg: TrainConfig, batch: dict, unet, conditioning, noise_scheduler, generator: torch.Generator,
                  device, accelerator):
    """One loss evaluation: all randomness (dropout draws, VAE sampling, timesteps, noise) comes from ``generator``;
    ``conditioning`` (:mod:`vm_model.training.conditioning`) encodes the batch or reads its cached latents.
    A multi-subject batch (``references``, ``subject_masks``) gives R reference frames and, with ``--router``, the
    routing loss (``cfg.routing_loss_weight``, :func:`vm_model.routing.routing_loss`) on the kept samples."""
    bsz = len(batch["caption"])

    # condition dropout, drawn once per sample: text only / image only / both
    u = torch.rand(bsz, generator=generator)
    drop_text = u < cfg.text_dropout + cfg.joint_dropout
    drop_image = (u >= cfg.text_dropout) & (u < cfg.text_dropout + cfg.joint_dropout + cfg.image_dropout)

    with torch.no_grad():
        text = conditioning.text(batch, drop_text)
        latents = conditioning.video_latents(batch, generator)  # (B, C, F, h, w)
        ref_latents = conditioning.reference_latents(batch)  # (B, C, R, h, w); R = 1 unless multi-subject

    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=generator).to(device)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    noise_ref = torch.randn(ref_latents.shape, generator=generator).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = training_target(noise_scheduler, latents, noise, timesteps)
    if cfg.girl:
        ref_input = add_remind_noise(noise_scheduler, ref_latents, noise_ref, timesteps, cfg.girl_alpha)
        ref_target = training_target(noise_scheduler, ref_latents, noise_ref,
                                     girl_timesteps(timesteps, cfg.girl_alpha))
    else:
        ref_input, ref_target = ref_latents, None
    kept = (~drop_image).to(device)
    ref_input = ref_input * kept.view(-1, 1, 1, 1, 1).to(ref_input.dtype)  # dropped: an all-zero latent

    control = None
    if cfg.router and cfg.routing_loss_weight > 0 and "subject_masks" in batch:
        from .routing import RoutingControl

        control = RoutingControl(capture=[])
    with accelerator.autocast():
        pred_video, pred_ref = unet_with_reference(unet, noisy, ref_input, timesteps, text.float(), routing=control)
    terms = videomaker_loss(pred_video, target, pred_ref, ref_target, kept, cfg.girl_beta, girl=cfg.girl)
    if control is not None:
        from .routing import routing_loss

        terms.routing = routing_loss(control.capture, batch["subject_masks"].to(device), tuple(latents.shape[-2:]),
                                     sample_weight=kept)
        terms.total = terms.total + cfg.routing_loss_weight * terms.routing
    return terms


# ------------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vm train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="YAML file of TrainConfig keys")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last "
                                                              "checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir")
    add_dataclass_arguments(parser, TrainConfig, presets=TRAIN_PRESETS)
    return parser


def resolve_train_config(args: argparse.Namespace) -> TrainConfig:
    """defaults < preset < YAML < flags (``vm_common.config.build_config``)."""
    return build_config(TrainConfig, args, args.config, presets=TRAIN_PRESETS)


def main(argv: list[str] | None = None) -> int:
    """`vm train`: user errors (bad config, data, busy or stale run folder, missing weights) are one line and exit 2
    (``vm_common.errors``); a diverged run exits 1 keeping its last checkpoint; a bug shows its traceback."""
    return run_main("vm train", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    cfg = resolve_train_config(args)
    resolve_report_to(cfg.report_to)  # a missing tracker package: refused before anything loads
    check_optimizer(cfg.optimizer)
    try:
        last = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except TrainingDiverged as exc:
        logger.error("%s", exc)
        return 1
    if last:
        logger.info("done: step %d, loss %.5f (video %.5f, reg %.5f)", last["step"], last["loss"],
                    last["loss_video"], last["loss_reg"])
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())

