"""Training step with the latent cache vs on-the-fly encoding, and peak memory of the paper's trainable set vs LoRA.

Full-size SD1.5 UNet + v1-5 motion adapter (``benchmarks.pisa.model.build_unet``), SD1.5's VAE (AutoencoderKL,
block_out_channels 128/256/512/512) and CLIP ViT-L/14's text encoder (12 layers, width 768) with the full CLIP BPE
tokenizer, all with RANDOM weights built offline from their configs; PISA concat, GIRL on, gradient checkpointing on
(the `vm train` defaults), batch 1, condition dropout off (every step encodes the caption), augmentation off.

* ``step_time`` (one fresh process): whole optimizer steps of ``vm_model.train.training_step`` + backward + clipping
  + AdamW, through the two conditioning paths of ``vm_model.training.conditioning``: ``on_the_fly`` (the VAE
  encodes the 16 frames and the reference, the text encoder the caption, every step) and ``cached`` (the batch holds
  the frames' latent mean/std, the reference latent and the text embedding, as a ``vm cache-latents`` batch does).
  The two variants alternate (AB BA ...) after one untimed warm-up step of each at a small shape (2 frames, 64x64),
  so that the load of a shared machine falls on both alike; the VAE's and text encoder's seconds inside each on-the-fly step are timed separately.
* ``train_memory`` (one fresh process per variant): the peak of one first optimizer step (forward, backward,
  AdamW's state created) above the loaded model, for ``trainable`` (spatial attn1 + motion modules, as in the paper)
  and ``lora`` (peft LoRA of ``--lora-rank`` on the same layers), same shapes, cached conditioning.

    python -m benchmarks.model_train_step --frames 16 --resolution 256 --repeats 2 --threads 1
    python -m benchmarks.model_train_step --only memory --lora-rank 64

Results: ``<out>/model_train_step_<device-tag>-f<frames>-r<resolution>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import cli
from benchmarks.harness.device import device_tag, sync
from benchmarks.harness.jobs import run_job
from benchmarks.harness.provenance import code_version, device_info, provenance
from benchmarks.harness.results import table, write_results
from benchmarks.pisa.model import CLIP_L_TEXT_CONFIG, SD15_VAE_CONFIG

logger = logging.getLogger("benchmarks.model_train_step")
MODULE = "benchmarks.model_train_step"  # the jobs run in fresh processes by this name
MEASURED_CODE = ("vm_model/train.py", "vm_model/training/conditioning.py", "vm_model/training/lora.py",
                 "vm_model/pisa.py", "vm_model/unet_call.py", "vm_model/grad_checkpointing.py")
VARIANTS = ("on_the_fly", "cached")
WARMUP_SHAPE = (2, 64)  # frames, resolution of the untimed warm-up steps
CAPTION = "A person in a red jacket walks along a beach at sunset, waving at the camera."

# ------------------------------------------------------------------------------------------------ the models
def build_encoders(seed: int = 0):
    """Random-weight SD1.5 VAE, CLIP-L text encoder and the full CLIP tokenizer (77 tokens), eval, frozen."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vm_model.tiny import write_clip_tokenizer

    torch.manual_seed(seed)
    vae = AutoencoderKL(**SD15_VAE_CONFIG).requires_grad_(False).eval()
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT_CONFIG)).requires_grad_(False).eval()
    with tempfile.TemporaryDirectory(prefix="vm-clip-tok-") as tmp:
        write_clip_tokenizer(Path(tmp), 77)
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    return vae, text_encoder, tokenizer


def training_unet(spec: dict, lora_rank: int = 0):
    """The saved full-size UNet, PISA concat, the paper's trainable set (or LoRA on it), checkpointing on, train."""
    from benchmarks.pisa.model import load_unet
    from vm_model.grad_checkpointing import enable_full_gradient_checkpointing
    from vm_model.pisa import PISAConfig, install_pisa
    from vm_model.train import set_trainable

    unet = load_unet("full", spec["weights"], spec["device"], torch.float32)
    install_pisa(unet, PISAConfig())
    if lora_rank:
        from vm_model.training.lora import add_lora

        add_lora(unet, lora_rank)
    else:
        set_trainable(unet, train_motion_modules=True)
    enable_full_gradient_checkpointing(unet)
    unet.train()
    return unet


