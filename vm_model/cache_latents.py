"""`vm cache-latents`: encode the kept clips of a training manifest once, for `vm train --latent-cache`.

    vm cache-latents --data OUT/manifest.jsonl --output /data/celebv-latents [--dtype fp16] [--resume | --overwrite]
    accelerate launch -m vm_model.cache_latents --data OUT/manifest.jsonl --output /data/celebv-latents

Per kept clip (those `vm train` would use with the same --num-frames): the VAE latent mean and std of every frame a
training window can contain (at --frame-stride; every frame unless the clip is short), the latent means of its
unaugmented references and its caption's text embedding, at --resolution, encoded in --dtype (fp32 for a run
without mixed precision, fp16 / bf16 for `--mixed-precision fp16` / `bf16`). The format: docs/model.md and
:mod:`vm_model.latent_cache`. Only the base model's VAE (or --vae), text encoder and tokenizer are loaded.

Clip ``i`` of the manifest's kept clips belongs to process ``i % num_processes``. Each clip's file is written
atomically, and each process logs what it encoded to ``shards/latents-NNNNN.jsonl``; at the end the main process
writes ``index.json`` from the files themselves. ``--resume`` skips every clip whose file exists and was made with
the same settings from the same manifest row (a clip whose row changed is encoded again), so a killed run resumed
encodes each clip exactly once; it refuses a folder made with other settings, naming them (``--overwrite`` starts
again).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vm_common.config import ConfigError, add_dataclass_arguments, build_config, config_to_dict
from vm_common.distributed import SHARD_DIR, process_info, shard_files, shard_path, split_for_process
from vm_common.error_policy import INTERNAL_ERROR, ErrorPolicy, internal_errors_message
from vm_common.errors import StaleOutputError, run_main
from vm_common.io_utils import append_jsonl, read_jsonl, repair_jsonl
from vm_common.media import VideoReadError
from vm_common.output_lock import hold_output_folder
from vm_common.provenance import provenance

from .latent_cache import store
from .latent_cache.encoder import ClipEncoder
from .latent_cache.settings import DTYPES, cache_settings, mismatches, settings_digest
from .presets import PRESET_HELP, PRESETS, presets_for
from .sources import ModelSources
from .train import TRAIN_PRESETS

logger = logging.getLogger(__name__)

# the shapes of `vm train --preset tiny`, so that a tiny cache fits a tiny run
TINY_SHAPES = {key: TRAIN_PRESETS["tiny"][key] for key in ("num_frames", "frame_stride", "resolution")}


@dataclass
class CacheConfig:
    """Options of `vm cache-latents`."""

    data: Path | None = field(default=None, metadata={"help": "manifest.jsonl of `vm preprocess-dataset` (its kept "
                                                               "clips are encoded)"})
    output: Path | None = field(default=None, metadata={"help": "cache folder"})
    preset: str = field(default="full", metadata={"help": PRESET_HELP, "choices": sorted(PRESETS)})
    sources: ModelSources = field(default_factory=ModelSources, metadata={
        "group": "model sources", "help": "only the base model's text encoder and tokenizer and the VAE (the "
                                          "base's, or --vae) are used"})
    num_frames: int = field(default=16, metadata={"help": "frames per training clip (decides which clips are kept "
                                                          "and which frames a window can contain)", "min": 1})
    frame_stride: int = field(default=8, metadata={"help": "training frame stride", "min": 1})
    resolution: int = field(default=512, metadata={"help": "training resolution (square)", "min": 8})
    dtype: str = field(default="fp32", metadata={
        "help": "dtype the encoders run in and the latents are stored in; `vm train` needs the one it encodes in: "
                "fp32 without mixed precision, fp16 / bf16 with --mixed-precision fp16 / bf16",
        "choices": sorted(DTYPES)})
    device: str | None = field(default=None, metadata={"help": "torch device (default: this process's accelerate "
                                                                 "device)"})
    batch_frames: int = field(default=16, metadata={"help": "frames per VAE call", "min": 1})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted cache in --output"})
    overwrite: bool = field(default=False, metadata={"help": "delete an existing cache in --output first"})
    limit: int | None = field(default=None, metadata={"help": "only the first N kept clips", "min": 1})

    def settings(self) -> dict:
        return cache_settings(self.sources, resolution=self.resolution, num_frames=self.num_frames,
                              frame_stride=self.frame_stride, dtype=self.dtype)


CACHE_PRESETS = presets_for({"tiny": TINY_SHAPES}, keys=("sources",))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vm cache-latents", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="YAML file of CacheConfig keys")
    add_dataclass_arguments(parser, CacheConfig, presets=CACHE_PRESETS)
    return parser


def resolve_config(argv: list[str]) -> CacheConfig:
    """defaults < preset < YAML < flags (``vm_common.config.build_config``)."""
    args = build_parser().parse_args(argv)
    cfg = build_config(CacheConfig, args, args.config, presets=CACHE_PRESETS)
    if cfg.data is None or cfg.output is None:
        raise ConfigError("--data and --output are required")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if not Path(cfg.data).is_file():
        raise ConfigError(f"--data: manifest not found: {cfg.data}")
    return cfg


# ------------------------------------------------------------------------------------------------- one clip
def encode_clip(clips, i: int, encoder: ClipEncoder) -> dict[str, torch.Tensor]:
    """Clip ``i`` of ``clips`` (a :class:`vm_data.dataset.VideoClipDataset`) -> the tensors of its cache file."""
    from vm_data.video import read_frames

    row, length = clips.rows[i], clips.lengths[i]
    frames = store.sampleable_frames(length, clips.num_frames, clips.frame_stride)
    video_path = row.resolve(row.video, clips.base)
    means, stds = [], []
    for start in range(0, len(frames), encoder.batch_frames):  # decode a chunk, encode it: memory stays bounded
        chunk = frames[start:start + encoder.batch_frames]
        decoded = read_frames(video_path, chunk)
        if decoded.missing:
            raise VideoReadError(f"clip {row.clip_id} ({video_path}): frames {decoded.missing[:8]} could not be "
                                 f"decoded ({decoded.warning}); the manifest says it has {length} frames")
        mean, std = encoder.frames(clips.video_tensor(decoded.frames))
        means.append(mean)
        stds.append(std)
    references = torch.stack([clips.reference_tensor(row.resolve(ref, clips.base)).mul_(2).sub_(1)
                              for ref in row.references])
    return {store.FRAME_INDICES: torch.tensor(frames, dtype=torch.int64), store.FRAME_MEAN: torch.cat(means),
            store.FRAME_STD: torch.cat(stds), store.REFERENCE_MEAN: encoder.references(references),
            store.TEXT: encoder.text([row.caption])[0]}


# ------------------------------------------------------------------------------------------------------ run
def run(cfg: CacheConfig) -> int:
    """Encode into ``cfg.output``, holding it alone (the main process holds it for all processes of a launch)."""
    proc = process_info(cfg.device)
    out = Path(cfg.output).expanduser()
    with hold_output_folder(out, is_main=proc.is_main):
        return _run_holding_output(cfg, out, proc)


def _check_existing(cfg: CacheConfig, out: Path, settings: dict) -> None:
    has_state = any((out / name).exists() for name in store.STATE_NAMES)
    if not has_state or cfg.overwrite:
        return
    if not cfg.resume:
        raise StaleOutputError(f"{out} already holds a latent cache; pass --resume to continue it or --overwrite to "
                               f"make it again")
    if (out / store.INDEX).exists():
        index = store.read_index(out, complete=False)
        diffs = mismatches(index.get("settings"), settings)
        if diffs:
            raise StaleOutputError(f"--resume: {out} was made with other settings ({'; '.join(diffs)}); resume with "
                                   f"the same options, or pass --overwrite (instead of --resume) to start again")


def _prepare_output(cfg: CacheConfig, out: Path) -> None:
    """Main process only: wipe (--overwrite) or repair (--resume) the cache folder."""
    if cfg.overwrite:  # only what a cache consists of: anything else in the folder is left alone
        for name in store.STATE_NAMES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        for path in shard_files(out, store.SHARD_KIND):
            repair_jsonl(path)
        removed = 0
        for path in list(out.rglob(".*.tmp*")):  # temporary files of writes a kill interrupted
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            logger.info("resume: removed %d temporary file(s) of interrupted writes", removed)


def _run_holding_output(cfg: CacheConfig, out: Path, proc) -> int:
    from tqdm.auto import tqdm

    from vm_data.dataset import VideoClipDataset

    from .components import load_base_components

    with proc_main_first(proc):  # may build the tiny preset's components: the main process first, the others read
        settings = cfg.settings()
    digest = settings_digest(settings)
    _check_existing(cfg, out, settings)
    proc.barrier()  # every process looks before the main process changes anything
    if proc.is_main:
        _prepare_output(cfg, out)
    clips = VideoClipDataset(cfg.data, num_frames=cfg.num_frames, frame_stride=cfg.frame_stride,
                             resolution=cfg.resolution, augment=None)
    count = min(len(clips), cfg.limit or len(clips))
    header = {"complete": False, "settings": settings, "settings_digest": digest,
              "manifest": str(Path(cfg.data).resolve()), "config": config_to_dict(cfg),
              "random_weights": cfg.sources.random_weights}
    if proc.is_main:
        store.write_index(out, {**header, "clips": {}, "failed": {}})
    proc.barrier()

    todo, done = [], 0
    for i in split_for_process(range(count), proc):
        row = clips.rows[i]
        if store.is_current(store.clip_path(out, row.clip_id), digest, store.clip_digest(row, clips.lengths[i])):
            done += 1
        else:
            todo.append(i)
    logger.info("process %d/%d: %d kept clips, %d of mine already cached, %d to encode", proc.index, proc.count,
                count, done, len(todo))

    dtype = DTYPES[cfg.dtype]
    with proc_main_first(proc):  # the main process builds the tiny preset's components; the others only read
        comps = load_base_components(cfg.sources, dtype=dtype, parts=("vae", "text_encoder", "tokenizer"))
    encoder = ClipEncoder(comps["vae"], comps["text_encoder"], comps["tokenizer"], proc.device or "cpu", dtype,
                          cfg.batch_frames)
    if abs(encoder.scaling_factor - settings["vae"]["scaling_factor"]) > 1e-12:
        raise RuntimeError(f"VAE scaling factor {encoder.scaling_factor} != {settings['vae']['scaling_factor']} "
                           f"read from its config")
    if proc.is_main:
        store.write_clip(out / store.EMPTY_TEXT, {store.TEXT: encoder.text([""])[0]},
                         {"settings": digest, "clip": None})

    policy = ErrorPolicy.from_env()
    shard = shard_path(out, store.SHARD_KIND, proc.index)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="clip", desc=f"cache-latents[{proc.index}]", disable=not proc.is_main)
    for i in todo:
        row = clips.rows[i]
        clip = store.clip_digest(row, clips.lengths[i])
        t0 = time.perf_counter()
        try:
            tensors = encode_clip(clips, i, encoder)
        except Exception as exc:  # noqa: BLE001 - bad input is recorded; a bug follows the error policy
            bug = policy.check(exc, f"clip {row.clip_id}")
            logger.error("clip %s: not cached: %s", row.clip_id, exc)
            append_jsonl(shard, [{"clip_id": row.clip_id, "status": "error", "clip": clip,
                                  "error_kind": INTERNAL_ERROR if bug else type(exc).__name__, "reason": str(exc)}])
            bar.update(1)
            continue
        store.write_clip(store.clip_path(out, row.clip_id), tensors,
                         {"clip_id": row.clip_id, "settings": digest, "clip": clip, "caption": row.caption,
                          "references": list(row.references)})
        append_jsonl(shard, [{"clip_id": row.clip_id, "status": "ok", "clip": clip,
                              "file": store.clip_relpath(row.clip_id),
                              "frames": int(tensors[store.FRAME_INDICES].numel()),
                              "references": len(row.references), "seconds": time.perf_counter() - t0}])
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - start
    logger.info("process %d: %d clip(s) encoded in %.1f s", proc.index, len(todo), elapsed)

    proc.barrier()
    code = 0
    if proc.is_main:
        code = merge(out, clips, count, header, digest, num_processes=proc.count)
    proc.finish()
    return code


class proc_main_first:
    """``with proc_main_first(proc):`` the main process runs the block first, then the others."""

    def __init__(self, proc):
        self.proc = proc

    def __enter__(self):
        if not self.proc.is_main:
            self.proc.barrier()

    def __exit__(self, *exc):
        if self.proc.is_main:
            self.proc.barrier()
        return False


def merge(out: Path, clips, count: int, header: dict, digest: str, *, num_processes: int) -> int:
    """Write ``index.json`` from the clip files themselves (a file that exists and is current counts, whoever wrote
    it and whenever); the failures come from the shards' last word on each clip."""
    last: dict[str, dict] = {}
    for path in shard_files(out, store.SHARD_KIND):
        for row in read_jsonl(path):
            last[row.get("clip_id")] = row
    entries, failed = {}, {}
    internal = 0
    for i in range(count):
        row = clips.rows[i]
        clip = store.clip_digest(row, clips.lengths[i])
        path = store.clip_path(out, row.clip_id)
        meta = store.read_clip_metadata(path) if path.exists() else None
        if meta and meta.get("settings") == digest and meta.get("clip") == clip:
            entries[row.clip_id] = {"file": store.clip_relpath(row.clip_id), "clip": clip}
            continue
        note = last.get(row.clip_id) or {}
        failed[row.clip_id] = note.get("reason") if note.get("status") == "error" else "not encoded"
        internal += note.get("error_kind") == INTERNAL_ERROR
    store.write_index(out, {**header, "complete": not failed, "clips": entries, "failed": failed,
                            "skipped": {clip_id: reason for clip_id, reason in clips.skipped},
                            "num_processes": num_processes, "provenance": provenance()})
    logger.info("latent cache: %d clip(s) in %s (%d failed, %d left out by the frame rules)", len(entries),
                out / store.INDEX, len(failed), len(clips.skipped))
    if header.get("random_weights"):
        logger.warning("random weights (tiny preset): the latents are meaningless, for testing only")
    if internal:
        logger.error("%s", internal_errors_message(internal, str(out / SHARD_DIR)))
        return 1
    if failed:
        first = next(iter(failed.items()))
        logger.error("%d clip(s) could not be cached (first: %s: %s); fix them or drop them from the manifest, then "
                     "run again with --resume", len(failed), *first)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes (:mod:`vm_common.errors`): 0 done, 2 a user error (one message), 1 clips failed or a bug."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_main("vm cache-latents", lambda: run(resolve_config(argv)))


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
