"""``vm bench``: run / score / report the paper's benchmarks.

    vm bench run --benchmark demo --out DIR [--preset tiny] [--method NAME] [--subjects DIR]
    vm bench score --manifest M.jsonl --out DIR [--flow raft|dis] [--preset tiny]
    vm bench report DIR [DIR ...] --out DIR [--layout paper|ablation]
    vm bench export RUN --format vbench|opens2v --out DIR   (the videos as VBench's / OpenS2V's own tools read them)

``run`` and ``score`` are resumable and shardable: ``accelerate launch -m vm_eval.bench run ...`` splits the videos
over processes; the main process merges. A video whose rows are in DIR/samples.jsonl is skipped only when their
fingerprint proves the same inputs and settings (protocol, sources, reference bytes, prompt, seed, scoring); rows
made otherwise stop the command (exit 2, naming what changed) unless ``--overwrite``, which makes them again
(:mod:`vm_eval.resume`). Exit codes: 0 done, 2 a user error, 1 an internal error (including scores recorded as
``internal_error``, counted at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from vm_common.config import add_dataclass_arguments, build_config, config_to_dict
from vm_common.distributed import process_info
from vm_common.error_policy import internal_errors_message
from vm_common.errors import EXIT_INTERNAL, StaleOutputError, run_main
from vm_common.io_utils import atomic_write_json
from vm_common.output_lock import hold_output_folder
from vm_common.provenance import provenance
from vm_model.execution import ExecutionOptions
from vm_model.presets import PRESETS, presets_for
from vm_model.protocol import GenerationProtocol
from vm_model.sources import ModelSources

from .opens2v_models import OpenS2VOptions

logger = logging.getLogger(__name__)


@dataclass
class ScoringOptions:
    preset: str = field(default="full", metadata={
        "help": "full: real weights; tiny: tiny random model and encoders (offline); toy: the shipped toy VideoMaker "
                "(offline; its benchmark's metrics need no encoders, other metrics use the real ones)",
        "choices": sorted(PRESETS)})
    protocol: str = field(default="videomaker", metadata={
        "help": "videomaker: the authors' choices, quirks included (faces fed to insightface as RGB, references "
                "read raw, a frozen video counts static for DD, mp4 frames subsampled to 8 fps for DD, DINO "
                "LayerNorm eps 1e-12); corrected: BGR, EXIF + white compositing, frozen video an error, all "
                "frames, timm's eps (docs/eval.md)", "choices": ["videomaker", "corrected"]})
    flow: str = field(default="raft", metadata={
        "help": "raft: the paper's DD; dis: weight-free OpenCV DIS flow (not paper-comparable)",
        "choices": ["raft", "dis"]})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda when available)"})
    clip_weights: str | None = field(default=None, metadata={"help": "CLIP ViT-B/32 openai checkpoint (path or hub id)"})
    dino_weights: str | None = field(default=None, metadata={"help": "DINO ViT-S/16 checkpoint (path or hub id)"})
    face_weights: str | None = field(default=None, metadata={"help": "insightface pack name or folder (buffalo_l)"})
    raft_weights: str | None = field(default=None, metadata={"help": "RAFT raft-things state dict (C_T_V1)"})
    subject_detector: str | None = field(default=None, metadata={
        "help": "multi-subject metrics of object videos (rows with several references): Grounding DINO weights "
                "(folder or hub id; default IDEA-Research/grounding-dino-tiny) or a backend name: grounding-dino, "
                "synthetic-color (tests only)"})
    suites: str = field(default="paper", metadata={
        "help": "metric suites, comma-separated: paper (the paper's six metrics, the default), vbench (VBench's "
                "subject/background consistency, motion smoothness, aesthetic and imaging quality, computed as VBench "
                "does), copy (the "
                "copy-paste measure: does the video paste the reference in its own pose), opens2v (OpenS2V-Eval's "
                "metrics as its scripts compute them; each skipped, with the reason, when its model is missing); "
                "docs/eval.md"})
    vbench_dino_weights: str | None = field(default=None, metadata={
        "help": "DINO ViT-B/16 for VBench subject consistency (path or hub id)"})
    clip_l14_weights: str | None = field(default=None, metadata={
        "help": "CLIP ViT-L/14 openai checkpoint for VBench aesthetic quality (path or hub id)"})
    aesthetic_weights: str | None = field(default=None, metadata={
        "help": "LAION aesthetic linear head sa_0_4_vit_l_14_linear.pth (path)"})
    amt_weights: str | None = field(default=None, metadata={
        "help": "AMT-S amt-s.pth for VBench motion smoothness (path or hub id; missing: that dimension is skipped)"})
    musiq_weights: str | None = field(default=None, metadata={
        "help": "MUSIQ (SPAQ) musiq_spaq_ckpt-358bb6af.pth for VBench imaging quality (path or hub id; missing: "
                "that dimension is skipped)"})
    batch_size: int = field(default=16, metadata={"flag": "encoder-batch-size", "help": "frames per encoder forward",
                                                  "min": 1, "max": 4096})
    opens2v: OpenS2VOptions = field(default_factory=OpenS2VOptions, metadata={
        "group": "OpenS2V-Eval models and NaturalScore judge (--suites ...,opens2v)"})
    progress: bool = field(default=True, metadata={"help": "progress bar with ETA"})
    report: bool = field(default=True, metadata={"help": "write tables and report.html at the end"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace the videos and rows in --out that were made from other inputs or settings (default: "
                "refuse, naming what changed); rows that match are still reused"})


BENCHMARK_WEIGHTS = "benchmark"  # --weights value: the benchmark's weights for each subject kind


@dataclass
class RunConfig(ScoringOptions):
    benchmark: str = field(default="demo", metadata={
        "help": "human, object, demo, toy, opens2v-human, opens2v-single (OpenS2V-Eval tracks; --subjects: your "
                "download of the dataset), or a .json definition"})
    out: Path | None = field(default=None, metadata={"help": "output folder (resumable)"})
    method: str = field(default="VideoMaker", metadata={"help": "method name in the tables"})
    subjects: Path | None = field(default=None, metadata={
        "help": "folder of subject images (see docs/eval.md); for opens2v-*: the OpenS2V-Eval dataset folder"})
    highlight: bool | None = field(default=None, metadata={"help": "subject-highlight the reference (default: as "
                                                                   "the benchmark says)"})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads of this process (default: torch's choice; the toy preset uses 1: its model's ops "
                "are so small that more threads only add synchronisation, which stalls on a busy machine)",
        "min": 1, "max": 1024})
    baselines: bool = field(default=True, metadata={
        "help": "also generate and score the benchmark's baselines as methods '<method>: <baseline>' (toy: the same "
                "model with the reference zeroed)"})
    sources: ModelSources = field(default_factory=lambda: ModelSources(videomaker_weights=BENCHMARK_WEIGHTS),
                                  metadata={"group": "model sources",
                                            "help": f"--weights {BENCHMARK_WEIGHTS}: the benchmark's own weights "
                                                    f"for each subject kind (human / object)"})
    execution: ExecutionOptions = field(default_factory=ExecutionOptions, metadata={
        "group": "execution (speed and memory; never changes a video beyond float tolerance)"})
    generation: GenerationProtocol = field(default_factory=GenerationProtocol, metadata={
        "group": "generation protocol", "help": "defaults < the benchmark's protocol < the preset < --config < flags"})


@dataclass
class ScoreConfig(ScoringOptions):
    manifest: Path | None = field(default=None, metadata={
        "help": "JSONL: video, prompt, reference (or references: several), subject, method"})
    out: Path | None = field(default=None, metadata={"help": "output folder (resumable)"})
    kind: str = field(default="human", metadata={"help": "kind of rows without a 'kind' key",
                                                 "choices": ["human", "object"]})


def _encoders(cfg: ScoringOptions):
    from vm_common.config import ConfigError

    from .encoders import EncoderConfig, Encoders
    from .metrics import parse_suites

    try:
        suites = parse_suites(cfg.suites)
    except ValueError as exc:
        raise ConfigError(f"--suites: {exc}") from None

    return Encoders(EncoderConfig(preset=encoder_preset(cfg.preset), device=cfg.device, protocol=cfg.protocol,
                                  flow=cfg.flow, clip_weights=cfg.clip_weights, dino_weights=cfg.dino_weights,
                                  face_weights=cfg.face_weights, raft_weights=cfg.raft_weights,
                                  vbench_dino_weights=cfg.vbench_dino_weights, clip_l14_weights=cfg.clip_l14_weights,
                                  aesthetic_weights=cfg.aesthetic_weights, amt_weights=cfg.amt_weights,
                                  musiq_weights=cfg.musiq_weights, suites=suites,
                                  batch_size=cfg.batch_size, opens2v=cfg.opens2v,
                                  subject_detector=cfg.subject_detector))


def encoder_preset(preset: str) -> str:
    """Scoring encoders of a preset: tiny random ones for ``tiny``, the real ones otherwise (``toy``'s own metrics
    need none)."""
    return "tiny" if preset == "tiny" else "full"


def _common_fields(cfg: ScoringOptions) -> dict:
    return {"preset": cfg.preset, "random_weights": cfg.preset == "tiny", "protocol": cfg.protocol, "flow": cfg.flow}


def _families(kinds: set[str], flow: str, suites: str = "paper") -> set[str]:
    from .metrics import get_metric, metrics_for, parse_suites

    return {get_metric(m).family for k in kinds for m in metrics_for(k, flow, parse_suites(suites))}


# ---------------------------------------------------------------------------------------------------------- run
def make_generate_fns(cfg: RunConfig, bench, device: str, kinds: set[str],
                      protocol: GenerationProtocol | None = None, loaded: dict | None = None) -> dict:
    """kind -> generate_fn(prompt, reference_image, seed) through ``vm_model.protocol.render_video``, the same code
    as `vm generate` (one pipeline in memory at a time; items are grouped by subject). ``protocol``: default the
    run's (a baseline's otherwise); ``loaded``: a pipeline cache shared between calls (the baselines reuse it)."""
    from vm_model.components import load_pipeline
    from vm_model.pisa import PISAConfig
    protocol = protocol or cfg.generation
    loaded = {} if loaded is None else loaded

    def pipeline_for(kind: str):
        sources = weights_for_kind(cfg.sources, bench, kind)
        key = (sources.videomaker_weights, protocol.attention_mode(device), protocol.dtype)
        if key not in loaded:
            loaded.clear()
            loaded[key] = load_pipeline(sources, device=device, dtype=protocol.torch_dtype(device),
                                        pisa=PISAConfig(mode=protocol.attention_mode(device)),
                                        execution=cfg.execution)
            loaded[key].set_progress_bar_config(disable=True)  # the runner shows one bar for all videos
        return loaded[key]

    return {k: KindGenerator(lambda k=k: pipeline_for(k), protocol) for k in kinds}


class KindGenerator:
    """``generate_fn`` of one subject kind for the runner: ``(prompt, reference_image, seed) -> frames``, and
    ``many(prompts, reference_image, seeds)`` for batched calls (``vm_model.protocol.render_videos``: each video
    keeps its own seeded generator, so batching does not change it)."""

    def __init__(self, pipeline, protocol: GenerationProtocol):
        self.pipeline, self.protocol = pipeline, protocol
        self._encoded: tuple | None = None  # (pipeline, reference image, latents): each subject is encoded once

    def many(self, prompts: list[str], reference_image, seeds: list[int]) -> list:
        from vm_model.protocol import render_videos, to_uint8

        pipe, protocol = self.pipeline(), self.protocol
        if self._encoded is None or self._encoded[0] is not pipe or self._encoded[1] is not reference_image:
            latents = pipe.prepare_reference_latents(reference_image, protocol.height, protocol.width,
                                                     pipe._execution_device, pipe.unet.dtype,
                                                     encoding=protocol.reference_encoding,
                                                     alpha=protocol.reference_alpha)
            self._encoded = (pipe, reference_image, latents)
        return [to_uint8(v) for v in render_videos(pipe, protocol, prompts, self._encoded[2], seeds)]

    def __call__(self, prompt: str, reference_image, seed: int):
        return self.many([prompt], reference_image, [seed])[0]


def methods_to_run(cfg: RunConfig, bench) -> list[tuple[str, GenerationProtocol]]:
    """(method name, protocol): the model under the run's protocol, then each of the benchmark's baselines."""
    methods = [(cfg.method, cfg.generation)]
    if cfg.baselines:
        methods += [(f"{cfg.method}: {b.name}", replace(cfg.generation, **b.protocol)) for b in bench.baselines]
    return methods


def weights_for_kind(sources: ModelSources, bench, kind: str) -> ModelSources:
    """The sources with ``--weights benchmark`` replaced by the benchmark's weights for this subject kind."""
    if sources.videomaker_weights != BENCHMARK_WEIGHTS:
        return sources
    return replace(sources, videomaker_weights=bench.weights.get(kind))


