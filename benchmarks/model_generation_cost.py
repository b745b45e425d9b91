"""Generation cost benchmark (issue 13): a whole generation of N videos of one subject, through the real path.

Every component has random weights built offline (``benchmarks/generation/components.py``: the full SD1.5 UNet +
v1-5 motion adapter, SD1.5 VAE, CLIP ViT-L/14 text encoder, CLIP tokenizer; or the tiny ones); videos are made by
``vm_model.protocol.render_videos`` in chunks of the setting's batch size, as ``vm generate`` and ``vm bench run``
make them, with classifier-free guidance (the negative prompt + an all-zero reference branch). Recorded per run:
wall and process CPU seconds, the seconds inside the UNet, the VAE decoder and the text encoder, the number of UNet
calls, peak memory (GPU allocator, or the process's resident set on CPU), and how far each setting's videos are from
the first setting's (every setting is exact: they differ by float rounding only).

Suites (``--suite``):
  cpu  batch4 vs batch1 with our default settings, interleaved in one process (same pipeline)
  gpu  official (fp32, repeated-reference PISA, 1 video per call), default (fp16, concat), fp16 concat batch 4,
       fp16 lse batch 4, model offload, sequential offload; each setting in its own process

    python -m benchmarks.model_generation_cost --threads 1 --steps 2          # CPU: 256x256, 16 (+1) frames
    python -m benchmarks.model_generation_cost --device cuda --suite gpu       # GPU: 512x512, 30 steps
    python -m benchmarks.model_generation_cost --quick --out /tmp/gen          # tiny components, seconds

Figures per video at ``--project-steps`` steps are projections from the measured run (fixed part + UNet seconds per
step x steps) when ``--steps`` is smaller; the markdown says so. Results:
``<out>/model_generation_cost_<device-tag>.json`` and ``.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.generation.jobs import MEASURED_CODE, MODULE as JOBS_MODULE
from benchmarks.generation.measure import SUITES
from benchmarks.generation.report import render_markdown, summarize
from benchmarks.harness import cli
from benchmarks.harness.device import default_device, device_tag
from benchmarks.harness.jobs import run_job
from benchmarks.harness.provenance import code_version, device_info, provenance
from benchmarks.harness.results import write_results as write_files

logger = logging.getLogger("benchmarks.model_generation_cost")

SCHEMA_VERSION = 1
BENCHMARK_VIDEOS = {"human": 400, "object": 180}  # videos of a benchmark run (16 x 25 prompts; 180 objects)


def build_parser() -> argparse.ArgumentParser:
    p = cli.scenario_parser(__doc__, summary_only=True, out_help="output folder for the JSON and markdown results")
    p.add_argument("--device", default=default_device())
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--suite", choices=tuple(SUITES), default=None, help="settings to measure (default: cpu on CPU, "
                                                                       "gpu on CUDA)")
    p.add_argument("--settings", nargs="+", default=None, metavar="NAME", help="only these settings of the suite")
    p.add_argument("--resolution", type=int, default=None, help="pixels; default 256 on CPU, 512 on CUDA, 64 --quick")
    p.add_argument("--frames", type=int, default=None, help="generated frames (default 16; 4 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default 30 on CUDA, 2 on CPU and --quick)")
    p.add_argument("--project-steps", type=int, default=30, help="steps the per-video projection is made for")
    p.add_argument("--guidance-scale", type=float, default=8.0)
    p.add_argument("--videos", type=int, default=4, help="videos per run (one subject, distinct prompts and seeds)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per setting (default 2; 1 with --quick)")
    p.add_argument("--warmup", type=int, choices=(0, 1), default=None,
                   help="an untimed 1-step call before timing (default 1 on CUDA and --quick, 0 on CPU full size)")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="folder of the random components: built there when empty, reused otherwise (default: a "
                        "temporary folder)")
    p.add_argument("--max-rss-gb", type=float, default=16.0,
                   help="CPU: abort a measurement process whose resident set passes this (0: no guard)")
    p.add_argument("--tag", default=None, help="results file tag (default: derived from the device)")
    p.add_argument("--in-process", action="store_true", help="run every job in this process (tests)")
    p.add_argument("--quick", action="store_true", help="tiny components: a smoke run in seconds")
    p.add_argument("--render", type=Path, default=None, metavar="JSON",
                   help="measure nothing: rewrite the markdown of an existing results JSON")
    p.add_argument("--from-partial", type=Path, default=None, metavar="JSON",
                   help="measure nothing: write the results of a run stopped early from its .partial-<i>.json "
                        "(give the run's own arguments)")
    return p


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    cuda = args.device.startswith("cuda")
    if args.suite is None:
        args.suite = "gpu" if cuda else "cpu"
    if args.resolution is None:
        args.resolution = 64 if args.quick else (512 if cuda else 256)
    if args.frames is None:
        args.frames = 4 if args.quick else 16
    if args.steps is None:
        args.steps = 30 if cuda and not args.quick else 2
    if args.repeats is None:
        args.repeats = 1 if args.quick else 2
    if args.warmup is None:
        args.warmup = 1 if (cuda or args.quick) else 0
    return args


def selected_settings(args: argparse.Namespace) -> list:
    settings = list(SUITES[args.suite])
    if args.settings:
        known = {s.name for s in settings}
        unknown = sorted(set(args.settings) - known)
        if unknown:
            raise ValueError(f"--settings: unknown {unknown} for suite {args.suite}; known: {sorted(known)}")
        settings = [s for s in settings if s.name in args.settings]
    return settings


def _groups(settings: list) -> list[list]:
    """Settings sharing one loaded pipeline (interleaved in one process), in first-seen order."""
    groups: dict[tuple, list] = {}
    for s in settings:
        groups.setdefault(s.load_key(), []).append(s)
    return list(groups.values())


def run_benchmark(args: argparse.Namespace, partial_stem: Path | None = None) -> dict:
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    settings = selected_settings(args)
    started, prov = time.time(), provenance()
    load = {"start": os.getloadavg()}
    isolate = not args.in_process
    preset = "tiny" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="vm-gen-bench-") as tmp:
        model_dir = args.model_dir or Path(tmp) / "model"
        build = None
        if not (Path(model_dir) / "unet.pt").exists():
            build = run_job(JOBS_MODULE, "build", dict(preset=preset, model_dir=str(model_dir), threads=threads,
                                                       max_rss_gb=args.max_rss_gb, device="cpu"), isolate, Path(tmp))
        base = dict(preset=preset, model_dir=str(model_dir), device=args.device, threads=threads,
                    max_rss_gb=args.max_rss_gb, frames=args.frames, resolution=args.resolution, steps=args.steps,
                    guidance_scale=args.guidance_scale, videos=args.videos, repeats=args.repeats,
                    warmup=args.warmup)
        groups = []
        for i, group in enumerate(_groups(settings)):
            partial = None if partial_stem is None else f"{partial_stem}.partial-{i}.json"
            groups.append(run_job(JOBS_MODULE, "generate", dict(base, settings=[asdict(s) for s in group],
                                                                partial_path=partial), isolate, Path(tmp)))
            load[f"after_group_{i}"] = os.getloadavg()
            if partial:
                Path(partial).unlink(missing_ok=True)
    load["end"] = os.getloadavg()
    return result_record(args, groups, build, load, started, prov)


def result_record(args: argparse.Namespace, groups: list[dict], build: dict | None, load: dict, started: float,
                  prov: dict, partial: bool = False) -> dict:
    """The result JSON of a run: its settings, device, code, load and the measured groups."""
    device, preset = args.device, "tiny" if args.quick else "full"
    threads = args.threads or torch.get_num_threads()
    res = dict(
        schema_version=SCHEMA_VERSION, benchmark="model_generation_cost", created_unix=started,
        wall_s=time.time() - started, preset=preset, suite=args.suite, partial=partial,
        device=device_info(device, prov), code=code_version(MEASURED_CODE), provenance=prov,
        device_tag=args.tag or device_tag(device, threads) + ("-quick" if args.quick else ""),
        load_average=load,
        model=dict(weights="random (seed 0)", build=build,
                   components="SD1.5 UNet + v1-5 motion adapter, SD1.5 VAE, CLIP ViT-L/14 text encoder"
                   if preset == "full" else "tiny specs of vm_model/tiny.py"),
        shape=dict(resolution=args.resolution, frames=args.frames, references=1, steps=args.steps,
                   guidance_scale=args.guidance_scale, videos=args.videos, project_steps=args.project_steps),
        protocol=dict(repeats=args.repeats, warmup=args.warmup, threads=threads,
                      isolated_processes=not args.in_process),
        benchmark_videos=BENCHMARK_VIDEOS,
        groups=groups,
    )
    res["summary"] = summarize(res)
    return res


def from_partial(args: argparse.Namespace, partial: Path) -> dict:
    """The result of a run stopped before its end, from the ``.partial-<i>.json`` its job wrote after each timed run
    (pass the run's own arguments): the runs done so far; no video comparison (made at the end of a job)."""
    group = json.loads(partial.read_text())
    started = partial.stat().st_mtime
    res = result_record(args, [group], None, {"at_partial_file": os.getloadavg()}, started, provenance(),
                        partial=True)
    res["wall_s"] = None
    return res


def write_results(res: dict, out: Path) -> tuple[Path, Path]:
    return write_files(Path(out) / f"model_generation_cost_{res['device_tag']}", res, render_markdown(res))


def main(argv: list[str] | None = None) -> int:
    cli.setup_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.render:
        try:
            selected_settings(resolve_defaults(args))
        except ValueError as exc:
            parser.error(str(exc))  # one line, exit 2
    if args.render:
        res = json.loads(args.render.read_text())
        res["summary"] = summarize(res)
        out = args.render.parent
    elif args.from_partial:
        res = from_partial(resolve_defaults(args), args.from_partial)
        out = args.out
    else:
        args = resolve_defaults(args)
        args.out.mkdir(parents=True, exist_ok=True)
        tag = args.tag or device_tag(args.device, args.threads or torch.get_num_threads()) + (
            "-quick" if args.quick else "")
        res = run_benchmark(args, partial_stem=args.out / f"model_generation_cost_{tag}")
        out = args.out
    js, md = write_results(res, out)
    logger.info("wrote %s and %s", js, md)
    sys.stdout.write(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