def batches(vae, text_encoder, tokenizer, frames: int, resolution: int, seed: int = 3) -> dict:
    """The same clip as an on-the-fly batch (pixels + caption) and as a cached batch (what `vm cache-latents`
    stores for it: frame latent mean/std, reference latent mean, caption embedding), plus the empty caption's
    embedding."""
    from vm_model.training.conditioning import encode_captions

    g = torch.Generator().manual_seed(seed)
    video = torch.rand(1, frames, 3, resolution, resolution, generator=g) * 2 - 1
    reference = torch.rand(1, 3, resolution, resolution, generator=g) * 2 - 1
    with torch.no_grad():
        dist = vae.encode(video.flatten(0, 1)).latent_dist
        ref_mean = vae.encode(reference).latent_dist.mean
        text = encode_captions(tokenizer, text_encoder, [CAPTION], "cpu")
        empty = encode_captions(tokenizer, text_encoder, [""], "cpu")[0]
    fly = {"video": video, "reference": reference, "caption": [CAPTION]}
    cached = {"frame_mean": dist.mean.unsqueeze(0), "frame_std": dist.std.unsqueeze(0), "text": text,
              "reference_latent": ref_mean, "caption": [CAPTION]}
    return {"on_the_fly": fly, "cached": cached, "empty_text": empty}


class TimedConditioning:
    """A conditioning object whose calls are timed: ``seconds`` per part (text encoder, video VAE, reference)."""

    PARTS = {"text": "text_encoder_s", "video_latents": "vae_video_s", "reference_latents": "vae_reference_s"}

    def __init__(self, inner, device: str):
        self.inner, self.device = inner, device
        self.seconds = dict.fromkeys(self.PARTS.values(), 0.0)

    def __getattr__(self, name):
        if name not in self.PARTS:
            return getattr(self.inner, name)
        fn = getattr(self.inner, name)

        def timed(*args):
            t = time.perf_counter()
            out = fn(*args)
            sync(self.device)
            self.seconds[self.PARTS[name]] += time.perf_counter() - t
            return out
        return timed


class _NoAccelerator:
    """What ``training_step`` asks of an accelerator in a float32 single-process step: autocast, a no-op."""

    @staticmethod
    def autocast():
        return contextlib.nullcontext()


def optimizer_step(cfg, batch, unet, conditioning, noise_scheduler, generator, device, optimizer, params,
                   times: dict | None = None) -> float:
    """One `vm train` optimizer step (accumulation 1): loss, backward, clipping, AdamW (skipped when ``optimizer``
    is None), zero_grad. ``times``: filled with ``forward_backward_s`` and ``update_s``."""
    from vm_model.train import training_step

    t = time.perf_counter()
    terms = training_step(cfg, batch, unet, conditioning, noise_scheduler, generator, device, _NoAccelerator())
    terms.total.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    sync(device)
    t_update = time.perf_counter()
    if optimizer is not None:
        optimizer.step()
    for p in params:
        p.grad = None
    sync(device)
    if times is not None:
        times.update(forward_backward_s=t_update - t, update_s=time.perf_counter() - t_update)
    return float(terms.total.detach())


def _train_cfg(frames: int, resolution: int):
    from vm_model.train import TrainConfig

    return TrainConfig(num_frames=frames, resolution=resolution, text_dropout=0.0, image_dropout=0.0,
                       joint_dropout=0.0, augment=False, data="synthetic")


# ------------------------------------------------------------------------------------------------------ jobs
def job_build(spec: dict) -> dict:
    from benchmarks.pisa.jobs import job_build as build

    return build(spec)


