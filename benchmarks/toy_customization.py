"""Toy customization: does our VideoMaker implementation learn to transfer a subject from a reference image?

A domain where appearance can only come from the reference (``vm_model.toy.domain``): one subject with a random
colour pair, texture and shape moves left / right / up / down over a plain dark background; the caption names only
the direction. Everything runs through the real code paths:

  0. render the training clips and a `vm train` manifest; build the toy base folder (diffusers layout: tiny UNet,
     tiny CLIP text encoder + the full CLIP tokenizer, a motion adapter) and train its small VAE on the domain;
  1. pretrain the base as a text-to-video model on the domain with `vm train --train-whole-unet` and the reference
     always zeroed (the toy analogue of the pretrained AnimateDiff base the paper starts from);
  2. VideoMaker training with `vm train` (PISA + GIRL; the whole UNet trainable, see --stage2-whole-unet) from the
     stage-1 weights (`--weights`), and the ablations pisa_off (`--no-pisa`) and girl_off (`--no-girl`),
     trained the same way from the same base;
  3. generate held-out subjects with ``VideoMakerPipeline`` (classifier-free guidance with a zero reference in the
     unconditional branch) for full, reference_zeroed (the full model, all-zero reference latent), pisa_off and
     girl_off; score subject fidelity and motion direction (``vm_model.toy.metrics``).

Writes ``OUT/toy_customization.json`` (metrics, per-sample rows, loss curves, timings, load, config, seeds,
versions) and ``OUT/toy_customization_<variant>.gif`` (reference | generated, one pair per held-out subject).

    python benchmarks/toy_customization.py --out runs/toy            # the experiment of docs/toy_customization.md
    python benchmarks/toy_customization.py --out /tmp/toy --quick    # a smoke-sized run (about a minute)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(ROOT))

from vm_common.config import add_dataclass_arguments, build_config, config_to_dict  # noqa: E402
from vm_common.io_utils import read_jsonl  # noqa: E402

logger = logging.getLogger("toy_customization")

VARIANTS = ("full", "reference_zeroed", "pisa_off", "girl_off")
TRAINED = {"full": [], "pisa_off": ["--no-pisa"], "girl_off": ["--no-girl"]}  # stage-2 runs and their flags


@dataclass
class ToyConfig:
    size: int = field(default=32, metadata={"help": "frame size in pixels (square)"})
    vae_levels: int = field(default=3, metadata={"help": "levels of the toy VAE: 3 = latents of size/4, 2 = size/2",
                                                 "choices": [2, 3]})
    num_frames: int = field(default=4, metadata={"help": "frames per clip"})
    radius: tuple[float, float] = field(default=(0.2, 0.25), metadata={"help": "subject radius range, fraction of "
                                                                               "the frame"})
    cell: tuple[float, float] = field(default=(0.2, 0.25), metadata={"help": "texture cell range, fraction of the "
                                                                           "frame"})
    travel: tuple[float, float] = field(default=(0.28, 0.34), metadata={"help": "distance moved over the clip, "
                                                                               "fraction of the frame"})
    jitter: float = field(default=0.2, metadata={"help": "start position spread: 0 = the middle of where the path "
                                                         "fits, 1 = anywhere it fits"})
    prediction_type: str = field(default="v_prediction", metadata={
        "help": "what the toy base predicts (see docs/toy_customization.md)", "choices": ["epsilon", "v_prediction"]})
    colours: int = field(default=2, metadata={"help": "colours per subject (1: plain subjects, as in the scaled-down "
                                                      "test)", "choices": [1, 2]})
    lanes: bool = field(default=False, metadata={"help": "each direction keeps to its own lane along one side of the "
                                                         "frame (vm_model.toy.domain.LANES)"})
    attribute: str = field(default="none", metadata={
        "help": "none, or stripes: horizontal / vertical stripes named in the caption and shown by the reference "
                "(the copy-paste experiment, docs/injection_schedule.md)", "choices": ["none", "stripes"]})
    stage2_attribute_captions: float = field(default=1.0, metadata={
        "help": "fraction of stage-2 captions that name the attribute (the rest name only the direction; stage 1 "
                "always names it)", "min": 0.0, "max": 1.0})
    max_tokens: int = field(default=8, metadata={"help": "tokenizer model_max_length of the toy base (captions are "
                                                         "five words)"})
    text_layers: int = field(default=1, metadata={"help": "layers of the toy (random, frozen) CLIP text encoder"})
    token_embedding_scale: float = field(default=10.0, metadata={"help": "scale of its random token embeddings"})
    train_clips: int = field(default=1024, metadata={"help": "training clips (directions balanced)"})
    eval_subjects: int = field(default=32, metadata={"help": "held-out subjects (directions balanced)"})
    vae_steps: int = field(default=1000, metadata={"help": "stage 0: VAE training steps"})
    vae_batch: int = field(default=16, metadata={"help": "stage 0: VAE batch size"})
    vae_lr: float = field(default=2e-3, metadata={"help": "stage 0: VAE peak learning rate (one-cycle)"})
    vae_subject_weight: float = field(default=4.0, metadata={"help": "stage 0: extra loss weight on subject pixels"})
    vae_kl_weight: float = field(default=1e-6, metadata={"help": "stage 0: KL weight (per pixel value)"})
    vae_logvar_init: float = field(default=-8.0, metadata={"help": "stage 0: initial posterior log-variance"})
    base_steps: int = field(default=1100, metadata={"help": "stage 1: base pretraining steps (0: skip stage 1)"})
    base_lr: float = field(default=5e-4, metadata={"help": "stage 1: learning rate"})
    base_batch: int = field(default=4, metadata={"help": "stage 1: batch size per process"})
    steps: int = field(default=800, metadata={"help": "stage 2: VideoMaker training steps per variant"})
    lr: float = field(default=2e-3, metadata={"help": "stage 2: learning rate"})
    batch: int = field(default=16, metadata={"help": "stage 2: batch size"})
    stage2_whole_unet: bool = field(default=True, metadata={
        "help": "stage 2 trains every UNet parameter (--train-whole-unet), not only spatial self-attention and motion "
                "modules as the paper does: the toy base is far weaker than SD 1.5 (docs/toy_customization.md)"})
    stage2_latent_cache: bool = field(default=False, metadata={
        "help": "stage 2 trains from a latent cache: `vm cache-latents` encodes the stage-2 manifest once, then "
                "`vm train --latent-cache` (the reference, augmented, is still encoded on the fly)"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up steps of stages 1 and 2"})
    inference_steps: int = field(default=25, metadata={"help": "DDIM steps at evaluation"})
    guidance_scale: float = field(default=4.0, metadata={"help": "classifier-free guidance scale at evaluation"})
    seed: int = field(default=0, metadata={"help": "seed of data, training and sampling"})
    threads: int = field(default=1, metadata={"help": "torch threads per process (1 avoids oversubscription on a "
                                                      "shared 2-core machine)"})
    jobs: int = field(default=3, metadata={"help": "stage-2 runs trained at the same time (separate processes)"})
    base_processes: int = field(default=2, metadata={"help": "data-parallel processes of stage 1 (accelerate launch, "
                                                            "--base-batch clips each); 1 = in this process"})
    gif_subjects: int = field(default=8, metadata={"help": "held-out subjects shown in each GIF"})
    work_dir: Path | None = field(default=None, metadata={"help": "scratch folder (default: OUT/toy_work)"})
    keep_work: bool = field(default=True, metadata={"help": "keep the scratch folder (data, base, runs)"})


QUICK = dict(train_clips=128, eval_subjects=8, vae_steps=150, base_steps=40, base_processes=1, steps=30,
             inference_steps=10, gif_subjects=4)


# ----------------------------------------------------------------------------------------------------- timing
class Clock:
    """Wall and CPU seconds (this process + finished children) and the load average, per stage."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}
        self.t0, self.cpu0 = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def stage(self, name: str):
        clock = self

        class _Stage:
            def __enter__(self_inner):
                self_inner.t, self_inner.c, self_inner.load = time.perf_counter(), clock._cpu(), os.getloadavg()
                logger.info("stage %s (load average %.2f %.2f %.2f)", name, *self_inner.load)

            def __exit__(self_inner, *exc):
                clock.stages[name] = {"wall_s": time.perf_counter() - self_inner.t,
                                      "cpu_s": clock._cpu() - self_inner.c,
                                      "loadavg_start": list(self_inner.load), "loadavg_end": list(os.getloadavg())}
                logger.info("stage %s: %.1f s wall, %.1f s CPU", name, clock.stages[name]["wall_s"],
                            clock.stages[name]["cpu_s"])

        return _Stage()

    def total(self) -> dict:
        return {"wall_s": time.perf_counter() - self.t0, "cpu_s": self._cpu() - self.cpu0}


