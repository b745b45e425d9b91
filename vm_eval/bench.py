"""``vm bench``: run / score / report the paper's benchmarks.

    vm bench run --benchmark demo --out DIR [--preset tiny] [--method NAME] [--subjects DIR]
    vm bench score --manifest M.jsonl --out DIR [--flow raft|dis] [--preset tiny]
    vm bench report DIR [DIR ...] --out DIR [--layout paper|ablation]

``run`` and ``score`` are resumable (rows already in DIR/samples.jsonl are skipped) and shardable:
``accelerate launch -m vm_eval.bench run ...`` splits the videos over processes; the main process merges.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vm_common.config import add_dataclass_arguments, build_config, config_to_dict
from vm_common.io_utils import atomic_write_json
from vm_common.provenance import provenance
from vm_common.weights import MissingWeightsError

logger = logging.getLogger(__name__)


@dataclass
class ScoringOptions:
    preset: str = field(default="full", metadata={"help": "full: real weights; tiny: tiny random encoders (offline)",
                                                  "choices": ["full", "tiny"]})
    protocol: str = field(default="videomaker", metadata={
        "help": "videomaker: the authors' choices, quirks included (faces fed to insightface as RGB); "
                "corrected: BGR", "choices": ["videomaker", "corrected"]})
    flow: str = field(default="raft", metadata={
        "help": "raft: the paper's DD; dis: weight-free OpenCV DIS flow (not paper-comparable)",
        "choices": ["raft", "dis"]})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda when available)"})
    clip_weights: str | None = field(default=None, metadata={"help": "CLIP ViT-B/32 openai checkpoint (path or hub id)"})
    dino_weights: str | None = field(default=None, metadata={"help": "DINO ViT-S/16 checkpoint (path or hub id)"})
    face_weights: str | None = field(default=None, metadata={"help": "insightface pack name or folder (buffalo_l)"})
    raft_weights: str | None = field(default=None, metadata={"help": "RAFT raft-things state dict (C_T_V1)"})
    batch_size: int = field(default=16, metadata={"help": "frames per encoder forward"})
    progress: bool = field(default=True, metadata={"help": "progress bar with ETA"})
    report: bool = field(default=True, metadata={"help": "write tables and report.html at the end"})


@dataclass
class RunConfig(ScoringOptions):
    benchmark: str = field(default="demo", metadata={"help": "human, object, demo, or a .json definition"})
    out: Path | None = field(default=None, metadata={"help": "output folder (resumable)"})
    method: str = field(default="VideoMaker", metadata={"help": "method name in the tables"})
    subjects: Path | None = field(default=None, metadata={"help": "folder of subject images (see docs/eval.md)"})
    base_model: str | None = field(default=None, metadata={"help": "SD1.5 base model (full preset)"})
    motion_adapter: str | None = field(default=None, metadata={"help": "AnimateDiff motion adapter (full preset)"})
    videomaker_weights: str | None = field(default=None, metadata={
        "help": "VideoMaker weights: human/object/path (default: the benchmark's, per subject kind)"})
    highlight: bool | None = field(default=None, metadata={"help": "subject-highlight the reference (default: as "
                                                                   "the benchmark says)"})
    seeds: list[int] | None = field(default=None, metadata={"help": "override the benchmark's seeds"})


@dataclass
class ScoreConfig(ScoringOptions):
    manifest: Path | None = field(default=None, metadata={"help": "JSONL: video, prompt, reference, subject, method"})
    out: Path | None = field(default=None, metadata={"help": "output folder (resumable)"})
    kind: str = field(default="human", metadata={"help": "kind of rows without a 'kind' key",
                                                 "choices": ["human", "object"]})


def _encoders(cfg: ScoringOptions):
    from .encoders import EncoderConfig, Encoders

    return Encoders(EncoderConfig(preset=cfg.preset, device=cfg.device, protocol=cfg.protocol, flow=cfg.flow,
                                  clip_weights=cfg.clip_weights, dino_weights=cfg.dino_weights,
                                  face_weights=cfg.face_weights, raft_weights=cfg.raft_weights,
                                  batch_size=cfg.batch_size))


def _common_fields(cfg: ScoringOptions) -> dict:
    return {"preset": cfg.preset, "random_weights": cfg.preset == "tiny", "protocol": cfg.protocol, "flow": cfg.flow}


def _families(kinds: set[str], flow: str) -> set[str]:
    from .metrics import get_metric, metrics_for

    return {get_metric(m).family for k in kinds for m in metrics_for(k, flow)}


def _parser(prog: str, cls, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc)
    p.add_argument("--config", type=Path, default=None, help="YAML file of options (flags override it)")
    add_dataclass_arguments(p, cls)
    return p


# ---------------------------------------------------------------------------------------------------------- run
def make_generate_fns(cfg: RunConfig, bench, protocol, device: str, kinds: set[str]) -> dict:
    """kind -> generate_fn(prompt, reference_image, seed) over the vm_model pipeline (one pipeline loaded at a time)."""
    import torch

    try:
        from vm_model.components import ModelSources, load_pipeline
    except ImportError as exc:
        raise SystemExit(f"vm bench run needs vm_model to generate videos ({exc}); "
                         f"use `vm bench score` to score existing videos") from exc
    loaded: dict = {}

    def pipeline_for(kind: str):
        weights = cfg.videomaker_weights or (bench.weights.get(kind) if cfg.preset == "full" else None)
        key = (kind if cfg.videomaker_weights is None else "user", weights)
        if key not in loaded:
            loaded.clear()  # one pipeline in memory at a time (items are grouped by subject)
            if cfg.preset == "tiny":
                sources = ModelSources(videomaker_weights=weights) if weights else None
            else:
                kw = {k: v for k, v in (("base_model", cfg.base_model), ("motion_adapter", cfg.motion_adapter))
                      if v}
                sources = ModelSources(videomaker_weights=weights, **kw)
            loaded[key] = load_pipeline(sources, preset=cfg.preset, device=device)
        return loaded[key]

    def fn_for(kind: str):
        def generate(prompt, reference_image, seed):
            pipe = pipeline_for(kind)
            gen = torch.Generator(device=device).manual_seed(int(seed))
            out = pipe(prompt=prompt, negative_prompt=protocol.negative_prompt, reference_image=reference_image,
                       num_frames=protocol.num_frames, height=protocol.height, width=protocol.width,
                       num_inference_steps=protocol.steps, guidance_scale=protocol.guidance_scale, generator=gen,
                       output_type="np")
            return out.frames
        return generate

    return {k: fn_for(k) for k in kinds}


def _load_highlighter(preset: str, device: str):
    try:
        from vm_data.highlight import load_highlighter
    except ImportError as exc:
        logger.warning("vm_data.highlight is not available (%s); references are used raw", exc)
        return None
    return load_highlighter(preset=preset, device=device)


def cmd_run(argv: list[str]) -> int:
    from dataclasses import replace

    from .bench_defs import BenchmarkError, load_benchmark
    from .report import write_report
    from .runner import ReferenceError_, load_references, run_items
    from .scorer import VideoScorer
    from .store import SampleStore, process_info

    args = _parser("vm bench run", RunConfig, "generate and score a benchmark").parse_args(argv)
    cfg = build_config(RunConfig, args, args.config)
    if cfg.out is None:
        raise SystemExit("vm bench run: --out DIR is required")
    proc = process_info()
    try:
        bench = load_benchmark(cfg.benchmark)
        if cfg.seeds:
            bench.protocol = replace(bench.protocol, seeds=tuple(cfg.seeds))
        if cfg.highlight is not None:
            bench.protocol = replace(bench.protocol, highlight=cfg.highlight)
        subjects = bench.resolve_subjects(cfg.subjects, cfg.out)
        load_references({s.id: s.image for s in subjects})
    except (BenchmarkError, ReferenceError_) as exc:
        sys.stderr.write(f"vm bench run: {exc}\n")
        return 2
    protocol = bench.protocol_for(cfg.preset)
    items = bench.work_items(subjects)
    kinds = {s.kind for s in subjects}
    encoders = _encoders(cfg)
    families = _families(kinds, cfg.flow)
    try:
        encoders.check_available(families)
    except MissingWeightsError as exc:
        sys.stderr.write(f"vm bench run: {exc}\n")
        return 2
    device = str(encoders.device)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    highlighter = _load_highlighter(cfg.preset, device) if protocol.highlight else None
    generate = make_generate_fns(cfg, bench, protocol, device, kinds)
    scorer = VideoScorer(encoders)
    stats = run_items(bench, items, cfg.out, method=cfg.method, preset=cfg.preset, scorer=scorer,
                      generate_fn=generate, highlighter=highlighter, proc=proc, progress=cfg.progress,
                      common=_common_fields(cfg))
    proc.barrier()
    if proc.is_main:
        SampleStore(cfg.out).merge() if proc.count > 1 else None
        atomic_write_json(Path(cfg.out) / "run.json", {
            "command": "run", "benchmark": bench.name, "benchmark_description": bench.description,
            "paper_table": bench.paper_table, "method": cfg.method, "preset": cfg.preset,
            "random_weights": cfg.preset == "tiny", "protocol": cfg.protocol, "flow": cfg.flow,
            "generation": {"num_frames": protocol.num_frames, "height": protocol.height, "width": protocol.width,
                           "seeds": list(protocol.seeds), "steps": protocol.steps,
                           "guidance_scale": protocol.guidance_scale, "negative_prompt": protocol.negative_prompt,
                           "fps": protocol.fps, "highlight": protocol.highlight,
                           "videomaker_weights": cfg.videomaker_weights or (bench.weights if cfg.preset == "full"
                                                                            else None),
                           "base_model": cfg.base_model, "motion_adapter": cfg.motion_adapter},
            "scoring_models": encoders.describe(families),
            "reference_preprocessing": stats.extra.get("reference_preprocessing", {}),
            "subjects": {s.id: {"kind": s.kind, "class": s.cls, "image": s.image} for s in subjects},
            "n_items": len(items), "processes": proc.count,
            "stats_main_process": {"done": stats.done, "skipped": stats.skipped, "seconds": round(stats.seconds, 2)},
            "config": config_to_dict(cfg), "started_utc": started, "provenance": provenance(),
        })
        if cfg.report:
            summary = write_report([cfg.out], cfg.out, title=f"{bench.name}: {cfg.method}")
            _print_tables(cfg.out)
            del summary
    return 0


# -------------------------------------------------------------------------------------------------------- score
def cmd_score(argv: list[str]) -> int:
    from .manifest import ManifestError, read_manifest
    from .report import write_report
    from .runner import ReferenceError_, load_references, score_tasks
    from .scorer import VideoScorer
    from .store import SampleStore, process_info

    args = _parser("vm bench score", ScoreConfig, "score existing videos of any method").parse_args(argv)
    cfg = build_config(ScoreConfig, args, args.config)
    if cfg.manifest is None or cfg.out is None:
        raise SystemExit("vm bench score: --manifest M.jsonl and --out DIR are required")
    proc = process_info()
    try:
        tasks = read_manifest(cfg.manifest, cfg.kind)
        load_references({t.reference: t.reference for t in tasks})
    except (ManifestError, ReferenceError_) as exc:
        sys.stderr.write(f"vm bench score: {exc}\n")
        return 2
    encoders = _encoders(cfg)
    families = _families({t.kind for t in tasks}, cfg.flow)
    try:
        encoders.check_available(families)
    except MissingWeightsError as exc:
        sys.stderr.write(f"vm bench score: {exc}\n")
        return 2
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    stats = score_tasks(tasks, cfg.out, scorer=VideoScorer(encoders), proc=proc, progress=cfg.progress,
                        common=_common_fields(cfg))
    proc.barrier()
    if proc.is_main:
        SampleStore(cfg.out).merge() if proc.count > 1 else None
        atomic_write_json(Path(cfg.out) / "run.json", {
            "command": "score", "manifest": str(cfg.manifest), "preset": cfg.preset,
            "random_weights": cfg.preset == "tiny", "protocol": cfg.protocol, "flow": cfg.flow,
            "methods": sorted({t.method for t in tasks}), "n_items": len(tasks), "processes": proc.count,
            "scoring_models": encoders.describe(families),
            "stats_main_process": {"done": stats.done, "skipped": stats.skipped, "seconds": round(stats.seconds, 2)},
            "config": config_to_dict(cfg), "started_utc": started, "provenance": provenance(),
        })
        if cfg.report:
            write_report([cfg.out], cfg.out, title="Scores")
            _print_tables(cfg.out)
    return 0


# ------------------------------------------------------------------------------------------------------- report
def cmd_report(argv: list[str]) -> int:
    from .report import write_report
    from .tables import LAYOUTS

    p = argparse.ArgumentParser(prog="vm bench report", description="tables and report.html from run folders")
    p.add_argument("runs", nargs="+", type=Path, help="run folders (each with samples.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--layout", choices=LAYOUTS, default="paper",
                   help="paper: Table 1 (human) / Table 2 (object); ablation: Table 3, rows in the given order")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    try:
        write_report(args.runs, args.out, layout=args.layout, title=args.title)
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"vm bench report: {exc}\n")
        return 2
    _print_tables(args.out)
    return 0


def _print_tables(out_dir: Path) -> None:
    sys.stdout.write((Path(out_dir) / "table.md").read_text())


COMMANDS = {"run": cmd_run, "score": cmd_score, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        sys.stdout.write(__doc__.strip() + "\n")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
