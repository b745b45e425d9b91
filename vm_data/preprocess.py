"""`vm preprocess-dataset`: subject-highlight preprocessing of a video dataset into a training manifest.

    vm preprocess-dataset --input SRC --output OUT [--preset tiny|full] [--resume | --overwrite]
    accelerate launch -m vm_data.preprocess --input SRC --output OUT          # several GPUs / processes

Output folder::

    OUT/manifest.jsonl        one row per input clip: kept / rejected (reason) / error (message)
    OUT/summary.json          counts per status and reason, throughput, random_weights
    OUT/run.json              resolved config, provenance, weights used
    OUT/references/xx/ID_k.png, OUT/masks/xx/ID_k.png
    OUT/references/xx/ID/S-NAME_k.png, OUT/masks/xx/ID/S-NAME.npz   with --subjects: per subject S (schema 2)
    OUT/shards/clips-NNNNN.jsonl  per-process rows (the resume state; merged into manifest.jsonl)
    OUT/shards/stats-NNNNN.json   per-process throughput of the last run

``--subjects "dog.,cat."`` (one detector prompt per subject) preprocesses multi-subject clips: every subject gets
its own references and a mask for every frame of the clip (:mod:`vm_data.multi_subject`); a clip where a subject
is not found is rejected with a reason naming it (``no_detection:cat``). Every frame of such a clip is decoded.

Every process appends finished rows to its own shard file (one write + fsync per batch) after their PNGs were
written and renamed into place, so a run killed at any moment loses at most the batch in flight. ``--resume``
drops a torn last line, deletes temporary files of interrupted writes and skips every clip that has a row (shards
named ``rank-NNNNN.jsonl`` by earlier versions are read as well). ``--resume`` refuses (exit 2, naming the keys)
when the options that decide the rows differ from those in ``OUT/run.json``: the rows already there would not
match the rest (``--overwrite`` starts again). Clip ``i`` (in the input's stable order) belongs to process
``i % num_processes`` (:func:`vm_common.distributed.split_for_process`).

A bug in our code while processing a clip (see :mod:`vm_common.error_policy`) is recorded as an ``error`` row of
kind ``internal_error`` (``VM_ERROR_POLICY=raise``: it propagates); the command then exits 1 saying how many.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


from vm_common.config import ConfigError, add_dataclass_arguments, build_config, config_to_dict
from vm_common.distributed import SHARD_DIR, process_info, shard_files, shard_path, split_for_process
from vm_common.error_policy import INTERNAL_ERROR, ErrorPolicy, internal_errors_message
from vm_common.errors import StaleOutputError, run_main
from vm_common.fingerprint import config_changes
from vm_common.io_utils import append_jsonl, atomic_write_json, atomic_write_text, dumps_row, read_jsonl, repair_jsonl
from vm_common.output_lock import hold_output_folder, remove_orphan_temporaries
from vm_common.provenance import provenance
from vm_common.status import ERROR, KEPT, REJECTED
from vm_common.tiny import PRESETS

from .clip_manifest import ManifestRow
from .clip_processing import ClipRules, Prepared, finish_clips, prepare_clip
from .highlight import HighlightConfig, load_highlighter
from .multi_subject import parse_subjects
from .sources import CELEBV_DEFAULT_FIELDS, FORMATS, ClipSpec, discover

logger = logging.getLogger(__name__)

STATE_NAMES = ("manifest.jsonl", "summary.json", "run.json", SHARD_DIR, "references", "masks")
ROWS_SHARD = "clips"  # shards/clips-NNNNN.jsonl: one row per finished clip
OLD_ROWS_SHARDS = ("rank",)  # shards/rank-NNNNN.jsonl, the name earlier versions wrote; still read
STATS_SHARD = "stats"  # shards/stats-NNNNN.json


@dataclass
class PreprocessConfig:
    """Options of `vm preprocess-dataset` (the highlight thresholds are the nested :class:`HighlightConfig`)."""

    input: Path | None = field(default=None, metadata={"help": "folder of videos, CSV/JSONL manifest, CelebV-Text or "
                                                                "VideoBooth root"})
    output: Path | None = field(default=None, metadata={"help": "output folder"})
    preset: str = field(default="full", metadata={"help": "full: real weights; tiny: tiny random models",
                                                  "choices": list(PRESETS)})
    input_format: str = field(default="auto", metadata={"help": "input layout", "choices": list(FORMATS)})
    video_root: Path | None = field(default=None, metadata={"help": "VideoBooth: folder with <page_dir>/<id>.mp4 "
                                                                     "(default INPUT/videos)"})
    celebv_caption_fields: list[str] = field(default_factory=lambda: list(CELEBV_DEFAULT_FIELDS), metadata={
        "help": "CelebV-Text attribute folders joined into the caption"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run in OUTPUT"})
    overwrite: bool = field(default=False, metadata={"help": "delete previous results in OUTPUT first"})
    num_references: int = field(default=4, metadata={"help": "frames sampled per clip (K), each a reference",
                                                     "min": 1, "max": 1000})
    min_references: int = field(default=1, metadata={"help": "keep a clip when at least this many frames pass",
                                                     "min": 1})
    multi_subject_frames: int = field(default=1, metadata={
        "help": "reject a clip as multiple_subjects when at least this many sampled frames show several", "min": 1})
    subjects: list[str] = field(default_factory=list, metadata={
        "help": "multi-subject clips: one detector prompt per subject, comma-separated ('dog.,cat.'); each subject "
                "gets its own references and a mask for every frame (manifest schema 2, docs/data.md)"})
    subject_detect_every: int = field(default=1, metadata={
        "help": "with --subjects: run the detector on every N-th frame (and the reference frames); boxes between "
                "are interpolated, the segmenter still runs on every frame", "min": 1, "max": 1000})
    subject_mask_side: int = field(default=256, metadata={
        "help": "with --subjects: longer side of the stored per-frame masks in pixels (0: the video's size)",
        "min": 0, "max": 16384})
    person_prompt: str = field(default="head", metadata={"help": "detector prompt for clips without a class word"})
    class_word: str | None = field(default=None, metadata={"help": "class word for every clip that has none "
                                                                    "(objects: 'dog', 'car' ...)"})
    require_caption: bool = field(default=True, metadata={"help": "reject clips without a caption"})
    min_frames: int = field(default=16, metadata={"help": "reject clips with fewer frames", "min": 1})
    min_duration: float = field(default=1.0, metadata={"help": "reject clips shorter than this (seconds)", "min": 0})
    min_short_side: int = field(default=256, metadata={"help": "reject clips whose shorter side is smaller (px)",
                                                       "min": 1})
    max_long_side: int = field(default=4096, metadata={"help": "reject clips whose longer side is larger (px)",
                                                       "min": 1})
    detector: str | None = field(default=None, metadata={
        "help": "Grounding DINO weights (folder or hub id; default IDEA-Research/grounding-dino-tiny) or a backend "
                "name: grounding-dino, synthetic-color (tests only)"})
    segmenter: str | None = field(default=None, metadata={
        "help": "SAM checkpoint (path or owner/repo/file.pth) or a backend name: sam, synthetic-color (tests only)"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: this process's accelerate "
                                                                 "device)"})
    batch_clips: int = field(default=8, metadata={"help": "clips per model batch (x K frames)", "min": 1})
    num_workers: int | None = field(default=None, metadata={
        "help": "decoding worker processes per process (default: min(4, CPUs per process - 2); 0 decodes in the "
                "main process, best on machines with few cores)", "min": 0, "max": 256})
    limit: int | None = field(default=None, metadata={"help": "only the first N clips of the input", "min": 1})
    log_every: float = field(default=30.0, metadata={"help": "seconds between throughput log lines", "gt": 0})
    config: Path | None = field(default=None, metadata={"help": "YAML file with any of these options", "cli": False})
    highlight: HighlightConfig = field(default_factory=HighlightConfig, metadata={
        "group": "subject highlight", "help": "thresholds and reference layout (YAML: a nested highlight: mapping)"})

    def rules(self) -> ClipRules:
        return ClipRules(
            num_references=self.num_references, min_frames=max(self.min_frames, self.num_references, 1),
            min_duration=self.min_duration, min_short_side=self.min_short_side, max_long_side=self.max_long_side,
            require_caption=self.require_caption, min_references=self.min_references,
            multi_subject_frames=self.multi_subject_frames, person_prompt=self.person_prompt,
            default_class_word=self.class_word, subjects=tuple(self.subjects),
            detect_every=self.subject_detect_every, mask_side=self.subject_mask_side,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vm preprocess-dataset", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML file with any of the options below")
    add_dataclass_arguments(parser, PreprocessConfig)
    return parser


def resolve_configs(argv: list[str]) -> tuple[PreprocessConfig, HighlightConfig]:
    """defaults < YAML (``--config``; the thresholds under a nested ``highlight:`` mapping) < flags."""
    args = build_parser().parse_args(argv)
    pre = build_config(PreprocessConfig, args, args.config)
    pre.config = args.config
    if pre.input is None or pre.output is None:
        raise ConfigError("--input and --output are required")
    if pre.resume and pre.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if pre.min_references > pre.num_references:
        raise ConfigError(f"--min-references ({pre.min_references}) cannot exceed --num-references "
                          f"({pre.num_references})")
    try:
        pre.subjects = parse_subjects(pre.subjects)
    except ValueError as exc:
        raise ConfigError(f"--subjects: {exc}") from None
    pre.input = Path(os.path.abspath(pre.input.expanduser()))  # recorded in run.json: comparable on --resume
    if pre.video_root is not None:
        pre.video_root = Path(os.path.abspath(pre.video_root.expanduser()))
    return pre, pre.highlight


# ----------------------------------------------------------------------------------------------- run state
# options that change how fast a run goes or where it looks, never what a row says
RESUME_IGNORED = ("resume", "overwrite", "device", "num_workers", "batch_clips", "log_every", "limit", "config",
                  "output", "highlight.detector_batch_size", "highlight.segmenter_batch_size")
PATH_KEYS = ("input", "video_root")  # runs of earlier versions stored them as given: compared absolute
# options added later: a run.json of an earlier version lacks them and was made with these values
ADDED_DEFAULTS = {"subjects": [], "subject_detect_every": 1, "subject_mask_side": 256}


def check_resume_config(cfg: PreprocessConfig, out: Path) -> None:
    """Refuse (:class:`StaleOutputError`, naming the keys) to resume a run whose result-deciding options differ
    from those recorded in ``out/run.json``."""
    path = out / "run.json"
    if not path.is_file():
        return  # killed before run.json was written (before any clip was processed): nothing to compare
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("config")
    except (OSError, ValueError, AttributeError) as exc:
        raise StaleOutputError(f"{path} is unreadable ({exc}); cannot prove the rows in {out} match this "
                               f"configuration: pass --overwrite to start again") from None
    if not isinstance(stored, dict):
        raise StaleOutputError(f"{path} records no configuration; pass --overwrite to start again")
    stored = {**ADDED_DEFAULTS, **stored}
    # the multi-subject options decide nothing when neither run has subjects
    unused = () if (cfg.subjects or stored.get("subjects")) else ("subject_detect_every", "subject_mask_side")
    changes = config_changes(stored, config_to_dict(cfg), ignore=RESUME_IGNORED + unused, paths=PATH_KEYS)
    if changes:
        listed = "; ".join(changes[:10]) + (f"; ... ({len(changes)} in all)" if len(changes) > 10 else "")
        raise StaleOutputError(f"--resume: the configuration differs from the run in {out} ({listed}); its rows "
                               f"were made with the old one. Resume with the same options, or pass --overwrite "
                               f"(instead of --resume) to start again")


def _has_state(out: Path) -> bool:
    return any((out / name).exists() for name in ("manifest.jsonl", SHARD_DIR))


def row_shards(out: Path) -> list[Path]:
    """Every process's row shard in ``out`` (either naming), by process index."""
    return shard_files(out, ROWS_SHARD, old_kinds=OLD_ROWS_SHARDS)


