"""`vm train`: train VideoMaker (PISA + GIRL) on a manifest; the same command scales with `accelerate launch`.

    vm train --preset tiny --data synthetic --max-steps 2 --output-dir runs/tiny
    accelerate launch -m vm_model.train --data OUT/manifest.jsonl --output-dir runs/celebv --mixed-precision fp16

Trainable: the spatial self-attention layers (PISA works through their existing weights) and, by default, the
motion modules; everything else is frozen (and kept in half precision on GPU under mixed precision).
Run folder: ``config.json`` (resolved), ``provenance.json`` (versions, seeds, weights), ``losses.jsonl``,
``checkpoints/step-N/`` (``trainable.safetensors`` + ``state.pt`` with optimizer and RNG state).
"""

from __future__ import annotations

import argparse
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

from vm_common.config import add_dataclass_arguments, build_config, config_to_dict
from vm_common.devices import use_cpu
from vm_common.io_utils import append_jsonl, atomic_write_json, current_umask, repair_jsonl
from vm_common.output_lock import OutputFolderBusy, clear_folder, folder_has_outputs, hold_output_folder

from .checkpoint import WEIGHTS_FILE, clean_parameter_name, latest_checkpoint, save_trainable_weights
from .components import load_base_components, resolve_videomaker_weights
from .presets import PRESET_HELP, PRESETS, presets_for
from .sources import ModelSources
from .losses import add_remind_noise, girl_timesteps, videomaker_loss
from .pipeline import encode_reference_images
from .pisa import PISAConfig, install_pisa
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
    num_frames: int = field(default=16, metadata={"help": "generated frames per clip"})
    frame_stride: int = field(default=8, metadata={"help": "stride between sampled frames"})
    resolution: int = field(default=512, metadata={"help": "training resolution (square)"})
    batch_size: int = field(default=1, metadata={"help": "clips per GPU per step"})
    max_steps: int = field(default=150_000, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-2, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear learning-rate warm-up steps"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    prediction_type: str = field(default="auto", metadata={
        "help": "what the UNet predicts, the loss target of video and reference frames: auto = the base model's "
                "scheduler config (epsilon for SD 1.x / AnimateDiff)", "choices": ["auto", "epsilon", "v_prediction"]})
    girl: bool = field(default=True, metadata={"help": "GIRL loss on the reference frame"})
    girl_alpha: float = field(default=0.01, metadata={"help": "remind-noise timestep factor t' = round(alpha t)"})
    girl_beta: float = field(default=0.1, metadata={"help": "weight of the GIRL loss"})
    pisa: bool = field(default=True, metadata={"help": "PISA (off: the reference is only an extra frame)"})
    reference_in_cross_attention: bool = field(default=True, metadata={"help": "reference frame in text "
                                                                               "cross-attention"})
    train_motion_modules: bool = field(default=True, metadata={"help": "also train the motion modules"})
    train_whole_unet: bool = field(default=False, metadata={"help": "train every UNet parameter (pretraining a "
                                                                    "base model on a new domain, not the method)"})
    text_dropout: float = field(default=0.05, metadata={"help": "probability of an empty caption"})
    image_dropout: float = field(default=0.05, metadata={"help": "probability of a zero reference latent"})
    joint_dropout: float = field(default=0.05, metadata={"help": "probability of dropping both (the "
                                                                 "unconditional branch of guidance)"})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "checkpoint activations (motion "
                                                                         "modules included)"})
    mixed_precision: str = field(default="no", metadata={"help": "accelerate mixed precision",
                                                         "choices": ["no", "fp16", "bf16"]})
    checkpoint_every: int = field(default=1000, metadata={"help": "save a checkpoint every N steps"})
    keep_checkpoints: int = field(default=3, metadata={"help": "checkpoints kept (oldest removed)"})
    log_every: int = field(default=1, metadata={"help": "log losses every N steps"})
    num_workers: int = field(default=2, metadata={"help": "data loader workers"})
    seed: int = field(default=0, metadata={"help": "global seed"})
    augment: bool = field(default=True, metadata={"help": "reference augmentation (flip + affine)"})
    synthetic_clips: int = field(default=8, metadata={"help": "clips of --data synthetic"})

    def pisa_config(self) -> PISAConfig:
        return PISAConfig(enabled=self.pisa, reference_in_cross_attention=self.reference_in_cross_attention)