# ------------------------------------------------------------------------------------------------------- data
def subject_ranges(cfg: ToyConfig):
    from vm_model.toy.domain import SubjectRanges

    return SubjectRanges(radius=tuple(cfg.radius), cell=tuple(cfg.cell), travel=tuple(cfg.travel), jitter=cfg.jitter,
                          lanes=cfg.lanes, colours=cfg.colours, attribute=cfg.attribute)


def toy_domain(cfg: ToyConfig):
    from vm_model.toy.domain import ToyDomain

    return ToyDomain(size=cfg.size, num_frames=cfg.num_frames, ranges=subject_ranges(cfg), seed=cfg.seed)


def eval_subjects(cfg: ToyConfig) -> list:
    """The held-out subjects: a stream the training data never uses (the toy benchmark's ``toy:<index>``)."""
    from vm_model.toy.domain import heldout_subjects

    return heldout_subjects(toy_domain(cfg), cfg.eval_subjects)


def training_subjects(manifest: Path) -> list:
    from vm_data.clip_manifest import read_manifest
    from vm_model.toy.domain import subject_from_dict

    return [subject_from_dict(row.extra["toy_subject"]) for row in read_manifest(manifest, status="kept")]


def vae_images(cfg: ToyConfig, subjects: list) -> np.ndarray:
    """Every other frame of each training clip plus its reference: what the VAE will encode and decode."""
    from vm_model.toy.domain import reference_image, render

    images = []
    for s in subjects:
        frames, _ = render(s, cfg.num_frames, cfg.size)
        images.extend(frames[::2])
        images.append(reference_image(s, cfg.num_frames, cfg.size))
    return np.stack(images)