def job_step_time(spec: dict) -> dict:
    from vm_model.scheduler import training_scheduler
    from vm_model.training.conditioning import CachedConditioning, OnTheFlyConditioning

    device, frames, resolution = spec["device"], spec["frames"], spec["resolution"]
    t0 = time.perf_counter()
    vae, text_encoder, tokenizer = build_encoders()
    data = batches(vae, text_encoder, tokenizer, frames, resolution)
    vae.to(device), text_encoder.to(device)
    unet = training_unet(spec)
    setup_s = time.perf_counter() - t0
    params = [p for p in unet.parameters() if p.requires_grad]
    # AdamW's state (2 x the trainable weights, ~3.7 GiB here) does not fit beside the step on a shared 23 GiB
    # machine; the update is the same for both variants and is timed in the train_memory job instead
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2) if spec.get("optimizer_update") else None
    cfg = _train_cfg(frames, resolution)
    noise_scheduler = training_scheduler("epsilon")
    progress = Path(spec["progress"]) if spec.get("progress") else None
    conditionings = {"on_the_fly": OnTheFlyConditioning(vae, text_encoder, tokenizer, device, torch.float32),
                     "cached": CachedConditioning(data["empty_text"], vae.config.scaling_factor, device)}
    generator = torch.Generator().manual_seed(0)
    # warm-up: one step of each path at a small shape (AdamW's state, first-touch allocations, lazy set-up);
    # then the timed steps at the measured shape, alternating which path goes first
    warm = batches(vae, text_encoder, tokenizer, WARMUP_SHAPE[0], WARMUP_SHAPE[1])
    warm_cfg = _train_cfg(*WARMUP_SHAPE)
    order = [(v, True) for v in VARIANTS] + [
        (v, False) for i in range(spec["repeats"]) for v in (VARIANTS if i % 2 == 0 else VARIANTS[::-1])]
    rows = []
    for position, (variant, warmup) in enumerate(order):
        conditioning = TimedConditioning(conditionings[variant], device)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        times: dict = {}
        loss = optimizer_step(warm_cfg if warmup else cfg, (warm if warmup else data)[variant], unet, conditioning,
                              noise_scheduler, generator, device, optimizer, params, times)
        seconds = time.perf_counter() - t
        rows.append(dict(variant=variant, warmup=warmup, step_s=seconds, loss=loss, **times,
                         frames=WARMUP_SHAPE[0] if warmup else frames,
                         resolution=WARMUP_SHAPE[1] if warmup else resolution,
                         loadavg_1min_start=load, loadavg_1min_end=os.getloadavg()[0], **conditioning.seconds))
        if progress is not None:  # a killed run keeps its finished steps
            with progress.open("a") as fh:
                fh.write(json.dumps(rows[-1]) + "\n")
        logger.info("%s step %d/%d: %.1f s (%s)", variant, position + 1, len(order), seconds,
                    ", ".join(f"{k} {v:.2f}" for k, v in conditioning.seconds.items()))
    return dict(rows=rows, setup_s=setup_s, optimizer_update=optimizer is not None,
                trainable_params=sum(p.numel() for p in params),
                vae_params=sum(p.numel() for p in vae.parameters()),
                text_encoder_params=sum(p.numel() for p in text_encoder.parameters()))


def job_train_memory(spec: dict) -> dict:
    from benchmarks.harness.memory import PeakMemory, peak_fields
    from vm_model.scheduler import training_scheduler
    from vm_model.training.conditioning import CachedConditioning

    device, frames, resolution = spec["device"], spec["frames"], spec["resolution"]
    vae, text_encoder, tokenizer = build_encoders()
    data = batches(vae, text_encoder, tokenizer, frames, resolution)
    scaling = vae.config.scaling_factor
    del vae, text_encoder, tokenizer
    gc.collect()
    unet = training_unet(spec, spec.get("lora_rank", 0))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)
    cfg = _train_cfg(frames, resolution)
    conditioning = CachedConditioning(data["empty_text"], scaling, device)
    generator = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    times: dict = {}
    with PeakMemory(device) as mem:
        loss = optimizer_step(cfg, data["cached"], unet, conditioning, training_scheduler("epsilon"), generator,
                              device, optimizer, params, times)
    seconds = time.perf_counter() - t
    state_bytes = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                      if isinstance(v, torch.Tensor))
    return dict(lora_rank=spec.get("lora_rank", 0), **peak_fields(mem), step_s=seconds, loss=loss, **times,
                trainable_params=sum(p.numel() for p in params), trainable_tensors=len(params),
                trainable_bytes=sum(p.numel() * p.element_size() for p in params), optimizer_state_bytes=state_bytes,
                unet_params=sum(p.numel() for p in unet.parameters()))


JOBS = {"build": job_build, "step_time": job_step_time, "train_memory": job_train_memory}


