"""Training-step peak memory with and without gradient checkpointing at the paper's 16 (+1) frames.

Complements ``model_pisa_cost.py`` (whose CPU training shape is limited to 2 + 1 frames at 256x256 so that the
forward measurements fit beside it): the same measurement function (``training_step_memory``: full-size SD1.5 +
v1-5 motion adapter, random weights, PISA concat, trainable = spatial attn1 + motion modules), each run in a fresh
process, at a shape where activations rather than the trainable weights' gradients dominate.

    python benchmarks/model_train_memory.py --frames 16 --resolution 128 --out benchmarks/results
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_pisa_cost as cost  # noqa: E402

logger = logging.getLogger("model_train_memory")
TARGET = 0.40


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
          f"Load average start/end: {result['load_average']['start']} / {result['load_average']['end']}.", "",
          "| gradient checkpointing | peak tensor GiB | peak RSS GiB | of which gradients GiB | step s |",
          "|---|---|---|---|---|"]
    for run in runs.values():
        on = "on" if run["checkpointing"] else "off"
        if "peak_bytes" not in run:
            md.append(f"| {on} | - | > {run['exceeded_rss_guard_gib']:.0f} (stopped by the memory guard) | - | - |")
            continue
        rss = run.get("rss_peak_bytes")
        md.append(f"| {on} | {run['peak_bytes'] / gib:.2f} | "
                  f"{(rss / gib) if rss else float('nan'):.2f} | {run['grad_bytes'] / gib:.2f} | {run['time_s']:.1f} |")
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    p.add_argument("--max-rss-gb", type=float, default=14.0)
    p.add_argument("--render", type=Path, default=None, help="only re-render the markdown of a result JSON")
    args = p.parse_args(argv)
    if args.render is not None:
        result = json.loads(args.render.read_text())
        result.setdefault("tag", args.render.stem.removeprefix("model_train_memory_"))
        args.render.with_suffix(".md").write_text(render_markdown(result))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threads = args.threads or torch.get_num_threads()
    dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    started, load = time.time(), {"start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="vm-train-mem-") as tmp:
        workdir = Path(tmp)
        base = dict(preset="full", weights=str(workdir / "unet.pt"), device=args.device, dtype=dtype,
                    threads=threads, max_rss_gb=args.max_rss_gb)
        build = cost.run_job("build", base, True, workdir)
        runs = {}
        for name, ckpt in (("no_checkpointing", False), ("checkpointing", True)):
            try:
                runs[name] = cost.run_job("train_memory", dict(base, frames=args.frames, resolution=args.resolution,
                                                               checkpointing=ckpt), True, workdir)
            except MemoryError as exc:  # recorded, not hidden: the run did not fit under the guard
                logger.warning("%s", exc)
                runs[name] = dict(checkpointing=ckpt, exceeded_rss_guard_gib=args.max_rss_gb)
    load["end"] = os.getloadavg()
    no_ck, ck = runs["no_checkpointing"], runs["checkpointing"]
    if "peak_bytes" in no_ck and "peak_bytes" in ck:
        reduction = 1.0 - ck["peak_bytes"] / no_ck["peak_bytes"]
        rss_reduction = (1.0 - ck["rss_peak_bytes"] / no_ck["rss_peak_bytes"]) if no_ck.get("rss_peak_bytes") else None
    elif "peak_bytes" in ck and ck.get("rss_peak_bytes"):  # without: above the guard, so a lower bound
        reduction = None
        rss_reduction = 1.0 - ck["rss_peak_bytes"] / (args.max_rss_gb * 2**30)
    else:
        reduction = rss_reduction = None
    tag = f"{cost.device_tag(args.device, threads)}-f{args.frames}-r{args.resolution}"
    result = dict(benchmark="model_train_memory", device=cost.device_info(args.device), code=cost.code_version(),
                  shape=dict(frames=args.frames, references=1, resolution=args.resolution, batch=1, pisa="concat"),
                  dtype=dtype, threads=threads, parameters=build["parameters"], runs=runs, reduction=reduction,
                  rss_reduction=rss_reduction, target=TARGET,
                  passed=(reduction if reduction is not None else (rss_reduction or 0.0)) >= TARGET,
                  load_average=load,
                  wall_s=time.time() - started)
    result["tag"] = tag
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"model_train_memory_{tag}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = render_markdown(result)
    (args.out / f"model_train_memory_{tag}.md").write_text(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