def _load_highlighter(preset: str, device: str):
    try:
        from vm_data.highlight import load_highlighter
    except ImportError as exc:
        logger.warning("vm_data.highlight is not available (%s); references are used raw", exc)
        return None
    return load_highlighter(preset=preset, device=device)


RUN_PRESETS = presets_for({"toy": {"method": "VideoMaker (toy)", "threads": 1}}, keys=("sources", "generation"))


def resolve_run_config(args: argparse.Namespace):
    """The run's config and benchmark: defaults < the benchmark's protocol < preset < --config < flags."""
    from .bench_defs import load_benchmark

    first = build_config(RunConfig, args, args.config, presets=RUN_PRESETS)
    bench = load_benchmark(first.benchmark)
    cfg = build_config(RunConfig, args, args.config, presets=RUN_PRESETS,
                       base={"generation": bench.protocol, "highlight": bench.highlight})
    return cfg, bench


def cmd_run(argv: list[str]) -> int:
    return run_main("vm bench run", lambda: _cmd_run(argv))


def _cmd_run(argv: list[str]) -> int:
    from vm_common.config import ConfigError

    args = build_parser().parse_args(["run", *argv])
    cfg, bench = resolve_run_config(args)
    if cfg.out is None:
        raise ConfigError("--out DIR is required")
    proc = process_info(cfg.device)
    with hold_output_folder(cfg.out, is_main=proc.is_main):
        return _run_holding_out(cfg, bench, proc)