# --------------------------------------------------------------------------------------------------- training
def common_train_args(cfg: ToyConfig, work: Path, manifest: Path) -> list[str]:
    return ["--preset", "full", "--base-model", str(work / "base"), "--motion-adapter", str(work / "motion_adapter"),
            "--data", str(manifest), "--num-frames", str(cfg.num_frames), "--frame-stride", "1",
            "--resolution", str(cfg.size), "--no-gradient-checkpointing", "--num-workers", "0",
            "--seed", str(cfg.seed), "--warmup-steps", str(cfg.warmup_steps), "--log-every", "1"]


def base_args(cfg: ToyConfig, work: Path, manifest: Path) -> list[str]:
    # text_dropout 0 + joint 0.1 + image 0.9: the reference is ALWAYS zeroed (the base never sees one) and the
    # caption is dropped 10% of the time (so that text guidance works)
    return common_train_args(cfg, work, manifest) + [
        "--output-dir", str(work / "runs" / "base"), "--max-steps", str(cfg.base_steps),
        "--checkpoint-every", str(cfg.base_steps), "--batch-size", str(cfg.base_batch),
        "--learning-rate", str(cfg.base_lr), "--train-whole-unet", "--no-girl",
        "--text-dropout", "0", "--joint-dropout", "0.1", "--image-dropout", "0.9"]


