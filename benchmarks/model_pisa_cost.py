"""PISA cost benchmark (issue 2, section 5): UNet forward time / peak memory / FLOPs, and training-step peak memory.

Full SD1.5 UNet + v1-5 motion adapter (``MotionAdapter()`` defaults, ``motion_max_seq_length`` 32) with random
weights, built offline (``benchmarks/pisa/model.py``). Forward variants, measured side by side in one process,
interleaved per repeat: ``stock`` (stock AnimateDiff, F frames), ``no_pisa`` (F + 1 frames, PISA disabled),
``pisa_concat`` (F + 1 frames, the method as trained), ``pisa_lse`` (F + 1 frames, inference-only exact merge).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (as in the model notes) and,
when there is a warm-up call, again on the executed ops. Peak memory of each variant and of a training step
(forward + backward, PISA concat, trainable = spatial ``attn1`` + motion modules, with and without
``enable_full_gradient_checkpointing``) is measured in a fresh subprocess per measurement
(``benchmarks/harness/memory.py``); on CPU every measurement process is aborted if its resident set passes
``--max-rss-gb`` (the machine is shared). A probe also times the largest PISA attention call on 5-D tensors (the
layout ``pisa.py`` used before commit c8edbe1) against the same call on 4-D tensors (its layout since).

    python -m benchmarks.model_pisa_cost                      # CPU: 256x256, 16 (+1) frames; training 2 (+1) frames
    python -m benchmarks.model_pisa_cost --threads 1 --repeats 3
    python -m benchmarks.model_pisa_cost --device cuda        # GPU: 512x512, fp16, 16 (+1) frames everywhere
    python -m benchmarks.model_pisa_cost --quick --out /tmp/bench   # tiny configs (vm_model/tiny.py), seconds

Results: ``<out>/model_pisa_cost_<device-tag>.json`` and ``.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import cli
from benchmarks.harness.device import device_tag
from benchmarks.harness.jobs import run_job
from benchmarks.harness.provenance import code_version, device_info, provenance
from benchmarks.harness.results import write_results as write_files
from benchmarks.pisa.forward import summarize
from benchmarks.pisa.jobs import MEASURED_CODE, MODULE as JOBS_MODULE
from benchmarks.pisa.model import (FORWARD_VARIANTS, TEXT_TOKENS, VARIANT_DESCRIPTIONS, count_forward_flops,
                                   model_configs)
from benchmarks.pisa.report import render_markdown
from benchmarks.pisa.targets import checkpointing_target, explain, time_targets
from benchmarks.pisa.train_step import CHECKPOINTING_RUNS

logger = logging.getLogger("benchmarks.model_pisa_cost")

SCHEMA_VERSION = 1
REFERENCE_RESOLUTION = 512  # the shape the model notes quote FLOPs for


def build_parser() -> argparse.ArgumentParser:
    p = cli.scenario_parser(__doc__, summary_only=True, out_help="output folder for the JSON and markdown results")
    cli.add_device_arguments(p, dtype_help="forward dtype (default float32 on CPU, float16 on CUDA); training keeps "
                                           "trainable weights in float32 and autocasts like vm_model.train")
    p.add_argument("--resolution", type=int, default=None,
                   help="pixels (latents = /8); default 256 on CPU, 512 on CUDA, 64 with --quick")
    p.add_argument("--frames", type=int, default=None, help="generated frames (default 16, 4 with --quick)")
    p.add_argument("--train-frames", type=int, default=None,
                   help="generated frames of the training step (default: --frames; 2 on CPU at full size, where "
                        "more does not fit in ~12 GB)")
    p.add_argument("--train-resolution", type=int, default=None, help="default: --resolution")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per variant (default 3; 2 on CPU at full size; 1 with --quick)")
    p.add_argument("--tag", default=None, help="results file tag (default: derived from the device)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed warm-up calls per variant (default 1; 0 on CPU at full size, where one call takes "
                        "minutes); the first also counts the executed FLOPs")
    p.add_argument("--max-rss-gb", type=float, default=12.5,
                   help="CPU: abort a measurement process whose resident set passes this (0: no guard)")
    p.add_argument("--skip-probe", action="store_true", help="skip the SDPA layout probe")
    p.add_argument("--quick", action="store_true", help="tiny configs (vm_model/tiny.py): a smoke run in seconds")
    p.add_argument("--render", type=Path, default=None, metavar="JSON",
                   help="measure nothing: rewrite the notes and the markdown of an existing results JSON")
    return p


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the shape, repeat and warm-up defaults that depend on the device and on ``--quick``."""
    cuda = args.device.startswith("cuda")
    if args.resolution is None:
        args.resolution = 64 if args.quick else (512 if cuda else 256)
    if args.frames is None:
        args.frames = 4 if args.quick else 16
    if args.repeats is None:
        args.repeats = 1 if args.quick else (3 if cuda else 2)
    if args.warmup is None:
        args.warmup = 0 if (not cuda and not args.quick) else 1
    if args.train_frames is None and not cuda and not args.quick:
        args.train_frames = 2
    return args