def done_clip_ids(out: Path) -> set[str]:
    done: set[str] = set()
    for path in row_shards(out):
        done.update(row["clip_id"] for row in read_jsonl(path) if "clip_id" in row)
    return done


def _prepare_output(cfg: PreprocessConfig, out: Path) -> None:
    """Main process only: wipe (--overwrite) or repair (--resume) the output folder."""
    if cfg.overwrite:
        for name in STATE_NAMES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / SHARD_DIR).mkdir(exist_ok=True)
    if cfg.resume:
        for path in row_shards(out):
            repair_jsonl(path)
        removed = remove_orphan_temporaries(out, older_than=time.time())  # this run holds the folder alone
        if removed:
            logger.info("resume: removed %d temporary file(s) of interrupted writes", removed)


class _ClipLoader:
    """Map-style dataset for the torch DataLoader: decoding runs in worker processes, ahead of the models."""

    def __init__(self, specs: list[ClipSpec], rules: ClipRules, policy: ErrorPolicy):
        self.specs, self.rules, self.policy = specs, rules, policy

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> Prepared:
        return prepare_clip(self.specs[i], self.rules, self.policy)


def _collate(batch: list[Prepared]) -> list[Prepared]:
    return batch


# ---------------------------------------------------------------------------------------------------- run
def run(cfg: PreprocessConfig, hl_cfg: HighlightConfig) -> int:
    """Preprocess into ``cfg.output``, holding it alone (``vm_common.output_lock``; the main process holds it for
    all processes of a launched run)."""
    proc = process_info(cfg.device)
    with hold_output_folder(Path(cfg.output).expanduser(), is_main=proc.is_main):
        return _run_holding_output(cfg, hl_cfg, proc)