# ---------------------------------------------------------------------------------------------------- report
def summarize_steps(step: dict, memory: dict | None = None) -> dict:
    """Median step seconds per variant (warm-up excluded), the ratio, and the encoders' share of on-the-fly steps;
    when the steps left out AdamW's update, also the ratio with the update time of ``memory``'s trainable run."""
    import statistics

    timed = [r for r in step["rows"] if not r["warmup"]]
    med = {v: statistics.median(r["step_s"] for r in timed if r["variant"] == v) for v in VARIANTS}
    fly = [r for r in timed if r["variant"] == "on_the_fly"]
    parts = ("text_encoder_s", "vae_video_s", "vae_reference_s")
    share = {p: statistics.median(r[p] / r["step_s"] for r in fly) for p in parts}
    encoders = [sum(r[p] for p in parts) / r["step_s"] for r in fly]
    out = dict(median_step_s=med, speedup_cached=med["on_the_fly"] / med["cached"],
               encoders_share=statistics.median(encoders),
               # what removing the encoders from the same on-the-fly steps leaves: robust to load changes between
               # the variants' steps (derived from the timed parts, not a separate measurement)
               speedup_from_encoder_share=statistics.median(1.0 / (1.0 - e) for e in encoders),
                encoder_share_of_on_the_fly_step=share,
                median_encoder_s={p: statistics.median(r[p] for r in fly) for p in parts},
                saved_s=med["on_the_fly"] - med["cached"])
    update = ((memory or {}).get("trainable") or {}).get("update_s")
    if not step.get("optimizer_update") and update is not None:
        out["with_update"] = dict(update_s=update, on_the_fly_s=med["on_the_fly"] + update,
                                  cached_s=med["cached"] + update,
                                  speedup_cached=(med["on_the_fly"] + update) / (med["cached"] + update))
    return out


def render_markdown(result: dict) -> str:
    gib = 2.0 ** 30
    dev, shape = result["device"], result["shape"]
    md = [f"# Training step: latent cache vs on-the-fly encoding, trainable set vs LoRA: {result['tag']}", "",
          f"Device: {dev.get('cpu_model') or dev.get('gpu')} ({dev.get('device')}), torch {dev.get('torch')}, "
          f"{result['threads']} thread(s). Full-size SD1.5 UNet + v1-5 motion adapter, SD1.5 VAE, CLIP-L text "
          f"encoder, RANDOM weights; {shape['frames']} (+1 reference) frames at {shape['resolution']}x"
          f"{shape['resolution']}, batch 1, float32, PISA concat, GIRL, gradient checkpointing, AdamW. "
          + (f"1-minute load average over the steps: {result['load_average']['start'][0]:.1f} to "
             f"{result['load_average']['end'][0]:.1f}" if "note" in result["load_average"] else
             f"Load average (1/5/15 min) start/end: {tuple(round(x, 2) for x in result['load_average']['start'])} / "
             f"{tuple(round(x, 2) for x in result['load_average']['end'])}")
          + "; the machine was shared with other work.", ""]
    if result.get("assembled_from"):
        timed = sum(1 for r in result["step_time"]["rows"] if not r["warmup"])
        md += [f"Assembled from `{result['assembled_from']}`: the run was stopped after its step-time job, "
               f"{timed} timed step(s) in all. With so few steps on a shared machine the ratio of the two variants' "
               f"steps carries the load's changes between them; the encoders' share, timed inside the same "
               f"on-the-fly steps, does not.", ""]
    step = result.get("step_time")
    if step:
        s = step["summary"]
        update = "AdamW update included" if step.get("optimizer_update") else \
            "forward + backward + clipping; AdamW's update not included (it is the same for both variants" + \
            ("; its time is in the memory table below)" if result.get("train_memory") else ")")
        md += ["## Step time (one process, variants interleaved; the warm-up steps, at 2 frames 64x64, are excluded)",
               "", f"Timed: {update}.", ""]
        md += table(["step", "variant", "step s", "text encoder s", "VAE frames s", "VAE reference s",
                     "load 1 min start / end"],
                    [[i + 1, r["variant"] + (" (warm-up)" if r["warmup"] else ""), f"{r['step_s']:.1f}",
                      f"{r['text_encoder_s']:.2f}", f"{r['vae_video_s']:.2f}", f"{r['vae_reference_s']:.2f}",
                      f"{r['loadavg_1min_start']:.1f} / {r['loadavg_1min_end']:.1f}"]
                     for i, r in enumerate(step["rows"])])
        share = s["encoder_share_of_on_the_fly_step"]
        md += ["", f"Median step: on the fly {s['median_step_s']['on_the_fly']:.1f} s, cached "
               f"{s['median_step_s']['cached']:.1f} s: the cached step is {s['speedup_cached']:.3f}x as fast "
               f"({s['saved_s']:.1f} s saved). Share of the on-the-fly step: VAE ({shape['frames']} frames) "
               f"{share['vae_video_s']:.1%}, VAE (reference) {share['vae_reference_s']:.1%}, text encoder "
               f"{share['text_encoder_s']:.1%}; together {s['encoders_share']:.1%}, so the same steps without the "
               f"encoders would be {s['speedup_from_encoder_share']:.3f}x as fast (derived from the timed parts; "
               f"unlike the ratio of the two variants' steps it does not depend on the load changing between "
               f"them). (Issue 12's 1.3x target is for 512x512 on a GPU, not measured here.)"]
        if "with_update" in s:
            w = s["with_update"]
            md += [f"With the AdamW update of the paper's trainable set ({w['update_s']:.1f} s, measured in the "
                   f"memory run below) added to both: {w['on_the_fly_s']:.1f} s vs {w['cached_s']:.1f} s, "
                   f"{w['speedup_cached']:.3f}x."]
        md += [""]
    mem = result.get("train_memory")
    if mem:
        md += ["## Peak memory of one first optimizer step, above the loaded model (fresh process each)", ""]
        def name(r):
            return ("LoRA rank %d" % r["lora_rank"]) if r["lora_rank"] else "paper (attn1 + motion modules)"

        md += table(["trainable", "parameters (M)", "peak tensor GiB", "peak RSS GiB", "optimizer state GiB",
                     "step s", "of which AdamW update s"],
                    [[name(r), f"{r['trainable_params'] / 1e6:.1f}", f"{r['peak_bytes'] / gib:.2f}",
                      f"{(r.get('rss_peak_bytes') or float('nan')) / gib:.2f}",
                      f"{r['optimizer_state_bytes'] / gib:.2f}", f"{r['step_s']:.1f}",
                      f"{r['update_s']:.1f}" if "update_s" in r else "n/a"]
                     if "peak_bytes" in r else
                     [name(r), "-", f"> {r['exceeded_rss_guard_gib']:.0f} process RSS (stopped by the memory guard)",
                      "-", "-", "-", "-"] for r in mem.values()])
        method = next((r["method"] for r in mem.values() if "method" in r), "")
        md += ["", f"Peak tensor bytes: {method}; peak RSS: the process's resident-set high-water mark above its "
               "level at the start of the step. Both include the gradients and AdamW's state created by the step."]
        if all("peak_bytes" in mem.get(k, {}) for k in ("trainable", "lora")):
            a, b = mem["trainable"]["peak_bytes"], mem["lora"]["peak_bytes"]
            md += [f"LoRA rank {mem['lora']['lora_rank']} peak / paper's trainable set peak: {b / a:.3f} "
                   f"({(a - b) / gib:.2f} GiB less)."]
    return "\n".join(md) + "\n"