def _measure(args, base: dict, isolate: bool, workdir: Path, load: dict) -> dict:
    """Every job of a run: build, interleaved timing, forward memory per variant, training memory with and without
    checkpointing, the probe."""
    frames, resolution = args.frames, args.resolution
    shape = dict(frames=frames, resolution=resolution)
    train_shape = dict(frames=args.train_frames or frames, resolution=args.train_resolution or resolution)
    out = dict(build=run_job(JOBS_MODULE, "build", base, isolate, workdir))
    out["timing"] = run_job(JOBS_MODULE, "timing", dict(base, variants=list(FORWARD_VARIANTS), repeats=args.repeats,
                                                       warmup=args.warmup, **shape), isolate, workdir)
    load["after_timing"] = os.getloadavg()
    out["memory"] = {v: run_job(JOBS_MODULE, "forward_memory", dict(base, variant=v, **shape), isolate, workdir)
                     for v in FORWARD_VARIANTS}
    out["train"] = {name: run_job(JOBS_MODULE, "train_memory", dict(base, checkpointing=ckpt, **train_shape),
                                  isolate, workdir)
                    for name, ckpt in CHECKPOINTING_RUNS}
    out["probe"] = None if args.skip_probe else run_job(
        JOBS_MODULE, "sdpa_probe", dict(base, repeats=max(1, min(args.repeats, 2)), **shape), isolate, workdir)
    return out