def _kind_identity(cfg: RunConfig, bench, kinds: set[str]) -> dict[str, dict]:
    """Subject kind -> the fingerprint parts of its model (the sources that kind is generated with)."""
    return {k: {"sources": dataclasses.asdict(weights_for_kind(cfg.sources, bench, k))} for k in kinds}


def _check_stale_before_work(cfg: RunConfig, bench, items, methods, scorer, identity) -> None:
    """Every method's rows checked before anything is generated (each run_items checks its own again)."""
    from .resume import find_stale, stale_message, stored_fingerprints
    from .runner import plan_run
    from .store import read_samples

    if cfg.overwrite:
        return
    rows = read_samples(cfg.out)
    stale = []
    for method, protocol in methods:
        planned = plan_run(items, method=method, protocol=protocol, highlight=bool(cfg.highlight), scorer=scorer,
                           identity=identity)
        stale += find_stale(stored_fingerprints(rows, {method}), planned)
    if stale:
        raise StaleOutputError(stale_message(stale, cfg.out))


def _run_holding_out(cfg: RunConfig, bench, proc) -> int:
    from .report import write_report
    from .runner import load_references, run_items
    from .scorer import VideoScorer
    from .store import SampleStore

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    subjects = bench.resolve_subjects(cfg.subjects, cfg.out)
    load_references({s.id: s.image for s in subjects})
    protocol = cfg.generation
    items = bench.work_items(subjects, protocol.seeds)
    kinds = {s.kind for s in subjects}
    encoders = _encoders(cfg)
    families = _families(kinds, cfg.flow, cfg.suites)
    encoders.check_available(families)  # MissingWeightsError: a user error (exit 2)
    device = str(encoders.device)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    highlighter = _load_highlighter(encoder_preset(cfg.preset), device) if cfg.highlight else None
    scorer = VideoScorer(encoders)
    random_weights = any(weights_for_kind(cfg.sources, bench, k).random_weights for k in kinds)
    common = {**_common_fields(cfg), "random_weights": random_weights}
    methods, loaded, stats = methods_to_run(cfg, bench), {}, None
    identity = _kind_identity(cfg, bench, kinds)
    _check_stale_before_work(cfg, bench, items, methods, scorer, identity)
    for method, method_protocol in methods:
        generate = make_generate_fns(cfg, bench, device, kinds, protocol=method_protocol, loaded=loaded)
        method_stats = run_items(bench, items, cfg.out, method=method, protocol=method_protocol,
                                 highlight=bool(cfg.highlight), scorer=scorer, generate_fn=generate,
                                 highlighter=highlighter, proc=proc, progress=cfg.progress, common=common,
                                 identity=identity, overwrite=cfg.overwrite,
                                 batch_size=cfg.execution.batch_size)
        if stats is None:
            stats = method_stats
        else:
            stats.done, stats.skipped = stats.done + method_stats.done, stats.skipped + method_stats.skipped
            stats.seconds += method_stats.seconds
            stats.internal_errors += method_stats.internal_errors
    proc.barrier()
    if proc.is_main:
        SampleStore(cfg.out).merge() if proc.count > 1 else None
        atomic_write_json(Path(cfg.out) / "run.json", {
            "command": "run", "benchmark": bench.name, "benchmark_description": bench.description,
            "paper_table": bench.paper_table, "method": cfg.method, "preset": cfg.preset,
            "methods": {name: {k: v for k, v in config_to_dict(p).items() if v != getattr(protocol, k)}
                        for name, p in methods},
            "random_weights": random_weights, "protocol": cfg.protocol, "flow": cfg.flow,
            "protocol_choices": encoders.config.scoring.describe(),
            "generation": {**config_to_dict(protocol), "highlight": cfg.highlight,
                           "negative_prompt_text": protocol.negative_prompt_text},
            "sources": {k: dataclasses.asdict(weights_for_kind(cfg.sources, bench, k)) for k in sorted(kinds)},
            "scoring_models": encoders.describe(families),
            "reference_preprocessing": stats.extra.get("reference_preprocessing", {}),
            "subjects": {s.id: {"kind": s.kind, "class": s.cls, "image": s.image} for s in subjects},
            "n_items": len(items), "processes": proc.count,
            "stats_main_process": {"done": stats.done, "skipped": stats.skipped, "seconds": round(stats.seconds, 2)},
            "config": config_to_dict(cfg), "started_utc": started, "provenance": provenance(),
        })
        if cfg.report:
            write_report([cfg.out], cfg.out, title=f"{bench.name}: {cfg.method}")
            _print_tables(cfg.out)
    return _internal_exit(stats.internal_errors, cfg.out)