def _run_holding_output(cfg: PreprocessConfig, hl_cfg: HighlightConfig, proc) -> int:
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    rank, world = proc.index, proc.count
    out = Path(cfg.output).expanduser()
    has_state = _has_state(out)
    if has_state and cfg.resume:
        check_resume_config(cfg, out)
    proc.barrier()  # every process looks before the main process changes anything
    if has_state and not (cfg.resume or cfg.overwrite):
        logger.error("%s already holds a preprocessing run; pass --resume to continue it or --overwrite to "
                     "start again", out)
        return 2
    if proc.is_main:
        _prepare_output(cfg, out)
    proc.barrier()

    specs = discover(cfg.input, cfg.input_format, video_root=cfg.video_root,
                     celebv_fields=tuple(cfg.celebv_caption_fields))
    if cfg.limit is not None:
        specs = specs[: cfg.limit]
    done = done_clip_ids(out)
    mine = [s for s in split_for_process(specs, proc) if s.clip_id not in done]
    logger.info("process %d/%d: %d clips in the input, %d already done, %d to do here", rank, world, len(specs),
                len(done & {s.clip_id for s in specs}), len(mine))

    policy = ErrorPolicy.from_env()
    highlighter = load_highlighter(cfg.preset, device=proc.device, config=hl_cfg, detector=cfg.detector,
                                   segmenter=cfg.segmenter, policy=policy)
    random_weights = cfg.preset == "tiny" or highlighter.random_weights
    if proc.is_main:
        atomic_write_json(out / "run.json", {
            "command": "preprocess-dataset", "config": config_to_dict(cfg), "highlight": config_to_dict(hl_cfg),
            "num_processes": world, "random_weights": random_weights,
            "backends": {"detector": getattr(highlighter.detector, "name", type(highlighter.detector).__name__),
                         "detector_source": getattr(highlighter.detector, "source", None),
                         "segmenter": getattr(highlighter.segmenter, "name", type(highlighter.segmenter).__name__)},
            "provenance": provenance(),
        })

    rules = cfg.rules()
    workers = auto_workers(world) if cfg.num_workers is None else max(0, cfg.num_workers)
    loader = DataLoader(_ClipLoader(mine, rules, policy), batch_size=max(1, cfg.batch_clips), shuffle=False,
                        num_workers=workers, collate_fn=_collate, prefetch_factor=2 if workers > 0 else None)
    my_shard = shard_path(out, ROWS_SHARD, rank)
    counts: Counter[str] = Counter()
    start = last_log = time.perf_counter()
    processed = 0
    bar = tqdm(total=len(mine), unit="clip", desc=f"preprocess[{rank}]", disable=not proc.is_main,
               dynamic_ncols=True, mininterval=1.0)
    for batch in loader:
        rows = finish_clips(batch, highlighter, rules, out, policy)
        append_jsonl(my_shard, (r.to_dict() for r in rows))
        processed += len(rows)
        counts.update(_count_key(r) for r in rows)
        bar.update(len(rows))
        now = time.perf_counter()
        if now - last_log >= cfg.log_every:
            last_log = now
            logger.info("process %d: %d/%d clips, %.2f clips/s", rank, processed, len(mine),
                        processed / max(now - start, 1e-9))
    bar.close()
    elapsed = time.perf_counter() - start
    logger.info("process %d: %d clips in %.1f s (%.2f clips/s)", rank, processed, elapsed,
                processed / max(elapsed, 1e-9))
    atomic_write_json(shard_path(out, STATS_SHARD, rank, ".json"), {
        "rank": rank, "processed": processed, "seconds": elapsed, "counts": dict(counts)})

    proc.barrier()
    code = 0
    if proc.is_main:
        code = merge(out, specs, world=world, random_weights=random_weights)
    proc.finish()
    return code