def stage2_manifest(cfg: ToyConfig, manifest: Path) -> Path:
    """The stage-2 manifest: the training manifest, or, when only a fraction of stage-2 captions name the attribute
    (``stage2_attribute_captions`` < 1), a copy beside it whose other captions name only the direction (a seeded
    choice per clip, stream ``[seed, 2]``)."""
    from vm_common.io_utils import atomic_write_text, dumps_row
    from vm_data.clip_manifest import read_manifest
    from vm_model.toy.domain import caption_for, subject_from_dict

    if cfg.attribute == "none" or cfg.stage2_attribute_captions >= 1.0:
        return manifest
    rng = np.random.default_rng([cfg.seed, 2])
    rows = []
    for row in read_manifest(manifest):
        if rng.random() >= cfg.stage2_attribute_captions:
            row = dataclasses.replace(row, caption=caption_for(subject_from_dict(row.extra["toy_subject"]).direction))
        rows.append(row)
    out = manifest.with_name("manifest_stage2.jsonl")
    atomic_write_text(out, "".join(dumps_row(r.to_dict()) + "\n" for r in rows))
    named = sum(r.caption != caption_for(subject_from_dict(r.extra["toy_subject"]).direction) for r in rows)
    logger.info("stage-2 manifest: %d of %d captions name the attribute", named, len(rows))
    return out


def latent_cache_args(cfg: ToyConfig, work: Path, manifest: Path) -> list[str]:
    """`vm cache-latents` of the stage-2 manifest with the shapes and base of the stage-2 runs (fp32, as they train)."""
    return ["--preset", "full", "--base-model", str(work / "base"), "--data", str(manifest),
            "--output", str(work / "latent_cache"), "--num-frames", str(cfg.num_frames), "--frame-stride", "1",
            "--resolution", str(cfg.size), "--dtype", "fp32", "--device", "cpu", "--overwrite"]


def stage2_args(cfg: ToyConfig, work: Path, manifest: Path, name: str) -> list[str]:
    init = ["--weights", str(work / "runs" / "base")] if cfg.base_steps > 0 else []
    whole = ["--train-whole-unet"] if cfg.stage2_whole_unet else []
    cache = ["--latent-cache", str(work / "latent_cache")] if cfg.stage2_latent_cache else []
    return common_train_args(cfg, work, manifest) + init + whole + cache + TRAINED[name] + [
        "--output-dir", str(work / "runs" / name), "--max-steps", str(cfg.steps),
        "--checkpoint-every", str(cfg.steps), "--batch-size", str(cfg.batch), "--learning-rate", str(cfg.lr)]