def _internal_exit(count: int, out_dir: Path) -> int:
    """Exit 1 saying how many internal errors this process recorded (0 when none)."""
    if count:
        logger.error("%s", internal_errors_message(count, str(Path(out_dir) / "samples.jsonl")))
        return EXIT_INTERNAL
    return 0


# -------------------------------------------------------------------------------------------------------- score
def cmd_score(argv: list[str]) -> int:
    return run_main("vm bench score", lambda: _cmd_score(argv))


def _cmd_score(argv: list[str]) -> int:
    from vm_common.config import ConfigError

    from .runner import load_references
    from .score_manifest import read_score_manifest

    args = build_parser().parse_args(["score", *argv])
    cfg = build_config(ScoreConfig, args, args.config)
    if cfg.manifest is None or cfg.out is None:
        raise ConfigError("--manifest M.jsonl and --out DIR are required")
    proc = process_info(cfg.device)
    tasks = read_score_manifest(cfg.manifest, cfg.kind)
    load_references({r: r for t in tasks for r in (t.reference, *t.references)})
    with hold_output_folder(cfg.out, is_main=proc.is_main):
        return _score_holding_out(cfg, tasks, proc)


def _score_holding_out(cfg: ScoreConfig, tasks, proc) -> int:
    from .report import write_report
    from .runner import score_tasks
    from .scorer import VideoScorer
    from .store import SampleStore

    encoders = _encoders(cfg)
    families = _families({t.kind for t in tasks}, cfg.flow, cfg.suites)
    # several references: the multi-subject metrics, on faces (human) or detector boxes + DINO crops (object)
    several = {t.kind for t in tasks if t.n_references > 1}
    families |= ({"multi"} | {"face" if k == "human" else "dino" for k in several}) if several else set()
    encoders.check_available(families)  # MissingWeightsError: a user error (exit 2)
    if "object" in several:
        encoders.subject_detector  # noqa: B018 - loads the detector now: missing weights stop before any work
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    stats = score_tasks(tasks, cfg.out, scorer=VideoScorer(encoders), proc=proc, progress=cfg.progress,
                        common=_common_fields(cfg), overwrite=cfg.overwrite)
    proc.barrier()
    if proc.is_main:
        SampleStore(cfg.out).merge() if proc.count > 1 else None
        atomic_write_json(Path(cfg.out) / "run.json", {
            "command": "score", "manifest": str(cfg.manifest), "preset": cfg.preset,
            "random_weights": cfg.preset == "tiny", "protocol": cfg.protocol, "flow": cfg.flow,
            "protocol_choices": encoders.config.scoring.describe(),
            "methods": sorted({t.method for t in tasks}), "n_items": len(tasks), "processes": proc.count,
            "scoring_models": encoders.describe(families),
            "stats_main_process": {"done": stats.done, "skipped": stats.skipped, "seconds": round(stats.seconds, 2)},
            "config": config_to_dict(cfg), "started_utc": started, "provenance": provenance(),
        })
        if cfg.report:
            write_report([cfg.out], cfg.out, title="Scores")
            _print_tables(cfg.out)
    return _internal_exit(stats.internal_errors, cfg.out)