def run_benchmark(args: argparse.Namespace, isolate: bool = True) -> dict:
    """Measure everything (each job in a fresh process when ``isolate``) and return the result dict."""
    device = args.device
    preset = "tiny" if args.quick else "full"
    dtype = cli.default_dtype(device, args.dtype)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    frames, resolution = args.frames, args.resolution
    train_frames = args.train_frames or frames
    train_resolution = args.train_resolution or resolution
    started, prov = time.time(), provenance()
    load = {"start": os.getloadavg()}
    logger.info("preset %s on %s (%s, %d threads): forward %dx%d, %d frames (+1), %d repeats; training %dx%d, "
                "%d (+1) frames", preset, device, dtype, threads, resolution, resolution, frames, args.repeats,
                train_resolution, train_resolution, train_frames)

    # FLOPs on the meta device: the measured shape and the model notes' 512x512 shape
    flops = {v: count_forward_flops(preset, v, frames, resolution) for v in FORWARD_VARIANTS}
    flops_ref = {}
    if preset == "full" and resolution != REFERENCE_RESOLUTION:
        flops_ref = {v: count_forward_flops(preset, v, 16, REFERENCE_RESOLUTION) for v in FORWARD_VARIANTS}
    logger.info("meta FLOPs (TFLOP): %s", {v: round(f / 1e12, 3) for v, f in flops.items()})

    with tempfile.TemporaryDirectory(prefix="vm-pisa-bench-") as tmp:
        base = dict(preset=preset, weights=str(Path(tmp) / "unet.pt"), device=device, dtype=dtype, threads=threads,
                    max_rss_gb=args.max_rss_gb)
        m = _measure(args, base, isolate, Path(tmp), load)
    load["end"] = os.getloadavg()
    timing, memory, train, build = m["timing"], m["memory"], m["train"], m["build"]

    forward = summarize(timing["raw_s"], flops, cpu=timing["cpu_s"])
    for v in FORWARD_VARIANTS:
        forward[v].update(frames=frames, references=0 if v == "stock" else 1, description=VARIANT_DESCRIPTIONS[v],
                          executed_flops=(timing["executed_flops"] or {}).get(v),
                          attention_calls=memory[v]["attention_calls"],
                          peak_memory_bytes=memory[v]["peak_bytes"], rss_peak_bytes=memory[v]["rss_peak_bytes"],
                          isolated_time_s=memory[v]["time_s"])
        if flops_ref:
            forward[v]["flops_512"] = flops_ref[v]
    targets = time_targets(forward)
    targets["checkpointing_memory"], reduction, rss_reduction = checkpointing_target(train)

    unet_cfg, adapter_cfg, _ = model_configs(preset)
    return dict(
        schema_version=SCHEMA_VERSION,
        benchmark="model_pisa_cost",
        created_unix=started,
        wall_s=time.time() - started,
        preset=preset,
        model=dict(unet_config=dict(unet_cfg), motion_adapter_config=adapter_cfg or
                   "MotionAdapter() defaults (v1-5, motion_max_seq_length 32)", weights="random (seed 0)",
                   parameters=build["parameters"], motion_module_parameters=build["motion_module_parameters"],
                   build_s=build["build_s"]),
        device=device_info(device, prov),
        code=code_version(MEASURED_CODE),
        provenance=prov,
        device_tag=args.tag or device_tag(device, threads) + ("-quick" if args.quick else ""),
        load_average=load,
        settings=dict(dtype=dtype, threads=threads, batch=1, guidance_batch=False, text_tokens=TEXT_TOKENS,
                      isolated_memory_processes=isolate),
        forward=dict(shape=dict(resolution=resolution, latent=resolution // 8, frames=frames,
                                frames_with_reference=frames + 1, batch=1),
                     repeats=args.repeats, warmup=args.warmup, orders=timing["orders"], raw_s=timing["raw_s"],
                     cpu_s=timing["cpu_s"],
                     flops_meta=flops, flops_meta_512=flops_ref or None,
                     memory_method=memory[FORWARD_VARIANTS[0]]["method"],
                     rss_method=memory[FORWARD_VARIANTS[0]]["rss_method"],
                     variants=forward),
        training=dict(shape=dict(resolution=train_resolution, latent=train_resolution // 8, frames=train_frames,
                                 frames_with_reference=train_frames + 1, batch=1, pisa="concat"),
                      memory_method=train["checkpointing"]["method"], rss_method=train["checkpointing"]["rss_method"],
                      runs=train, reduction=reduction, rss_reduction=rss_reduction),
        sdpa_probe=m["probe"],
        targets=targets,
    )


def write_results(res: dict, out: Path) -> tuple[Path, Path]:
    """``<out>/model_pisa_cost_<device tag>.json`` and ``.md``."""
    return write_files(Path(out) / f"model_pisa_cost_{res['device_tag']}", res, render_markdown(res))


def main(argv: list[str] | None = None) -> int:
    cli.setup_logging()
    args = build_parser().parse_args(argv)
    if args.render:
        res = json.loads(args.render.read_text())
    else:
        res = run_benchmark(resolve_defaults(args))
    res["notes"] = explain(res)
    js, md = write_results(res, args.render.parent if args.render else args.out)
    logger.info("wrote %s and %s", js, md)
    sys.stdout.write(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