def run_vm_train(runs: dict[str, list[str]], jobs: int, threads: int, log_dir: Path, processes: int = 1) -> None:
    """`vm train` for each named argv: in this process when one at a time, else as parallel processes
    (``python -m vm_model.train``, the same entry point, ``threads`` threads each); ``processes`` > 1 runs each
    one data-parallel with ``accelerate launch`` (gloo on CPU)."""
    from vm_model.train import main

    if processes <= 1 and (jobs <= 1 or len(runs) == 1):
        for name, argv in runs.items():
            logger.info("vm train (%s): %s", name, " ".join(argv))
            if main(argv + ["--overwrite"]) != 0:
                raise RuntimeError(f"vm train ({name}) failed")
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    log_dir.mkdir(parents=True, exist_ok=True)

    def launch(item):
        name, argv = item
        logger.info("vm train (%s, subprocess): %s", name, " ".join(argv))
        launcher = [sys.executable, "-m", "vm_model.train"]
        if processes > 1:
            launcher = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes",
                        str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        "-m", "vm_model.train"]
        with open(log_dir / f"{name}.log", "w") as log:
            rc = subprocess.run([*launcher, *argv, "--overwrite"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT).returncode
        if rc != 0:
            tail = (log_dir / f"{name}.log").read_text()[-2000:]
            raise RuntimeError(f"vm train ({name}) exited with {rc}; log tail:\n{tail}")
        return name

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for name in pool.map(launch, runs.items()):
            logger.info("vm train (%s) finished", name)


def loss_summary(run_dir: Path, points: int = 20) -> dict:
    rows = list(read_jsonl(run_dir / "losses.jsonl"))
    if not rows:
        return {}
    chunk = max(1, len(rows) // points)
    curve = [{"step": rows[min(i + chunk, len(rows)) - 1]["step"],
              "loss_video": float(np.mean([r["loss_video"] for r in rows[i:i + chunk]])),
              "loss_reg": float(np.mean([r["loss_reg"] for r in rows[i:i + chunk]]))}
             for i in range(0, len(rows), chunk)]
    return {"steps": rows[-1]["step"], "curve": curve,
            "median_step_seconds": float(np.median([r["step_seconds"] for r in rows]))}


# ------------------------------------------------------------------------------------------------- evaluation
def load_variant(cfg: ToyConfig, work: Path, variant: str):
    """The pipeline of a variant: base + stage-1 weights (load_pipeline), then the stage-2 run's weights."""
    from vm_model.checkpoint import latest_checkpoint, load_videomaker_weights
    from vm_model.components import ModelSources, load_pipeline
    from vm_model.pisa import PISAConfig

    run = "full" if variant == "reference_zeroed" else variant
    sources = ModelSources(base_model=str(work / "base"), motion_adapter=str(work / "motion_adapter"),
                           videomaker_weights=str(work / "runs" / "base") if cfg.base_steps > 0 else None)
    pipe = load_pipeline(sources, device="cpu", dtype=torch.float32,
                         pisa=PISAConfig(enabled=variant != "pisa_off"))
    report = load_videomaker_weights(pipe.unet, latest_checkpoint(work / "runs" / run) / "trainable.safetensors")
    pipe.set_progress_bar_config(disable=True)
    return pipe, report


@torch.no_grad()
def generate(cfg: ToyConfig, pipe, subjects: list, references: list[np.ndarray], zero_reference: bool,
             prompts: list[str] | None = None, guidance_scale: float | None = None, **controls) -> np.ndarray:
    """(N, F, H, W, 3) float in [0, 1]; the same initial noise for every variant (one seeded generator).
    ``prompts``: default each subject's own caption; ``guidance_scale``: default the config's; ``controls``: further
    pipeline arguments (``injection_schedule``, ``reference_guidance_scale``)."""
    from PIL import Image

    from vm_model.toy.domain import subject_caption

    latents = torch.cat([pipe.prepare_reference_latents(Image.fromarray(r), cfg.size, cfg.size, "cpu", torch.float32)
                         for r in references])  # (N, C, 1, h, w)
    if zero_reference:
        latents = torch.zeros_like(latents)
    ranges = subject_ranges(cfg)
    prompts = prompts if prompts is not None else [subject_caption(s, ranges) for s in subjects]
    out = pipe(prompt=list(prompts), reference_latents=latents,
               num_frames=cfg.num_frames, height=cfg.size, width=cfg.size, num_inference_steps=cfg.inference_steps,
               guidance_scale=cfg.guidance_scale if guidance_scale is None else guidance_scale,
               generator=torch.Generator().manual_seed(cfg.seed + 12345), output_type="np", **controls)
    return np.asarray(out.frames, dtype=np.float32)


@torch.no_grad()
def heldout_denoising_mse(pipe, subjects: list, references: list[np.ndarray], cfg: ToyConfig,
                          timesteps: tuple[int, ...] = (100, 300, 500, 700)) -> dict:
    """The training objective (MSE to the base's target, noise or velocity, on the video frames) on the held-out
    clips, with their reference and with an all-zero reference, same noise: a reference-using model has a lower loss
    with the reference. Does not depend on sampling, so it shows whether the mechanism is learned even when samples
    are poor."""
    from vm_model.pipeline import encode_reference_images
    from vm_model.scheduler import training_scheduler, training_target
    from vm_model.toy.domain import render, subject_caption
    from vm_model.unet_call import unet_with_reference

    video = torch.stack([torch.from_numpy(render(s, cfg.num_frames, cfg.size)[0].copy()) for s in subjects])
    video = video.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0  # (N, F, 3, H, W)
    refs = torch.stack([torch.from_numpy(r.copy()) for r in references]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    latents = pipe.vae.encode(video.flatten(0, 1)).latent_dist.mean * pipe.vae.config.scaling_factor
    latents = latents.unflatten(0, video.shape[:2]).permute(0, 2, 1, 3, 4)  # (N, C, F, h, w)
    ref_latents = encode_reference_images(pipe.vae, refs).unsqueeze(2)
    ranges = subject_ranges(cfg)
    ids = pipe.tokenizer([subject_caption(s, ranges) for s in subjects], padding="max_length",
                         max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    text = pipe.text_encoder(ids)[0]
    scheduler = training_scheduler(pipe.scheduler.config.prediction_type)
    g = torch.Generator().manual_seed(cfg.seed + 777)
    out = {"timesteps": list(timesteps), "reference": [], "zero_reference": []}
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=g)
        tt = torch.full((len(subjects),), t, dtype=torch.long)
        noisy = scheduler.add_noise(latents, noise, tt)
        for key, ref in (("reference", ref_latents), ("zero_reference", torch.zeros_like(ref_latents))):
            pred, _ = unet_with_reference(pipe.unet, noisy, ref, tt, text)
            out[key].append(float((pred - training_target(scheduler, latents, noise, tt)).pow(2).mean()))
    out["ratio"] = float(np.mean(out["reference"]) / np.mean(out["zero_reference"]))
    return out


def score(videos: np.ndarray, subjects: list, references: list[np.ndarray], seed: int) -> list[dict]:
    from vm_model.toy.metrics import fidelity_error, mean_subject_flow, motion_direction

    rows = []
    for i, (video, subject, ref) in enumerate(zip(videos, subjects, references)):
        predicted = motion_direction(video)
        rows.append({"index": i, "direction": subject.direction, "predicted_direction": predicted,
                     "motion_right": predicted == subject.direction,
                     "mean_flow": [float(v) for v in mean_subject_flow(video)],
                     "fidelity_error": fidelity_error(video, ref, seed=seed + i)})
    return rows


def aggregate(rows: list[dict]) -> dict:
    fe = np.array([r["fidelity_error"] for r in rows])
    mr = np.array([r["motion_right"] for r in rows], dtype=float)
    return {"fidelity_error": float(fe.mean()), "fidelity_error_sem": float(fe.std(ddof=1) / np.sqrt(len(fe)))
            if len(fe) > 1 else 0.0, "motion_accuracy": float(mr.mean()), "n": len(rows)}


def write_gif_grid(path: Path, references: list[np.ndarray], videos: np.ndarray, per_row: int = 4,
                   scale: int = 2) -> None:
    """One tile per subject: reference | generated (animated); tiles on a white grid."""
    from vm_common.media import write_gif

    n, frames = len(references), videos.shape[1]
    size = references[0].shape[0]
    rows = (n + per_row - 1) // per_row
    gap = 2
    tile_w = 2 * size + gap
    canvas = np.full((frames, rows * (size + gap) + gap, per_row * (tile_w + 2 * gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, per_row)
        y, x = gap + r * (size + gap), gap + c * (tile_w + 2 * gap)
        vid = np.clip(np.round(videos[i] * 255.0), 0, 255).astype(np.uint8)
        canvas[:, y:y + size, x:x + size] = references[i]
        canvas[:, y:y + size, x + size + gap:x + 2 * size + gap] = vid
    canvas = canvas.repeat(scale, axis=1).repeat(scale, axis=2)
    write_gif(path, canvas, fps=4.0)


def calibration(cfg: ToyConfig, work: Path, subjects: list, references: list[np.ndarray]) -> dict:
    """The metrics on known videos: the rendered clips (the metric's floor), the clips through the trained VAE
    (the floor a generator in this latent space can reach) and the clips against another subject's reference
    (the chance level of the fidelity error)."""
    from diffusers import AutoencoderKL

    from vm_model.toy.domain import render

    clips = np.stack([render(s, cfg.num_frames, cfg.size)[0] for s in subjects]).astype(np.float32) / 255.0
    vae = AutoencoderKL.from_pretrained(work / "base" / "vae").eval()
    with torch.no_grad():
        x = torch.from_numpy(clips).flatten(0, 1).permute(0, 3, 1, 2) * 2 - 1
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    rec = ((rec + 1) / 2).permute(0, 2, 3, 1).reshape(clips.shape).numpy()
    shifted = references[1:] + references[:1]
    out = {}
    for name, videos, refs in (("ground_truth", clips, references), ("vae_reconstruction", rec, references),
                               ("mismatched_reference", clips, shifted)):
        out[name] = aggregate(score(videos, subjects, refs, cfg.seed))
    return out


# ------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quick", action="store_true", help=f"smoke-sized run: {QUICK}")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="variants to train and evaluate (reference_zeroed needs full)")
    parser.add_argument("--export", type=Path, default=None, metavar="DIR",
                        help="after the run, write the shipped toy model (builtin:toy, --preset toy) into DIR: the "
                             "toy base, motion adapter and 'full' VideoMaker weights as safetensors + toy.json "
                             "(vm_model.toy.export); the package's copy is vm_model/toy/weights")
    add_dataclass_arguments(parser, ToyConfig)
    return parser


def run(cfg: ToyConfig, out: Path, variants: list[str], quick: bool = False) -> dict:
    from benchmarks.harness.provenance import provenance
    from benchmarks.harness.results import write_results
    from vm_model.toy.components import build_toy_base, build_toy_motion_adapter, train_toy_vae
    from vm_model.toy.domain import make_toy_dataset, reference_image

    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(cfg.work_dir) if cfg.work_dir else out / "toy_work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    clock = Clock()
    result: dict = {"config": {**config_to_dict(cfg), "quick": quick, "variants": variants},
                    "provenance": provenance(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}

    with clock.stage("data"):
        manifest = make_toy_dataset(work / "data", cfg.train_clips, cfg.num_frames, cfg.size, seed=cfg.seed,
                                    ranges=subject_ranges(cfg))
        train_subjects = training_subjects(manifest)
        held_out = eval_subjects(cfg)
        references = [reference_image(s, cfg.num_frames, cfg.size) for s in held_out]
        seen = {(s.color1, s.color2) for s in train_subjects}
        result["data"] = {"train_clips": len(train_subjects), "eval_subjects": len(held_out),
                          "eval_colour_pairs_seen_in_training": sum((s.color1, s.color2) in seen for s in held_out),
                          "eval_subject_definitions": [s.to_dict() for s in held_out]}

    with clock.stage("vae"):
        build_toy_base(work / "base", seed=cfg.seed, size=cfg.size, max_tokens=cfg.max_tokens,
                       text_layers=cfg.text_layers, token_embedding_scale=cfg.token_embedding_scale,
                       prediction_type=cfg.prediction_type, vae_levels=cfg.vae_levels)
        build_toy_motion_adapter(work / "motion_adapter", seed=cfg.seed)
        result["vae"] = train_toy_vae(work / "base" / "vae", vae_images(cfg, train_subjects), cfg.vae_steps,
                                      cfg.vae_batch, cfg.vae_lr, kl_weight=cfg.vae_kl_weight,
                                      subject_weight=cfg.vae_subject_weight, logvar_init=cfg.vae_logvar_init,
                                      seed=cfg.seed)

    if cfg.base_steps > 0:
        with clock.stage("base_pretraining"):
            run_vm_train({"base": base_args(cfg, work, manifest)}, 1, cfg.threads, work / "logs",
                         processes=cfg.base_processes)

    trained = [v for v in TRAINED if v in variants or (v == "full" and "reference_zeroed" in variants)]
    if cfg.steps <= 0:
        logger.info("--steps 0: stopping after the base model")
        return result
    manifest2 = stage2_manifest(cfg, manifest)
    if cfg.stage2_latent_cache:
        from vm_model.cache_latents import main as cache_latents

        with clock.stage("latent_cache"):
            if cache_latents(latent_cache_args(cfg, work, manifest2)) != 0:
                raise RuntimeError("vm cache-latents failed")
    with clock.stage("videomaker_training"):
        run_vm_train({name: stage2_args(cfg, work, manifest2, name) for name in trained}, cfg.jobs, cfg.threads,
                     work / "logs")
    result["losses"] = {name: loss_summary(work / "runs" / name) for name in (["base"] if cfg.base_steps else [])
                        + trained}

    per_sample, metrics = {}, {}
    with clock.stage("evaluation"):
        for variant in variants:
            pipe, report = load_variant(cfg, work, variant)
            t = time.perf_counter()
            videos = generate(cfg, pipe, held_out, references, zero_reference=variant == "reference_zeroed")
            gen_s = time.perf_counter() - t
            rows = score(videos, held_out, references, cfg.seed)
            per_sample[variant] = rows
            metrics[variant] = {**aggregate(rows), "generation_s": gen_s, "weights": report.summary(),
                                "prediction_type": pipe.scheduler.config.prediction_type}
            if variant != "reference_zeroed":
                metrics[variant]["heldout_denoising_mse"] = heldout_denoising_mse(pipe, held_out, references, cfg)
            write_gif_grid(out / f"toy_customization_{variant}.gif", references[:cfg.gif_subjects],
                           videos[:cfg.gif_subjects])
            logger.info("%s: fidelity error %.1f, motion accuracy %.2f", variant, metrics[variant]["fidelity_error"],
                        metrics[variant]["motion_accuracy"])
            del pipe
        result["calibration"] = calibration(cfg, work, held_out, references)

    result["fidelity_error"] = {v: metrics[v]["fidelity_error"] for v in variants}
    result["motion_accuracy"] = {v: metrics[v]["motion_accuracy"] for v in variants}
    result["metrics"] = metrics
    if "full" in metrics and "reference_zeroed" in metrics:
        paired = [a["fidelity_error"] < b["fidelity_error"] for a, b in
                  zip(per_sample["full"], per_sample["reference_zeroed"])]
        result["targets"] = {
            "fidelity_ratio_full_to_reference_zeroed": metrics["full"]["fidelity_error"]
            / metrics["reference_zeroed"]["fidelity_error"],
            "fidelity_full_better_than_zeroed_fraction": float(np.mean(paired)),
            "fidelity_at_most_half_of_reference_zeroed": metrics["full"]["fidelity_error"]
            <= 0.5 * metrics["reference_zeroed"]["fidelity_error"],
            "motion_accuracy_at_least_0.8": metrics["full"]["motion_accuracy"] >= 0.8,
        }
    result["per_sample"] = per_sample
    result["timings"] = {"stages": clock.stages, "total": clock.total(), "loadavg_end": list(os.getloadavg())}
    result["timings"]["within_20_minutes_wall"] = result["timings"]["total"]["wall_s"] <= 20 * 60
    write_results(out / "toy_customization", result, sort_keys=True)
    logger.info("wrote %s (%.0f s wall, %.0f s CPU)", out / "toy_customization.json",
                result["timings"]["total"]["wall_s"], result["timings"]["total"]["cpu_s"])
    if not cfg.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = {**config_to_dict(ToyConfig()), **(QUICK if args.quick else {})}
    cfg = build_config(ToyConfig, args, None, base=base)
    if args.export is not None and not ({"full", "reference_zeroed"} <= set(args.variants) and cfg.keep_work
                                        and cfg.steps > 0):
        build_parser().error("--export needs the variants full and reference_zeroed (its measured fidelity), "
                             "--steps > 0 and --keep-work")
    result = run(cfg, args.out, list(args.variants), quick=args.quick)
    if args.export is not None:
        from vm_model.toy.export import export_toy_model

        work = Path(cfg.work_dir) if cfg.work_dir else args.out / "toy_work"
        command = " ".join(["python", "benchmarks/toy_customization.py", *(sys.argv[1:] if argv is None else argv)])
        export_toy_model(work, result, args.export, command=command)
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_logging()
    sys.exit(main())
