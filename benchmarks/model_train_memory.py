"""Training-step peak memory with and without gradient checkpointing at the paper's 16 (+1) frames.

Complements ``model_pisa_cost`` (whose CPU training shape is limited to 2 + 1 frames at 256x256 so that the
forward measurements fit beside it): the same measurement (``benchmarks/pisa/train_step.py``: full-size SD1.5 +
v1-5 motion adapter, random weights, PISA concat, trainable = spatial attn1 + motion modules), each run in a fresh
process, at a shape where activations rather than the trainable weights' gradients dominate.

    python -m benchmarks.model_train_memory --frames 16 --resolution 128 --out benchmarks/results

Results: ``<out>/model_train_memory_<device-tag>-f<frames>-r<resolution>.json`` and ``.md``.
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
from benchmarks.harness.results import table, write_results
from benchmarks.pisa.jobs import MEASURED_CODE, MODULE as JOBS_MODULE
from benchmarks.pisa.train_step import CHECKPOINTING_RUNS

logger = logging.getLogger("benchmarks.model_train_memory")
TARGET = 0.40


def _row(run: dict) -> list[str]:
    on = "on" if run["checkpointing"] else "off"
    if "peak_bytes" not in run:
        return [on, "-", f"> {run['exceeded_rss_guard_gib']:.0f} (stopped by the memory guard)", "-", "-"]
    gib, rss = 2.0 ** 30, run.get("rss_peak_bytes")
    return [on, f"{run['peak_bytes'] / gib:.2f}", f"{(rss / gib) if rss else float('nan'):.2f}",
            f"{run['grad_bytes'] / gib:.2f}", f"{run['time_s']:.1f}"]


def render_markdown(result: dict) -> str:
    gib = 2.0 ** 30
    runs, shape, dev = result["runs"], result["shape"], result["device"]
    no_ck = runs["no_checkpointing"]
    method = next((r["method"] for r in runs.values() if "method" in r), "n/a")
    md = [f"# Training-step peak memory: {result['tag']}", "",
          f"Device: {dev.get('cpu_model') or dev.get('gpu') or dev.get('device')} ({dev.get('device')}), torch "
          f"{dev.get('torch')}, {result['threads']} thread(s). Full-size SD1.5 + v1-5 motion adapter "
          f"({result['parameters'] / 1e6:.0f}M parameters, random weights), {shape['frames']} (+1 reference) frames at "
          f"{shape['resolution']}x{shape['resolution']}, batch 1, {result['dtype']}, PISA concat, trainable = spatial "
          f"attn1 + motion modules; one fresh process per run; peak = tensor bytes ({method}). "
          f"Load average start/end: {tuple(result['load_average']['start'])} / "
          f"{tuple(result['load_average']['end'])}.", ""]
    md += table(["gradient checkpointing", "peak tensor GiB", "peak RSS GiB", "of which gradients GiB", "step s"],
                [_row(run) for run in runs.values()])
    verdict = f"(target >= {result['target']:.0%}: {'PASS' if result['passed'] else 'FAIL'})"
    if result["reduction"] is not None:
        act = [(r["peak_bytes"] - r["grad_bytes"]) / gib for r in (runs["no_checkpointing"], runs["checkpointing"])]
        md += ["", f"Reduction of the peak by checkpointing: {result['reduction']:.1%} {verdict}"
               + (f"; resident set: {result['rss_reduction']:.1%}." if result.get("rss_reduction") is not None else ".")
               + f" Excluding the trainable weights' gradients (which checkpointing cannot remove): {act[0]:.2f} -> "
                 f"{act[1]:.2f} GiB ({1 - act[1] / act[0]:.1%} less)."]
    elif result.get("rss_reduction") is not None:
        md += ["", f"Without checkpointing the step passed the {no_ck['exceeded_rss_guard_gib']:.0f} GiB resident-set "
               f"guard and was stopped; with it the resident peak was "
               f"{runs['checkpointing']['rss_peak_bytes'] / gib:.2f} GiB, so checkpointing cuts it by more than "
               f"{result['rss_reduction']:.1%} {verdict}."]
    return "\n".join(md) + "\n"


def reductions(runs: dict, max_rss_gb: float) -> tuple[float | None, float | None]:
    """Peak reduction by checkpointing (tensor bytes, resident set). When the run without checkpointing was stopped
    by the guard, the resident-set reduction is a lower bound against the guard and the tensor one is None."""
    no_ck, ck = runs["no_checkpointing"], runs["checkpointing"]
    if "peak_bytes" in no_ck and "peak_bytes" in ck:
        rss = (1.0 - ck["rss_peak_bytes"] / no_ck["rss_peak_bytes"]) if no_ck.get("rss_peak_bytes") else None
        return 1.0 - ck["peak_bytes"] / no_ck["peak_bytes"], rss
    if "peak_bytes" in ck and ck.get("rss_peak_bytes"):
        return None, 1.0 - ck["rss_peak_bytes"] / (max_rss_gb * 2**30)
    return None, None


def build_parser() -> argparse.ArgumentParser:
    p = cli.scenario_parser(__doc__)
    cli.add_device_arguments(p)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--max-rss-gb", type=float, default=14.0)
    p.add_argument("--render", type=Path, default=None, help="only re-render the markdown of a result JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render is not None:
        result = json.loads(args.render.read_text())
        result.setdefault("tag", args.render.stem.removeprefix("model_train_memory_"))
        args.render.with_suffix(".md").write_text(render_markdown(result))
        return 0
    cli.setup_logging()
    threads = args.threads or torch.get_num_threads()
    dtype = cli.default_dtype(args.device, args.dtype)
    started, prov, load = time.time(), provenance(), {"start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="vm-train-mem-") as tmp:
        base = dict(preset="full", weights=str(Path(tmp) / "unet.pt"), device=args.device, dtype=dtype,
                    threads=threads, max_rss_gb=args.max_rss_gb)
        build = run_job(JOBS_MODULE, "build", base, True, Path(tmp))
        runs = {}
        for name, ckpt in CHECKPOINTING_RUNS:
            try:
                runs[name] = run_job(JOBS_MODULE, "train_memory", dict(base, frames=args.frames,
                                     resolution=args.resolution, checkpointing=ckpt), True, Path(tmp))
            except MemoryError as exc:  # recorded, not hidden: the run did not fit under the guard
                logger.warning("%s", exc)
                runs[name] = dict(checkpointing=ckpt, exceeded_rss_guard_gib=args.max_rss_gb)
    load["end"] = os.getloadavg()
    reduction, rss_reduction = reductions(runs, args.max_rss_gb)
    tag = f"{device_tag(args.device, threads)}-f{args.frames}-r{args.resolution}"
    result = dict(benchmark="model_train_memory", device=device_info(args.device, prov),
                  code=code_version(MEASURED_CODE), provenance=prov,
                  shape=dict(frames=args.frames, references=1, resolution=args.resolution, batch=1, pisa="concat"),
                  dtype=dtype, threads=threads, parameters=build["parameters"], runs=runs, reduction=reduction,
                  rss_reduction=rss_reduction, target=TARGET,
                  passed=(reduction if reduction is not None else (rss_reduction or 0.0)) >= TARGET,
                  load_average=load, wall_s=time.time() - started, tag=tag)
    md = render_markdown(result)
    write_results(args.out / f"model_train_memory_{tag}", result, md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