# ------------------------------------------------------------------------------------------------------- report
def cmd_report(argv: list[str]) -> int:
    return run_main("vm bench report", lambda: _cmd_report(argv))


def _cmd_report(argv: list[str]) -> int:
    from .report import write_report

    args = build_parser().parse_args(["report", *argv])
    from vm_common.errors import InputFileError

    missing = [str(d) for d in args.runs if not Path(d).is_dir()]
    if missing:  # before the output folder is created
        raise InputFileError(f"run folder(s) not found: {', '.join(missing)}")
    with hold_output_folder(args.out):
        write_report(args.runs, args.out, layout=args.layout, title=args.title)
    _print_tables(args.out)
    return 0


def _print_tables(out_dir: Path) -> None:
    sys.stdout.write((Path(out_dir) / "table.md").read_text())


def cmd_export(argv: list[str]) -> int:
    from .export import cmd_export as export

    return export(argv)


COMMANDS = {"run": cmd_run, "score": cmd_score, "report": cmd_report, "export": cmd_export}


def build_parser() -> argparse.ArgumentParser:
    """`vm bench` with one subparser per subcommand, so that `vm bench run --help` lists every option."""
    from .tables import LAYOUTS

    parser = argparse.ArgumentParser(prog="vm bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    run = sub.add_parser("run", help="generate and score a benchmark", description="generate and score a benchmark "
                         "(resumable; accelerate launch shards it)")
    run.add_argument("--config", type=Path, default=None, help="YAML file of options (nested: sources:, generation:)")
    add_dataclass_arguments(run, RunConfig, presets=RUN_PRESETS)
    score = sub.add_parser("score", help="score existing videos of any method",
                           description="score existing videos of any method (resumable; shardable)")
    score.add_argument("--config", type=Path, default=None, help="YAML file of options")
    add_dataclass_arguments(score, ScoreConfig)
    report = sub.add_parser("report", help="tables and report.html from run folders",
                            description="tables and report.html from run folders")
    report.add_argument("runs", nargs="+", type=Path, help="run folders (each with samples.jsonl)")
    report.add_argument("--out", type=Path, required=True, help="output folder")
    report.add_argument("--layout", choices=LAYOUTS, default="paper",
                        help="paper: Table 1 (human) / Table 2 (object); ablation: Table 3, rows in the given order")
    report.add_argument("--title", default=None, help="report title")
    from .export import add_export_arguments

    export = sub.add_parser("export", help="a run's videos named as VBench's / OpenS2V-Eval's own tools expect",
                            description="a run's videos named as VBench's / OpenS2V-Eval's own tools expect "
                                        "(vm_eval.export)")
    add_export_arguments(export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    build_parser().parse_args(argv)  # --help, or an error naming the valid subcommands (exit 2)
    return 2


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