def summarized(result: dict) -> tuple[dict, str]:
    """The result with its step-time summary (re)computed, and its markdown."""
    if result.get("step_time"):
        result["step_time"]["summary"] = summarize_steps(result["step_time"], result.get("train_memory"))
    return result, render_markdown(result)


def assemble(args: argparse.Namespace) -> int:
    """The result of an interrupted run from its progress file (the step rows, each with its own load record)."""
    rows = [json.loads(line) for line in args.assemble.read_text().splitlines() if line.strip()]
    timed = [r for r in rows if not r["warmup"]]
    if not timed or {r["variant"] for r in timed} != set(VARIANTS):
        raise SystemExit(f"{args.assemble}: no timed step of each variant yet")
    threads = args.threads or 1
    prov = provenance()
    tag = f"{device_tag(args.device, threads)}-f{timed[0]['frames']}-r{timed[0]['resolution']}"
    load = [r["loadavg_1min_start"] for r in rows] + [r["loadavg_1min_end"] for r in rows]
    result = dict(benchmark="model_train_step", device=device_info(args.device, prov),
                  code=code_version(MEASURED_CODE), provenance=prov, assembled_from=str(args.assemble.name),
                  shape=dict(frames=timed[0]["frames"], references=1, resolution=timed[0]["resolution"], batch=1),
                  dtype="float32", threads=threads, tag=tag,
                  load_average={"start": [min(load)] * 3, "end": [max(load)] * 3, "note": "1-minute load, min and "
                                "max over the steps (the progress file records the 1-minute load only)"},
                  step_time=dict(rows=rows, optimizer_update=bool(args.adamw_in_step)))
    result, md = summarized(result)
    write_results(args.out / f"model_train_step_{tag}", result, md)
    sys.stdout.write(md)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = cli.scenario_parser(__doc__)
    cli.add_device_arguments(p)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="timed steps of each variant after the warm-up (AB, BA, ...)")
    p.add_argument("--lora-rank", type=int, default=64)
    p.add_argument("--unet-weights", type=Path, default=None,
                   help="reuse the full-size random UNet an earlier run's build job saved (torch state dict)")
    p.add_argument("--adamw-in-step", action="store_true",
                   help="include AdamW's update in the timed steps (needs ~4 GiB more memory at the full shape)")
    p.add_argument("--only", choices=("step", "memory"), default=None, help="only one of the two measurements")
    p.add_argument("--max-rss-gb", type=float, default=16.0)
    p.add_argument("--render", type=Path, default=None, help="only re-render the markdown of a result JSON")
    p.add_argument("--assemble", type=Path, default=None, metavar="PROGRESS",
                   help="write the result of a run stopped after its step-time job (e.g. killed during the memory "
                        "runs) from its <stem>.progress.jsonl: the steps it finished, marked as such")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        write_results(args.render.with_suffix(""), *summarized(json.loads(args.render.read_text())))
        return 0
    cli.setup_logging()
    if args.assemble is not None:
        return assemble(args)
    if args.device.startswith("cuda"):
        raise SystemExit("this benchmark measures float32 on CPU; a GPU run (fp16, 512x512) is not implemented yet")
    threads = args.threads or torch.get_num_threads()
    started, prov, load = time.time(), provenance(), {"start": os.getloadavg()}
    tag = f"{device_tag(args.device, threads)}-f{args.frames}-r{args.resolution}"
    result = dict(benchmark="model_train_step", device=device_info(args.device, prov),
                  code=code_version(MEASURED_CODE), provenance=prov,
                  shape=dict(frames=args.frames, references=1, resolution=args.resolution, batch=1), dtype="float32",
                  threads=threads, tag=tag)
    with tempfile.TemporaryDirectory(prefix="vm-train-step-") as tmp:
        base = dict(preset="full", weights=str(Path(tmp) / "unet.pt"), device=args.device, threads=threads,
                    max_rss_gb=args.max_rss_gb, frames=args.frames, resolution=args.resolution)
        if args.unet_weights is not None:  # a UNet the build job saved before (same preset and seed)
            base["weights"] = str(args.unet_weights)
            result["parameters"] = sum(t.numel() for t in torch.load(args.unet_weights, map_location="meta",
                                                                       weights_only=True).values())
        else:
            result["parameters"] = run_job(MODULE, "build", base, True, Path(tmp))["parameters"]
        if args.only in (None, "step"):
            step = run_job(MODULE, "step_time", dict(base, repeats=args.repeats, optimizer_update=args.adamw_in_step,
                                                     progress=str(args.out / f"model_train_step_{tag}.progress.jsonl")),
                           True, Path(tmp))
            result["step_time"] = step
        if args.only in (None, "memory"):
            result["train_memory"] = {}
            for name, rank in (("trainable", 0), ("lora", args.lora_rank)):
                try:
                    result["train_memory"][name] = run_job(MODULE, "train_memory", dict(base, lora_rank=rank), True,
                                                           Path(tmp))
                except MemoryError as exc:  # recorded, not hidden, and the other run's result is kept
                    logger.warning("%s", exc)
                    result["train_memory"][name] = dict(lora_rank=rank, exceeded_rss_guard_gib=args.max_rss_gb)
    load["end"] = os.getloadavg()
    result.update(load_average=load, wall_s=time.time() - started)
    previous = args.out / f"model_train_step_{tag}.json"
    if args.only and previous.is_file():  # keep the other measurement of an earlier run, with its own load record
        earlier = json.loads(previous.read_text())
        other = "train_memory" if args.only == "step" else "step_time"
        if other in earlier:
            result[other] = earlier[other]
            if other == "step_time" and earlier.get("assembled_from"):
                result["assembled_from"] = earlier["assembled_from"]
            result.setdefault("earlier_runs", []).append(
                {k: earlier.get(k) for k in ("load_average", "wall_s", "code", "provenance")} | {"measured": other})
    result, md = summarized(result)
    write_results(args.out / f"model_train_step_{tag}", result, md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