def auto_workers(num_processes: int) -> int:
    """Decoding workers per process: none on small machines, where they only compete with the models for cores."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cpus // max(1, num_processes) - 2))


def _count_key(row: ManifestRow) -> str:
    if row.status == KEPT:
        return KEPT
    if row.status == ERROR:
        return f"{ERROR}:{row.extra.get('error_kind', ERROR)}"
    return f"{REJECTED}:{row.reason}"


def merge(out: Path, specs: list[ClipSpec], *, world: int, random_weights: bool) -> int:
    """Merge the shard files into ``manifest.jsonl`` in input order (one row per clip) and write the summary."""
    by_id: dict[str, dict] = {}
    for path in row_shards(out):
        for row in read_jsonl(path):
            by_id.setdefault(row.get("clip_id"), row)
    rows, missing = [], []
    for spec in specs:
        row = by_id.get(spec.clip_id)
        if row is None:
            missing.append(spec.clip_id)
        else:
            rows.append(row)
    stale = len(set(by_id) - {s.clip_id for s in specs})
    if stale:
        logger.warning("%d row(s) in %s/shards belong to clips no longer in the input; left out of the manifest",
                       stale, out)
    atomic_write_text(out / "manifest.jsonl", "".join(dumps_row(r) + "\n" for r in rows))

    statuses = Counter(r["status"] for r in rows)
    reasons = Counter(r["reason"] for r in rows if r["status"] == REJECTED)
    errors = Counter((r.get("extra") or {}).get("error_kind", ERROR) for r in rows if r["status"] == ERROR)
    stats = [json.loads(p.read_text()) for p in shard_files(out, STATS_SHARD, ".json")]
    this_run = sum(s["processed"] for s in stats)
    seconds = max((s["seconds"] for s in stats), default=0.0)
    summary = {
        "clips": len(specs), "rows": len(rows), "missing": len(missing), "missing_clip_ids": missing[:100],
        "status": dict(statuses), "rejected_reasons": dict(reasons), "error_kinds": dict(errors),
        "kept_fraction": statuses.get(KEPT, 0) / max(1, len(rows)),
        "throughput": {"clips_this_run": this_run, "seconds": seconds,
                       "clips_per_second": this_run / seconds if seconds > 0 else None, "num_processes": world},
        "random_weights": random_weights,
    }
    atomic_write_json(out / "summary.json", summary)
    logger.info("manifest: %d rows (%s); rejected: %s; errors: %s -> %s", len(rows), dict(statuses), dict(reasons),
                dict(errors), out / "manifest.jsonl")
    if random_weights:
        logger.warning("random weights (tiny preset): references and decisions are meaningless, for testing only")
    if missing:
        logger.error("%d clip(s) have no row (a process failed?): %s ...; run again with --resume", len(missing),
                     missing[:5])
        return 1
    if errors.get(INTERNAL_ERROR):
        logger.error("%s", internal_errors_message(errors[INTERNAL_ERROR], str(out / "manifest.jsonl")))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes (:mod:`vm_common.errors`): 0 done, 2 a user error (one message), 1 an internal error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_main("vm preprocess-dataset", lambda: _main(argv))


def _main(argv: list[str]) -> int:
    cfg, hl_cfg = resolve_configs(argv)
    if not cfg.input.exists():  # before the output folder is created
        raise ConfigError(f"--input not found: {cfg.input}")
    return run(cfg, hl_cfg)


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