TRAIN_PRESETS = presets_for({
    "tiny": dict(num_frames=4, frame_stride=2, resolution=64, gradient_checkpointing=False, num_workers=0,
                 checkpoint_every=1),
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
    return {
        "video": torch.stack([it["video"] for it in items]),
        "reference": torch.stack([it["reference"] for it in items]),
        "caption": [it["caption"] for it in items],
    }


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
    return VideoClipDataset(manifest, num_frames=cfg.num_frames, frame_stride=cfg.frame_stride,
                            resolution=cfg.resolution, augment=AugmentConfig() if cfg.augment else None,
                            seed=cfg.seed)


# ------------------------------------------------------------------------------------------------- run dir
def prepare_run_dir(output_dir: Path, resume: bool, overwrite: bool, is_main: bool) -> None:
    exists = folder_has_outputs(output_dir)
    if exists and not (resume or overwrite):
        raise FileExistsError(f"run folder {output_dir} exists; pass --resume to continue it or --overwrite to "
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
        raise ValueError(f"cannot resume from {path}: not a data-only training state ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not {"step", "optimizer", "lr_scheduler", "rng"} <= set(state):
        raise ValueError(f"cannot resume from {path}: expected a dict with step, optimizer, lr_scheduler and rng")
    return state


def save_checkpoint(run_dir: Path, step: int, unet, optimizer, lr_scheduler, generator, cfg: TrainConfig,
                    keep: int) -> Path:
    """Write ``checkpoints/step-N`` into a temporary folder and rename it into place (never half-written)."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step:08d}"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:08d}.", suffix=".tmp", dir=root))  # ours alone
    os.chmod(tmp, 0o777 & ~current_umask())
    save_trainable_weights(unet, tmp / WEIGHTS_FILE, metadata={"step": step, "config": config_to_dict(cfg)})
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
                "rng": _rng_state(generator)}, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    steps = sorted(p for p in root.iterdir() if p.name.startswith("step-"))
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint saved: %s", final)
    return final


# ------------------------------------------------------------------------------------------------- training
def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train into ``cfg.output_dir``, holding it alone (``vm_common.output_lock``) for the whole run."""
    from accelerate import PartialState

    is_main = PartialState(cpu=use_cpu()).is_main_process
    with hold_output_folder(cfg.output_dir, is_main=is_main):
        return _train(cfg, resume=resume, overwrite=overwrite)


def _train(cfg: TrainConfig, *, resume: bool, overwrite: bool) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from vm_common.provenance import provenance
    from vm_common.tiny import tiny_root

    # without a GPU, `accelerate launch --multi_gpu` processes must be told to use CPU (gloo) explicitly, or
    # each of them silently runs alone
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=use_cpu())
    run_dir = Path(cfg.output_dir)
    prepare_run_dir(run_dir, resume, overwrite, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    set_seed(cfg.seed + accelerator.process_index)
    device = accelerator.device

    # the main process first: it builds the tiny preset's cache (transformers' save_pretrained writes nothing on
    # ranks other than 0 once torch.distributed is up) and fills the hub cache; the others then only read
    with accelerator.main_process_first():
        sources = cfg.sources
        comps = load_base_components(sources, dtype=torch.float32)
    vae, text_encoder, tokenizer, unet = comps["vae"], comps["text_encoder"], comps["tokenizer"], comps["unet"]
    install_pisa(unet, cfg.pisa_config())
    if sources.videomaker_weights:
        from .checkpoint import load_videomaker_weights

        load_videomaker_weights(unet, resolve_videomaker_weights(sources.videomaker_weights))
    n_trainable = set_trainable(unet, cfg.train_motion_modules, cfg.train_whole_unet)
    check_frame_count(unet, cfg.num_frames, 1)
    if cfg.gradient_checkpointing:
        from .grad_checkpointing import enable_full_gradient_checkpointing

        enable_full_gradient_checkpointing(unet)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    for module in (vae, text_encoder):
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
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0)
    generator = torch.Generator().manual_seed(cfg.seed * 7919 + accelerator.process_index)

    start_step = 0
    if resume:
        latest = latest_checkpoint(run_dir)
        if latest is None:
            logger.info("--resume: no checkpoint in %s yet, starting from step 0", run_dir)
        else:
            from .checkpoint import load_videomaker_weights

            load_videomaker_weights(unet, latest / WEIGHTS_FILE)
            state = load_training_state(latest / "state.pt")
            optimizer.load_state_dict(state["optimizer"])
            lr_scheduler.load_state_dict(state["lr_scheduler"])
            _set_rng_state(generator, state["rng"])
            start_step = int(state["step"])
            logger.info("resumed from %s (step %d)", latest, start_step)

    unet, optimizer = accelerator.prepare(unet, optimizer)

    with accelerator.main_process_first():  # --data synthetic: the main process writes it, the others read it
        dataset = build_dataset(cfg, run_dir)
    sampler = StepSampler(len(dataset), cfg.batch_size, cfg.seed, start_step, accelerator.process_index,
                          accelerator.num_processes)
    loader = torch.utils.data.DataLoader(_EpochKeyedDataset(dataset), batch_size=cfg.batch_size, sampler=sampler,
                                         num_workers=cfg.num_workers, collate_fn=_collate,
                                         persistent_workers=cfg.num_workers > 0)

    if accelerator.is_main_process:
        atomic_write_json(run_dir / "config.json", config_to_dict(cfg))
        atomic_write_json(run_dir / "provenance.json", {
            **provenance(), "seed": cfg.seed, "num_processes": accelerator.num_processes,
            "sources": dataclasses.asdict(sources), "preset": cfg.preset, "random_weights": sources.random_weights,
            "tiny_cache": str(tiny_root()) if sources.random_weights else None,
            "trainable_parameters": n_trainable, "resumed_from_step": start_step,
            "prediction_type": prediction_type,
        })
        repair_jsonl(run_dir / "losses.jsonl")
    logger.info("training %.2fM parameters on %d clips for steps %d..%d (%d process(es))", n_trainable / 1e6,
                len(dataset), start_step, cfg.max_steps, accelerator.num_processes)

    step, last = start_step, {}
    data_iter = iter(loader)
    progress = tqdm(total=cfg.max_steps, initial=start_step, desc="train", disable=not accelerator.is_main_process)
    while step < cfg.max_steps:
        batch = next(data_iter)
        t0 = time.perf_counter()
        terms = training_step(cfg, batch, unet, vae, text_encoder, tokenizer, noise_scheduler, generator, device,
                              weight_dtype, accelerator)
        values = torch.stack([terms.total.detach(), terms.video.detach(), terms.reg.detach()]).float()
        values = accelerator.reduce(values, reduction="mean")
        if not torch.isfinite(values).all():
            latest = latest_checkpoint(run_dir)
            raise TrainingDiverged(
                f"non-finite loss at step {step + 1} (total={values[0].item()}, video={values[1].item()}, "
                f"reg={values[2].item()}); the run stopped before the optimizer step. Last checkpoint, untouched: "
                f"{latest or 'none'}. Lower --learning-rate, use bf16, or check the data.")
        accelerator.backward(terms.total)
        if accelerator.sync_gradients and cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        progress.update(1)
        last = {"step": step, "loss": values[0].item(), "loss_video": values[1].item(),
                "loss_reg": values[2].item(), "lr": lr_scheduler.get_last_lr()[0],
                "step_seconds": time.perf_counter() - t0}
        if accelerator.is_main_process and (step % cfg.log_every == 0 or step == cfg.max_steps):
            append_jsonl(run_dir / "losses.jsonl", [last])
            progress.set_postfix(loss=f"{last['loss']:.4f}", reg=f"{last['loss_reg']:.4f}")
            logger.debug("step %d: %s", step, last)
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                save_checkpoint(run_dir, step, accelerator.unwrap_model(unet), optimizer, lr_scheduler, generator,
                                cfg, cfg.keep_checkpoints)
    progress.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return last


def training_step(cfg: TrainConfig, batch: dict, unet, vae, text_encoder, tokenizer, noise_scheduler,
                  generator: torch.Generator, device, weight_dtype, accelerator):
    """One loss evaluation: all randomness (dropout draws, timesteps, noise) comes from ``generator``."""
    video = batch["video"]  # (B, F, 3, H, W) in [-1, 1]
    reference = batch["reference"]  # (B, 3, H, W)
    bsz, frames = video.shape[:2]

    # condition dropout, drawn once per sample: text only / image only / both
    u = torch.rand(bsz, generator=generator)
    drop_text = u < cfg.text_dropout + cfg.joint_dropout
    drop_image = (u >= cfg.text_dropout) & (u < cfg.text_dropout + cfg.joint_dropout + cfg.image_dropout)
    captions = ["" if d else c for c, d in zip(batch["caption"], drop_text.tolist())]

    with torch.no_grad():
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        text = text_encoder(ids)[0]
        dist = vae.encode(video.flatten(0, 1).to(device, dtype=weight_dtype)).latent_dist
        eps_vae = torch.randn(dist.mean.shape, generator=generator).to(device, dist.mean.dtype)
        latents = (dist.mean + dist.std * eps_vae) * vae.config.scaling_factor
        latents = latents.unflatten(0, (bsz, frames)).permute(0, 2, 1, 3, 4).float()  # (B, C, F, h, w)
        ref_latents = encode_reference_images(vae, reference.to(device)).float().unsqueeze(2)  # (B, C, 1, h, w)

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

    with accelerator.autocast():
        pred_video, pred_ref = unet_with_reference(unet, noisy, ref_input, timesteps, text.float())
    return videomaker_loss(pred_video, target, pred_ref, ref_target, kept, cfg.girl_beta, girl=cfg.girl)


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
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve_train_config(args)
    except ValueError as exc:  # ConfigError: the file or key named
        logger.error("%s", exc)
        return 2
    try:
        last = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except OutputFolderBusy as exc:
        logger.error("%s", exc)
        return 2
    except (TrainingDiverged, FileExistsError, FileNotFoundError) as exc:
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

