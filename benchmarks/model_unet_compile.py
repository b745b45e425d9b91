"""torch.compile of the UNet with PISA installed (issue 13): graph breaks, recompiles, compiled vs eager time.

For each PISA mode: ``torch._dynamo.explain`` of one UNet call with the reference frames and the PISA call kwargs
exactly as the pipeline passes them (``vm_model.unet_call.unet_with_reference``) gives the number of graphs, graph
breaks and their reasons; then ``torch.compile`` (default inductor backend, as ``--compile`` in ``vm generate``
does it: ``vm_model.execution.place_pipeline``) is timed against eager for one UNet call after warm-up,
interleaved, and the outputs compared. ``--pipeline`` also generates through ``VideoMakerPipeline`` with
``ExecutionOptions(compile=True)`` (tiny preset) and counts the graphs dynamo compiled over the denoising steps,
with the constant injection schedule (the paper) and with a varying one (the reference weight changes per step).

    python -m benchmarks.model_unet_compile --preset tiny --pipeline            # seconds to minutes on CPU
    python -m benchmarks.model_unet_compile --preset full --resolution 128      # full SD1.5 UNet, random weights

Results: ``<out>/model_unet_compile_<device-tag>-<preset>.json`` and ``.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

from benchmarks.harness import cli
from benchmarks.harness.device import device_tag, sync
from benchmarks.harness.provenance import code_version, device_info, provenance
from benchmarks.harness.results import table, write_results as write_files
from benchmarks.harness.timing import median, side_by_side

logger = logging.getLogger("benchmarks.model_unet_compile")

MEASURED_CODE = ("vm_model/pisa.py", "vm_model/unet_call.py", "vm_model/execution.py")
MODES = ("concat", "lse")


def build_parser() -> argparse.ArgumentParser:
    p = cli.scenario_parser(__doc__, summary_only=True, out_help="output folder for the JSON and markdown results")
    cli.add_device_arguments(p, dtype_help="UNet dtype (default float32 on CPU, float16 on CUDA)")
    p.add_argument("--preset", choices=("tiny", "full"), default="tiny")
    p.add_argument("--resolution", type=int, default=None, help="pixels (default 64 tiny, 128 full)")
    p.add_argument("--frames", type=int, default=None, help="generated frames (default 4 tiny, 16 full)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--repeats", type=int, default=3, help="timed calls per side (eager, compiled), interleaved")
    p.add_argument("--skip-timing", action="store_true", help="explain only (no inductor compile)")
    p.add_argument("--pipeline", action="store_true", help="also count graphs over a tiny-preset generation")
    p.add_argument("--weights", default=None, metavar="PT",
                   help="a saved state dict of the preset's UNet (e.g. <model-dir>/unet.pt of model_generation_cost), "
                        "memory-mapped; default: build random weights in this process")
    p.add_argument("--tag", default=None)
    return p


def _inputs(unet, preset: str, frames: int, resolution: int, device: str, dtype: torch.dtype):
    from benchmarks.pisa.model import make_inputs
    from vm_model.pisa import pisa_kwargs

    inp = make_inputs(preset, frames, 1, resolution, device, dtype)
    sample = torch.cat([inp["noisy_video"], inp["reference"]], dim=2)
    total = frames + 1
    return (sample, inp["timestep"], inp["text_embeds"].repeat_interleave(total, dim=0)), pisa_kwargs(total, 1)


def explain_call(unet, args: tuple, kwargs: dict) -> dict:
    """``torch._dynamo.explain`` of one UNet call (inference mode, as the pipeline runs it)."""
    def call(sample, timestep, text):
        return unet(sample, timestep, encoder_hidden_states=text, cross_attention_kwargs=kwargs, return_dict=False)[0]

    torch._dynamo.reset()
    t0 = time.perf_counter()
    with torch.inference_mode():
        ex = torch._dynamo.explain(call)(*args)
    reasons = [dict(reason=str(b.reason)[:500],
                    where=[f"{fs.filename.split('site-packages/')[-1]}:{fs.lineno} {fs.name}" for fs in
                           (b.user_stack or [])[-3:]]) for b in ex.break_reasons]
    return dict(graph_count=ex.graph_count, graph_break_count=ex.graph_break_count, op_count=ex.op_count,
                break_reasons=reasons, explain_s=time.perf_counter() - t0)


def time_compiled(unet, args: tuple, kwargs: dict, repeats: int, device: str) -> dict:
    """Eager vs ``torch.compile(unet)`` for one UNet call: compile (first call) time, then interleaved repeats."""
    compiled = torch.compile(unet)

    def run(model):
        def call():
            with torch.inference_mode():
                return model(args[0], args[1], encoder_hidden_states=args[2], cross_attention_kwargs=kwargs,
                             return_dict=False)[0]
        return call

    torch._dynamo.reset()
    sync(device)
    t0 = time.perf_counter()
    first = run(compiled)()
    sync(device)
    compile_s = time.perf_counter() - t0
    eager_out = run(unet)()  # warm-up of the eager side
    side = side_by_side({"eager": run(unet), "compiled": run(compiled)}, repeats, order="alternate",
                        sync=lambda: sync(device), label="compile")
    return dict(first_compiled_call_s=compile_s, wall_s=side.wall_s, cpu_s=side.cpu_s, orders=side.orders,
                median_eager_s=median(side.wall_s["eager"]), median_compiled_s=median(side.wall_s["compiled"]),
                speedup=median(side.wall_s["eager"]) / median(side.wall_s["compiled"]),
                speedup_per_repeat=[e / c for e, c in zip(side.wall_s["eager"], side.wall_s["compiled"])],
                max_abs_diff=float((first.float() - eager_out.float()).abs().max()),
                max_abs_eager=float(eager_out.float().abs().max()))


def pipeline_graphs(device: str) -> dict:
    """Graphs dynamo compiles over a tiny-preset generation with ``ExecutionOptions(compile=True)`` (3 steps, batch 2
    with guidance), for the constant schedule and a per-step varying one; videos compared with eager."""
    from torch._dynamo.utils import counters

    from vm_model.components import load_pipeline
    from vm_model.execution import ExecutionOptions
    from vm_model.pisa import PISAConfig
    from vm_model.sources import ModelSources

    sources = ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny")
    ref = torch.randn(1, 4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    out = {}
    for schedule in (None, "linear"):
        videos = {}
        for compile_ in (False, True):
            torch._dynamo.reset()
            counters.clear()
            pipe = load_pipeline(sources, device=device, dtype=torch.float32, pisa=PISAConfig(mode="lse"),
                                 execution=ExecutionOptions(compile=compile_))
            t0 = time.perf_counter()
            videos[compile_] = pipe(prompt="a person", reference_latents=ref, num_frames=4, height=64, width=64,
                                    num_inference_steps=3, guidance_scale=8.0, output_type="np",
                                    generator=torch.Generator().manual_seed(0), injection_schedule=schedule).frames
            wall = time.perf_counter() - t0
            if compile_:
                out[schedule or "constant"] = dict(
                    unique_graphs=int(counters["stats"]["unique_graphs"]),
                    graph_breaks=dict(counters["graph_break"]), generation_s=wall,
                    max_abs_diff_vs_eager=float(abs(videos[True] - videos[False]).max()))
    return out


def run_benchmark(args: argparse.Namespace) -> dict:
    from benchmarks.pisa.model import apply_variant, build_unet, meta_unet

    device = args.device
    dtype = cli.default_dtype(device, args.dtype)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    resolution = args.resolution or (64 if args.preset == "tiny" else 128)
    frames = args.frames or (4 if args.preset == "tiny" else 16)
    started, prov = time.time(), provenance()
    load = {"start": os.getloadavg()}
    if args.weights:
        unet = meta_unet(args.preset)
        unet.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True, mmap=True), strict=True,
                             assign=True)
        unet = unet.eval()
    else:
        unet = build_unet(args.preset)
    unet = unet.to(device=device, dtype=getattr(torch, dtype))
    call_args, kwargs = _inputs(unet, args.preset, frames, resolution, device, getattr(torch, dtype))
    modes = {}
    for mode in args.modes:
        apply_variant(unet, f"pisa_{mode}")
        modes[mode] = dict(explain=explain_call(unet, call_args, kwargs))
        logger.info("%s: %d graph(s), %d break(s)", mode, modes[mode]["explain"]["graph_count"],
                    modes[mode]["explain"]["graph_break_count"])
        load[f"after_explain_{mode}"] = os.getloadavg()
        if not args.skip_timing:
            modes[mode]["timing"] = time_compiled(unet, call_args, kwargs, args.repeats, device)
            load[f"after_timing_{mode}"] = os.getloadavg()
    res = dict(benchmark="model_unet_compile", created_unix=started, preset=args.preset,
               device=device_info(device, prov), code=code_version(MEASURED_CODE), provenance=prov,
               device_tag=(args.tag or device_tag(device, threads)) + f"-{args.preset}",
               shape=dict(resolution=resolution, latent=resolution // 8, frames=frames, references=1, batch=1),
               dtype=dtype, threads=threads, modes=modes,
               pipeline=pipeline_graphs(device) if args.pipeline else None)
    load["end"] = os.getloadavg()
    res.update(load_average=load, wall_s=time.time() - started)
    return res


def render_markdown(res: dict) -> str:
    dev, shape = res["device"], res["shape"]
    load = "; ".join(f"{k.replace('_', ' ')} {'/'.join(f'{x:.2f}' for x in v)}" for k, v in res["load_average"].items())
    lines = [f"# torch.compile of the UNet with PISA: {res['device_tag']}", "",
             f"Device: {dev['device']}, {dev.get('gpu') or dev['cpu_model']} ({dev['cpu_count']} logical CPUs), "
             f"torch {dev['torch']}, diffusers {dev.get('diffusers', '?')}, {res['threads']} torch thread(s), "
             f"{res['dtype']}. UNet: {res['preset']} preset, random weights; one call at batch 1, "
             f"{shape['resolution']}x{shape['resolution']} ({shape['latent']}x{shape['latent']} latents), "
             f"{shape['frames']} frames + 1 reference, inference mode, PISA kwargs as the pipeline passes them. "
             f"Load average (1/5/15 min): {load}. Whole run {res['wall_s'] / 60:.1f} min.", "",
             "## Graph breaks (torch._dynamo.explain)", ""]
    rows = [[m, r["explain"]["graph_count"], r["explain"]["graph_break_count"], r["explain"]["op_count"],
             "; ".join(b["reason"] + " at " + " < ".join(b["where"]) for b in r["explain"]["break_reasons"]) or "-"]
            for m, r in res["modes"].items()]
    lines += table(["PISA mode", "graphs", "graph breaks", "ops", "break reasons"], rows)
    timed = {m: r["timing"] for m, r in res["modes"].items() if "timing" in r}
    if timed:
        lines += ["", "## Compiled (inductor) vs eager, one UNet call after warm-up, interleaved", ""]
        lines += table(["PISA mode", "first compiled call s", "eager median s (runs)", "compiled median s (runs)",
                        "speedup (per repeat)", "max |compiled - eager| (max |eager|)"],
                       [[m, f"{t['first_compiled_call_s']:.1f}",
                         f"{t['median_eager_s']:.3f} ({', '.join(f'{x:.3f}' for x in t['wall_s']['eager'])})",
                         f"{t['median_compiled_s']:.3f} ({', '.join(f'{x:.3f}' for x in t['wall_s']['compiled'])})",
                         f"{t['speedup']:.2f}x ({', '.join(f'{x:.2f}' for x in t['speedup_per_repeat'])})",
                         f"{t['max_abs_diff']:.2e} ({t['max_abs_eager']:.2f})"] for m, t in timed.items()])
    if res.get("pipeline"):
        lines += ["", "## Through the pipeline (tiny preset, ExecutionOptions(compile=True), PISA lse, 3 steps, "
                  "guidance)", ""]
        lines += table(["injection schedule", "graphs compiled", "graph breaks", "generation s (incl. compile)",
                        "max |video - eager video|"],
                       [[k, v["unique_graphs"], sum(v["graph_breaks"].values()) if v["graph_breaks"] else 0,
                         f"{v['generation_s']:.1f}", f"{v['max_abs_diff_vs_eager']:.2e}"]
                        for k, v in res["pipeline"].items()])
    lines += ["", "## Notes", ""] + [f"- {n}" for n in res.get("notes", [])] if res.get("notes") else []
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    cli.setup_logging()
    args = build_parser().parse_args(argv)
    res = run_benchmark(args)
    js, md = write_files(args.out / f"model_unet_compile_{res['device_tag']}", res, render_markdown(res))
    logger.info("wrote %s and %s", js, md)
    sys.stdout.write(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
