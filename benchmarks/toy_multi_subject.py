"""Toy multi-subject customization: does ID routing on PISA keep two subjects apart, each from its own reference?

The two-subject toy domain (``vm_model.toy.multi``): two subjects of clearly different colours move in opposite
directions, each in its own lane; every clip has one reference per subject (random order) and per-frame subject
masks, in a schema-2 manifest. Everything runs through the real code paths, from the shipped single-subject toy
VideoMaker (``builtin:toy``, ``--preset toy``; docs/toy_customization.md):

  1. render the training clips + manifest (subjects, mask files) and the held-out pairs;
  2. `vm train` (whole UNet, two reference frames per clip, GIRL on both) from ``builtin:toy`` for each variant:
     ``unrouted`` (today's multi-reference PISA), ``routed`` (``--router`` + the routing loss) and
     ``routed_no_loss`` (``--router --routing-loss-weight 0``), the same steps, data and seed, trained side by side;
     on request (``--variants``) also ``routed_nbhd``: ``routed`` with position-aware routing
     (``--router-neighbourhood 3``, ``vm_model.routing.neighbourhood_pool``);
     with ``--router-after-steps N`` also ``routed_after``: the router alone (``--train-router-only``) trained for
     N steps on top of the finished ``unrouted`` run (Ingredients' order: injection first, router after);
  3. generate the held-out pairs with ``VideoMakerPipeline`` (both references, classifier-free guidance) for each
     variant (``routed_hard`` / ``routed_nbhd_hard``: that model with hard routing), and score each generated
     subject (cut out by its lane) against both references: colour fidelity error (``vm_model.toy.metrics``)
     against its own (the Hungarian match) and the other reference, and the swap rate (closer to the other
     reference than to its own); plus the router's token accuracy against the held-out masks.

Writes ``OUT/toy_multi_subject.json`` (+ ``.md``), ``OUT/toy_multi_subject_<variant>.gif`` (reference 1 |
reference 2 | generated, one row per held-out pair).

    python -m benchmarks.toy_multi_subject --out runs/toy_multi            # the experiment of docs/multi_subject.md
    python -m benchmarks.toy_multi_subject --out /tmp/tm --quick           # smoke-sized (a minute or two)
    python -m benchmarks.toy_multi_subject --out runs/toy_multi_nbhd \
        --variants unrouted routed routed_hard routed_nbhd routed_nbhd_hard  # + position-aware routing
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.toy_customization import Clock, loss_summary, run_vm_train  # noqa: E402
from vm_common.config import add_dataclass_arguments, build_config, config_to_dict  # noqa: E402

logger = logging.getLogger("toy_multi_subject")

TRAINED = {"unrouted": [], "routed": ["--router"], "routed_no_loss": ["--router", "--routing-loss-weight", "0"],
           "routed_nbhd": ["--router", "--router-neighbourhood", "3"]}
VARIANTS = ("unrouted", "routed", "routed_no_loss", "routed_hard", "routed_after", "routed_nbhd", "routed_nbhd_hard")
DEFAULT_OFF = ("routed_after", "routed_nbhd", "routed_nbhd_hard")  # only when asked (--variants / --router-after-steps)


@dataclass
class MultiToyConfig:
    train_clips: int = field(default=512, metadata={"help": "two-subject training clips"})
    eval_pairs: int = field(default=32, metadata={"help": "held-out pairs"})
    steps: int = field(default=300, metadata={"help": "training steps per variant"})
    batch: int = field(default=8, metadata={"help": "batch size"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up steps"})
    routing_loss_weight: float = field(default=0.5, metadata={"help": "weight of the routing loss (routed)"})
    router_after_steps: int = field(default=0, metadata={
        "help": "also train routed_after: the router alone for N steps on the finished unrouted run (0 = skip)"})
    inference_steps: int = field(default=25, metadata={"help": "DDIM steps at evaluation"})
    guidance_scale: float = field(default=4.0, metadata={"help": "classifier-free guidance scale"})
    seed: int = field(default=0, metadata={"help": "seed of data, training and sampling"})
    threads: int = field(default=1, metadata={"help": "torch threads per process"})
    jobs: int = field(default=3, metadata={"help": "variants trained at the same time (processes)"})
    gif_pairs: int = field(default=8, metadata={"help": "held-out pairs shown in each GIF"})


QUICK = dict(train_clips=16, eval_pairs=4, steps=2, batch=2, inference_steps=2, gif_pairs=2, jobs=1,
             router_after_steps=1)
SIZE, FRAMES = 32, 4  # the shipped toy model's clip shape (--preset toy)


def train_args(cfg: MultiToyConfig, manifest: Path, out: Path, steps: int, extra: list[str],
               weights: str = "builtin:toy") -> list[str]:
    return ["--preset", "toy", "--weights", weights, "--data", str(manifest), "--num-frames", str(FRAMES),
            "--frame-stride", "1", "--resolution", str(SIZE), "--no-gradient-checkpointing", "--num-workers", "0",
            "--seed", str(cfg.seed), "--warmup-steps", str(cfg.warmup_steps), "--log-every", "1",
            "--train-whole-unet", "--routing-loss-weight", str(cfg.routing_loss_weight), "--output-dir", str(out),
            "--max-steps", str(steps), "--checkpoint-every", str(steps), "--batch-size", str(cfg.batch),
            "--learning-rate", str(cfg.lr)] + extra


def load_run(run_dir: Path):
    from vm_model.components import ModelSources, load_pipeline

    # a --train-router-only run's file holds the routers and names the run it started from (loaded first)
    sources = ModelSources(base_model="builtin:toy", motion_adapter="builtin:toy", videomaker_weights=str(run_dir))
    pipe = load_pipeline(sources, device="cpu", dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference_latents(pipe, references: list[list[np.ndarray]]) -> torch.Tensor:
    from PIL import Image

    return torch.cat([pipe.prepare_reference_latents([Image.fromarray(r) for r in refs], SIZE, SIZE, "cpu",
                                                     torch.float32) for refs in references])  # (N, C, 2, h, w)


@torch.no_grad()
def generate(cfg: MultiToyConfig, pipe, pairs: list, references: list, routing: str | None) -> np.ndarray:
    out = pipe(prompt=[p.caption for p in pairs], reference_latents=reference_latents(pipe, references),
               num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=cfg.inference_steps,
               guidance_scale=cfg.guidance_scale, generator=torch.Generator().manual_seed(cfg.seed + 12345),
               output_type="np", routing=routing)
    return np.asarray(out.frames, dtype=np.float32)


@torch.no_grad()
def router_accuracy(cfg: MultiToyConfig, pipe, pairs: list, references: list,
                    timesteps: tuple[int, ...] = (200, 500, 800)) -> dict:
    """Token accuracy of the router against the held-out clips' masks (their true clips noised to t): over all
    counted tokens, and over subject tokens only (which reference; chance = 0.5)."""
    from vm_model.pipeline import encode_reference_images
    from vm_model.routing import RoutingControl, routing_accuracy
    from vm_model.scheduler import training_scheduler
    from vm_model.toy.multi import render_pair
    from vm_model.unet_call import unet_with_reference

    clips, masks = zip(*[render_pair(p, FRAMES, SIZE) for p in pairs])
    video = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
    latents = pipe.vae.encode(video.flatten(0, 1)).latent_dist.mean * pipe.vae.config.scaling_factor
    latents = latents.unflatten(0, video.shape[:2]).permute(0, 2, 1, 3, 4)
    refs = torch.from_numpy(np.stack([np.stack(r) for r in references])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    ref_latents = encode_reference_images(pipe.vae, refs.flatten(0, 1))
    ref_latents = ref_latents.unflatten(0, refs.shape[:2]).permute(0, 2, 1, 3, 4)
    ids = pipe.tokenizer([p.caption for p in pairs], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    text = pipe.text_encoder(ids)[0]
    mask_t = torch.from_numpy(np.stack(masks).astype(np.float32))  # (N, 2, F, H, W)
    scheduler = training_scheduler(pipe.scheduler.config.prediction_type)
    g = torch.Generator().manual_seed(cfg.seed + 777)
    out = {}
    for t in timesteps:
        noisy = scheduler.add_noise(latents, torch.randn(latents.shape, generator=g), torch.tensor([t]))
        control = RoutingControl(capture=[])
        unet_with_reference(pipe.unet, noisy, ref_latents, torch.full((len(pairs),), t), text, routing=control)
        out[str(t)] = {"all_tokens": routing_accuracy(control.capture, mask_t, tuple(latents.shape[-2:])),
                       "subject_tokens": routing_accuracy(control.capture, mask_t, tuple(latents.shape[-2:]),
                                                          subjects_only=True)}
    return out


def score(videos: np.ndarray, pairs: list, references: list, seed: int) -> list[dict]:
    from vm_model.toy.multi import score_pair

    rows = []
    for i, (video, pair, refs) in enumerate(zip(videos, pairs, references)):
        for row in score_pair(video, pair, refs, seed + 10 * i):
            rows.append({"pair": i, **row})
    return rows


def aggregate(rows: list[dict]) -> dict:
    own = np.array([r["own_error"] for r in rows])
    other = np.array([r["other_error"] for r in rows])
    swaps = np.array([r["swap"] for r in rows], dtype=float)
    sem = (lambda a: float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0)
    return {"own_error": float(own.mean()), "own_error_sem": sem(own), "other_error": float(other.mean()),
            "other_error_sem": sem(other), "swap_rate": float(swaps.mean()), "subjects": len(rows)}


def write_gif_grid(path: Path, references: list, videos: np.ndarray, scale: int = 3) -> None:
    """One row per pair: reference 1 | reference 2 | generated (animated), on white."""
    from vm_common.media import write_gif

    n, frames, gap = len(references), videos.shape[1], 2
    canvas = np.full((frames, n * (SIZE + gap) + gap, 3 * (SIZE + gap) + 2 * gap, 3), 255, np.uint8)
    for i in range(n):
        y = gap + i * (SIZE + gap)
        for k in range(2):
            x = gap + k * (SIZE + gap)
            canvas[:, y:y + SIZE, x:x + SIZE] = references[i][k]
        x = 3 * gap + 2 * (SIZE + gap)
        canvas[:, y:y + SIZE, x:x + SIZE] = np.clip(np.round(videos[i] * 255.0), 0, 255).astype(np.uint8)
    write_gif(path, canvas.repeat(scale, axis=1).repeat(scale, axis=2), fps=4.0)


def render_markdown(result: dict) -> str:
    from benchmarks.harness.results import table

    m = result["metrics"]
    rows = [[v, f"{m[v]['own_error']:.1f} ± {m[v]['own_error_sem']:.1f}",
             f"{m[v]['other_error']:.1f} ± {m[v]['other_error_sem']:.1f}", f"{m[v]['swap_rate']:.3f}",
             " / ".join(f"{a['all_tokens']:.2f}" for a in m[v].get("router_accuracy", {}).values()) or "-",
             " / ".join(f"{a['subject_tokens']:.2f}" for a in m[v].get("router_accuracy", {}).values()) or "-"]
            for v in m]
    cal = result["calibration"]
    rows.append(["ground truth clips", f"{cal['own_error']:.1f}", f"{cal['other_error']:.1f}",
                 f"{cal['swap_rate']:.3f}", "-", "-"])
    t = result["timings"]
    lines = ["# Toy multi-subject customization (ID routing on PISA)", "",
             f"Device: {result['device']}; {result['config']['eval_pairs']} held-out pairs "
             f"({2 * result['config']['eval_pairs']} subjects), {result['config']['steps']} training steps per "
             f"variant, seed {result['config']['seed']}{' (quick)' if result['config']['quick'] else ''}.", "",
             "Fidelity error: colour earth mover's distance (0..255 RGB) of a generated subject to its own "
             "(Hungarian-matched) reference and to the other one; swap: closer to the other one. Router accuracy: "
             "token argmax vs the held-out clips' masks (true clips noised to t), all counted tokens / subject "
             "tokens only (chance 0.5), at t = " + " / ".join(result["router_accuracy_timesteps"]) + ".", ""]
    lines += table(["variant", "own error", "other error", "swap rate", "router accuracy (all tokens)",
                    "router accuracy (subject tokens)"], rows)
    tg = result.get("targets", {})
    if tg:
        lines += ["", f"Routed / unrouted own error: {tg['own_error_ratio_routed_to_unrouted']:.3f} (target <= 0.6: "
                      f"{'met' if tg['ratio_at_most_0.6'] else 'not met'}); routed swap rate "
                      f"{tg['routed_swap_rate']:.3f} (target <= 0.10: "
                      f"{'met' if tg['swap_rate_at_most_0.1'] else 'not met'})."]
    by = result.get("targets_by_variant", {})
    if by:
        lines += ["", "Every variant against the targets (own-error ratio to unrouted <= 0.6, swap rate <= 0.10): "
                  + "; ".join(f"{v} {x['own_error_ratio_to_unrouted']:.3f} / {x['swap_rate']:.3f}"
                              for v, x in by.items()) + "."]
    lines += ["", f"Whole run: {t['total']['wall_s'] / 60:.1f} min wall, {t['total']['cpu_s'] / 60:.1f} min CPU; "
                  f"load average at start {t['loadavg_start'][0]:.2f}, at end {t['loadavg_end'][0]:.2f} "
                  f"(shared 2-core machine)."]
    return "\n".join(lines) + "\n"


def finished(run_dir: Path, steps: int) -> bool:
    """A run folder whose last checkpoint is the final step (``--reuse-work`` skips training it)."""
    from vm_model.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir) if run_dir.is_dir() else None
    return latest is not None and latest.name == f"step-{steps:08d}"


def run(cfg: MultiToyConfig, out: Path, variants: list[str], quick: bool = False, reuse_work: bool = False) -> dict:
    from benchmarks.harness.device import cpu_model
    from benchmarks.harness.provenance import provenance
    from benchmarks.harness.results import write_results
    from vm_model.toy.multi import heldout_pairs, make_multi_subject_dataset, pair_references, render_pair

    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "toy_multi_work"
    if work.exists() and not reuse_work:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    result: dict = {"config": {**config_to_dict(cfg), "quick": quick, "variants": variants},
                    "provenance": provenance(), "device": f"CPU ({cpu_model()}), {cfg.threads} thread(s) per process",
                    "cpu_count": os.cpu_count(), "timings": {"loadavg_start": list(os.getloadavg())}}
    with clock.stage("data"):
        manifest = work / "data" / "manifest.jsonl"
        if not (reuse_work and manifest.is_file()):  # the same seeded clips either way
            manifest = make_multi_subject_dataset(work / "data", cfg.train_clips, FRAMES, SIZE, seed=cfg.seed)
        pairs = heldout_pairs(cfg.eval_pairs, SIZE, FRAMES, cfg.seed)
        references = [pair_references(p, FRAMES, SIZE) for p in pairs]
        result["data"] = {"train_clips": cfg.train_clips, "eval_pairs": len(pairs),
                          "eval_pair_definitions": [p.to_dict() for p in pairs]}

    runs = work / "runs"
    trained = [v for v in TRAINED if v in variants or f"{v}_hard" in variants
               or (v == "unrouted" and "routed_after" in variants)]
    todo = [v for v in trained if not (reuse_work and finished(runs / v, cfg.steps))]
    result["reused_runs"] = [v for v in trained if v not in todo]
    with clock.stage("training"):
        if todo:
            run_vm_train({v: train_args(cfg, manifest, runs / v, cfg.steps, TRAINED[v]) for v in todo},
                         cfg.jobs, cfg.threads, work / "logs")
    if "routed_after" in variants:
        if cfg.router_after_steps <= 0:
            raise ValueError("routed_after needs --router-after-steps > 0")
        after = {"routed_after": train_args(cfg, manifest, runs / "routed_after", cfg.router_after_steps,
                                            ["--router", "--train-router-only"], weights=str(runs / "unrouted"))}
        with clock.stage("training_router_after"):
            if not (reuse_work and finished(runs / "routed_after", cfg.router_after_steps)):
                run_vm_train(after, 1, cfg.threads, work / "logs")
        trained.append("routed_after")
    result["losses"] = {v: loss_summary(runs / v) for v in trained}

    metrics, per_sample = {}, {}
    timesteps = (200, 500, 800)
    result["router_accuracy_timesteps"] = [str(t) for t in timesteps]
    with clock.stage("evaluation"):
        for variant in variants:
            hard = variant.endswith("_hard")
            run_name = variant[:-len("_hard")] if hard else variant
            pipe = load_run(runs / run_name)
            t0 = time.perf_counter()
            videos = generate(cfg, pipe, pairs, references, "hard" if hard else None)
            rows = score(videos, pairs, references, cfg.seed)
            per_sample[variant] = rows
            metrics[variant] = {**aggregate(rows), "generation_and_scoring_s": time.perf_counter() - t0,
                                "weights": pipe.weights_report.summary()}
            if run_name != "unrouted" and not hard:
                metrics[variant]["router_accuracy"] = router_accuracy(cfg, pipe, pairs, references, timesteps)
            write_gif_grid(out / f"toy_multi_subject_{variant}.gif", references[:cfg.gif_pairs],
                           videos[:cfg.gif_pairs])
            logger.info("%s: own %.1f, other %.1f, swap rate %.3f", variant, metrics[variant]["own_error"],
                        metrics[variant]["other_error"], metrics[variant]["swap_rate"])
            del pipe
        truth = np.stack([render_pair(p, FRAMES, SIZE)[0] for p in pairs]).astype(np.float32) / 255.0
        result["calibration"] = aggregate(score(truth, pairs, references, cfg.seed))

    result["metrics"] = metrics
    if "routed" in metrics and "unrouted" in metrics:
        ratio = metrics["routed"]["own_error"] / metrics["unrouted"]["own_error"]
        result["targets"] = {"own_error_ratio_routed_to_unrouted": ratio, "ratio_at_most_0.6": ratio <= 0.6,
                             "routed_swap_rate": metrics["routed"]["swap_rate"],
                             "swap_rate_at_most_0.1": metrics["routed"]["swap_rate"] <= 0.1}
    if "unrouted" in metrics:  # every routed variant against the same targets
        result["targets_by_variant"] = {
            v: {"own_error_ratio_to_unrouted": metrics[v]["own_error"] / metrics["unrouted"]["own_error"],
                "swap_rate": metrics[v]["swap_rate"]} for v in metrics if v != "unrouted"}
    result["per_sample"] = per_sample
    result["timings"].update({"stages": clock.stages, "total": clock.total(), "loadavg_end": list(os.getloadavg())})
    result["timings"]["within_30_minutes_wall"] = result["timings"]["total"]["wall_s"] <= 30 * 60
    write_results(out / "toy_multi_subject", result, render_markdown(result), sort_keys=True)
    logger.info("wrote %s (%.0f s wall)", out / "toy_multi_subject.json", result["timings"]["total"]["wall_s"])
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quick", action="store_true", help=f"smoke-sized run: {QUICK}")
    parser.add_argument("--reuse-work", action="store_true",
                        help="keep OUT/toy_multi_work and skip training the runs that already reached their last "
                             "step (e.g. to re-evaluate); the timings then cover only what this process did")
    parser.add_argument("--variants", nargs="+", default=None, choices=VARIANTS,
                        help="variants (default: all but routed_after, which needs --router-after-steps, and "
                             "routed_nbhd / routed_nbhd_hard)")
    add_dataclass_arguments(parser, MultiToyConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = {**config_to_dict(MultiToyConfig()), **(QUICK if args.quick else {})}
    cfg = build_config(MultiToyConfig, args, None, base=base)
    variants = args.variants or [v for v in VARIANTS if v not in DEFAULT_OFF
                                 or (v == "routed_after" and cfg.router_after_steps > 0)]
    run(cfg, args.out, variants, quick=args.quick, reuse_work=args.reuse_work)
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_logging()
    sys.exit(main())
