"""The scoring loops behind ``vm bench run`` (generate + score) and ``vm bench score`` (score existing videos).

Both iterate over this process's share of the work (items split round-robin by process index with
:func:`vm_common.distributed.split_for_process`, so shards are disjoint), skip videos whose rows are all present
and carry the same fingerprint (resume; a different one is refused or, with ``overwrite``, made again: see
:mod:`vm_eval.resume`), score only the metrics a video has no row for yet (a suite added to a scored run: only
the new columns are computed; ``run`` reads such a video back from its saved file instead of generating it
again), and append all rows of a video in one write. Names from the benchmark or manifest
(method, subject id) become file names only through :func:`slug` and :func:`~vm_common.safe_names.path_inside`.
Generation is injected (``generate_fn(prompt, reference_image, seed) -> uint8 frames (F, H, W, 3)``), so the
runner never imports vm_model; :mod:`vm_eval.bench` wires the real pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from vm_common.distributed import ProcessInfo, split_for_process
from vm_common.error_policy import INTERNAL_ERROR
from vm_common.errors import UserError
from vm_common.fingerprint import file_digest, fingerprint
from vm_common.media import MediaError, load_image, open_image_as_stored, write_gif
from vm_common.safe_names import path_inside, safe_component
from vm_common.status import ERROR, OK, UNAVAILABLE
from vm_model.protocol import GenerationProtocol

from .bench_defs import Benchmark, Subject, WorkItem
from .results import MetricResult
from .resume import find_stale, resolve_stale, scoring_identity, stored_fingerprints
from .scorer import Reference, VideoScorer
from .store import SampleStore, read_samples
from .videoio import read_video_strict, read_video_with_info

logger = logging.getLogger(__name__)

GenerateFn = Callable[[str, Image.Image, int], np.ndarray]


class ReferenceImageError(UserError, ValueError):
    """A reference image is missing or unreadable; raised before any work starts."""


def slug(text: str) -> str:
    """A file-name component for a method name or subject id (never ``.``/``..``, no separators)."""
    return safe_component(text, "method")


def as_uint8_frames(frames, name: str) -> np.ndarray:
    """Generator output (float [0, 1] or uint8; (F,H,W,3) or (1,F,H,W,3)) -> uint8 (F, H, W, 3)."""
    arr = np.asarray(frames)
    if arr.ndim == 5 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected frames of shape (F, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: generated frames contain NaN/inf")
        arr = np.clip(np.round(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return arr


def load_references(paths: Mapping[str, str]) -> dict[str, Reference]:
    """Load every reference (key -> path) up front; a missing/unreadable one stops before any work. Each holds
    both readings: the corrected one (EXIF, white compositing) and the file as stored (the authors' reading,
    which the ``videomaker`` scoring protocol uses; see :meth:`VideoScorer.reference_image`)."""
    refs, problems = {}, []
    for key, path in paths.items():
        try:
            refs[key] = Reference(key, load_image(path), raw=open_image_as_stored(path))
        except MediaError as exc:
            problems.append(f"  - {key}: {exc}")
    if problems:
        raise ReferenceImageError("reference image(s) missing or unreadable; nothing was scored:\n"
                                  + "\n".join(problems))
    return refs


def result_rows(base: dict, results: Mapping[str, MetricResult]) -> list[dict]:
    return [dict(base, metric=m, value=r.value, status=r.status, reason=r.reason, detail=r.detail)
            for m, r in results.items()]


def _progress(total: int, desc: str, proc: ProcessInfo, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc if proc.count == 1 else f"{desc} [{proc.index}/{proc.count}]",
                unit="video", position=proc.index, disable=not enabled, dynamic_ncols=True)


@dataclass
class LoopStats:
    total: int = 0  # work items of the whole run
    mine: int = 0  # this process's share
    skipped: int = 0  # already present (resume)
    done: int = 0
    errors: int = 0  # rows with status error written by this process
    internal_errors: int = 0  # videos with a bug recorded as an internal error (record policy): exit 1
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def record(self, store: SampleStore, rows: list[dict]) -> None:
        """Append one video's rows to the store and count them."""
        store.append(rows)
        self.done += 1
        self.errors += sum(r["status"] == ERROR for r in rows)
        self.internal_errors += _internal(rows)


# ---------------------------------------------------------------------------------------------------- bench run
@dataclass
class ReferencePrep:
    image: Image.Image  # what the generator gets
    info: dict  # recorded in the rows and run.json


def prepare_reference(subject: Subject, image: Image.Image, size: tuple[int, int], highlighter, enabled: bool,
                      save_to: Path) -> ReferencePrep:
    """Subject highlight (vm_data) when the benchmark asks for it, else / on failure the raw image; resized."""
    info: dict = {"method": "raw", "status": OK, "reason": ""}
    out = image
    if enabled:
        if highlighter is None:
            info = {"method": "raw", "status": UNAVAILABLE,
                    "reason": "subject highlight requested but vm_data.highlight is not available"}
        else:
            res = highlighter.highlight(image, subject.highlight_text)
            if res.status == OK and res.image is not None:
                out, info = res.image, {"method": "subject-highlight", "status": OK, "reason": "",
                                        "text": subject.highlight_text}
            else:
                info = {"method": "raw", "status": res.status, "text": subject.highlight_text,
                        "reason": res.reason or f"subject highlight failed ({res.status}); raw image used"}
                if getattr(res, "internal", False):
                    info["error_kind"] = INTERNAL_ERROR
                logger.warning("%s: subject highlight %s (%s); using the raw image", subject.id, res.status,
                               info["reason"])
    out = out.convert("RGB").resize(size, Image.BICUBIC)
    save_to.parent.mkdir(parents=True, exist_ok=True)
    out.save(save_to)
    return ReferencePrep(out, info)


def _internal(rows: list[dict]) -> bool:
    return any((r.get("detail") or {}).get("error_kind") == INTERNAL_ERROR for r in rows)


def plan_run(items: list[WorkItem], *, method: str, protocol: GenerationProtocol, highlight: bool, scorer,
             identity: Mapping[str, Mapping[str, Any]] | None = None) -> dict[tuple[str, str], dict[str, str]]:
    """(method, sample_id) -> the fingerprint of each planned video of ``bench run`` (see :mod:`vm_eval.resume`).
    ``identity``: subject kind -> further parts (the model sources of that kind)."""
    digests = {s.id: file_digest(s.image) for s in {it.subject.id: it.subject for it in items}.values()}
    proto, scoring = dataclasses.asdict(protocol), scoring_identity(scorer)
    return {(method, it.sample_id): fingerprint({
        "protocol": proto, "reference": digests[it.subject.id], "prompt": it.prompt.text, "seed": it.seed,
        "highlight": it.subject.highlight_text if highlight else False, "scoring": scoring,
        **(identity or {}).get(it.subject.kind, {})}) for it in items}


def run_items(bench: Benchmark, items: list[WorkItem], out_dir: Path, *, method: str, protocol: GenerationProtocol,
              scorer: VideoScorer, generate_fn: GenerateFn | Mapping[str, GenerateFn], highlight: bool = True,
              highlighter=None, proc: ProcessInfo | None = None, progress: bool = True,
              common: dict | None = None, identity: Mapping[str, Mapping[str, Any]] | None = None,
              overwrite: bool = False, batch_size: int = 1) -> LoopStats:
    """Generate and score this process's share of ``items``; rows go to the run's sample store. ``protocol``
    gives the size and fps (the generate functions apply the rest); ``highlight`` subject-highlights references.
    ``identity`` (subject kind -> parts, say the model sources) joins each video's fingerprint; rows of this
    method with another fingerprint refuse the run (:class:`~vm_common.errors.StaleOutputError`) unless
    ``overwrite``, which makes them again. ``batch_size``: videos of one subject per generation call when the
    generate function offers ``many(prompts, reference_image, seeds)`` (each video keeps its own seed)."""
    proc = proc or ProcessInfo()
    out_dir = Path(out_dir)
    store = SampleStore(out_dir, proc)
    refs = load_references({it.subject.id: it.subject.image for it in items})
    planned = plan_run(items, method=method, protocol=protocol, highlight=highlight, scorer=scorer,
                       identity=identity)
    stale = find_stale(stored_fingerprints(read_samples(out_dir), {method}), planned)
    resolve_stale(stale, out_dir, overwrite=overwrite, proc=proc)
    existing = store.existing()
    mine = split_for_process(items, proc)
    todo = [it for it in mine
            if not all((method, it.sample_id, m) in existing for m in scorer.metrics_for(it.subject.kind))]
    stats = LoopStats(total=len(items), mine=len(mine), skipped=len(mine) - len(todo))
    if stats.skipped:
        logger.info("resume: %d of %d videos already scored, %d to go", stats.skipped, len(mine), len(todo))
    t0 = time.perf_counter()
    todo = _rescore_saved_videos(todo, out_dir, method=method, scorer=scorer, store=store, stats=stats,
                                 existing=existing, planned=planned, proc=proc, progress=progress)
    preps: dict[str, ReferencePrep] = {}
    with _progress(len(todo), f"bench run {bench.name}", proc, progress) as bar:
        for group in subject_batches(todo, batch_size):
            s = group[0].subject
            if s.id not in preps:
                preps[s.id] = prepare_reference(s, refs[s.id].image, (protocol.width, protocol.height), highlighter,
                                                highlight, path_inside(out_dir, "references", f"{slug(s.id)}.png"))
                stats.internal_errors += preps[s.id].info.get("error_kind") == INTERNAL_ERROR
            gen = generate_fn[s.kind] if isinstance(generate_fn, Mapping) else generate_fn
            videos = generate_group(gen, group, preps[s.id].image)
            for it, video in zip(group, videos):
                frames = as_uint8_frames(video, it.sample_id)
                rel = Path("videos") / slug(method) / slug(s.id) / f"p{it.prompt.index:02d}_s{it.seed}.gif"
                write_gif(path_inside(out_dir, rel), frames, fps=protocol.fps)
                # CLIP, DINO and face use the in-memory frames; DD runs on the saved GIF, as the paper did
                dd_frames = read_video_strict(out_dir / rel)
                results = scorer.score(frames, prompt=it.prompt.text, reference=refs[s.id], kind=s.kind,
                                       dd_frames=dd_frames)
                base = {
                    "sample_id": it.sample_id, "method": method, "benchmark": bench.name, "subject": s.id,
                    "kind": s.kind, "category": it.prompt.category, "prompt": it.prompt.text,
                    "prompt_index": it.prompt.index, "seed": it.seed, "video": rel.as_posix(),
                    "reference": os.path.abspath(s.image), "reference_for_model": f"references/{slug(s.id)}.png",
                    "reference_preprocessing": preps[s.id].info, "n_frames": int(frames.shape[0]),
                    "height": int(frames.shape[1]), "width": int(frames.shape[2]), **(common or {}),
                    "fingerprint": planned[(method, it.sample_id)],
                }
                stats.record(store, result_rows(base, results))
                bar.update(1)
    stats.seconds = time.perf_counter() - t0
    stats.extra["reference_preprocessing"] = {k: v.info for k, v in preps.items()}
    return stats


def missing_metrics(existing: set[tuple[str, str, str]], method: str, sample_id: str,
                    wanted: tuple[str, ...]) -> list[str]:
    """The metrics of ``wanted`` that have no row yet for this video (resume scores only these)."""
    return [m for m in wanted if (method, sample_id, m) not in existing]


def _rescore_saved_videos(todo: list[WorkItem], out_dir: Path, *, method: str, scorer: VideoScorer,
                          store: SampleStore, stats: LoopStats, existing: set, planned: Mapping, proc: ProcessInfo,
                          progress: bool) -> list[WorkItem]:
    """Videos of ``todo`` that are already generated and scored on some metrics (a suite added to a finished run,
    rows proven current by their fingerprint): only the missing metrics are scored, on the saved video read back
    (rows say ``scored_from: saved video``); nothing is generated again. Returns the items still to generate."""
    rows_by_video: dict[str, dict] = {}
    for r in read_samples(out_dir):
        if r.get("method") == method:
            rows_by_video.setdefault(str(r.get("sample_id")), r)
    rescore = [it for it in todo if it.sample_id in rows_by_video
               and (out_dir / str(rows_by_video[it.sample_id].get("video", ""))).is_file()]
    if not rescore:
        return todo
    refs = load_references({it.subject.id: it.subject.image for it in rescore})
    logger.info("resume: %d video(s) already generated get only their missing metrics", len(rescore))
    with _progress(len(rescore), "bench run: missing metrics", proc, progress) as bar:
        for it in rescore:
            first = rows_by_video[it.sample_id]
            wanted = missing_metrics(existing, method, it.sample_id, scorer.metrics_for(it.subject.kind))
            frames = read_video_strict(out_dir / first["video"])
            results = scorer.score(frames, prompt=it.prompt.text, reference=refs[it.subject.id],
                                   kind=it.subject.kind, metrics=wanted, dd_frames=frames)
            base = {k: v for k, v in first.items() if k not in ("metric", "value", "status", "reason", "detail")}
            base.update(fingerprint=planned[(method, it.sample_id)], scored_from="saved video")
            stats.record(store, result_rows(base, results))
            bar.update(1)
    done = {it.sample_id for it in rescore}
    return [it for it in todo if it.sample_id not in done]


def subject_batches(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    """Consecutive items of one subject, at most ``size`` per group (items come grouped by subject)."""
    groups: list[list[WorkItem]] = []
    for it in items:
        if groups and groups[-1][0].subject.id == it.subject.id and len(groups[-1]) < max(1, size):
            groups[-1].append(it)
        else:
            groups.append([it])
    return groups


def generate_group(gen, group: list[WorkItem], reference_image) -> list:
    """The videos of a group: one call of ``gen.many`` when the generator offers it, else one call per item."""
    many = getattr(gen, "many", None)
    if many is not None and len(group) > 1:
        return list(many([it.prompt.text for it in group], reference_image, [it.seed for it in group]))
    return [gen(it.prompt.text, reference_image, it.seed) for it in group]


# -------------------------------------------------------------------------------------------------- bench score
@dataclass(frozen=True)
class ScoreTask:
    sample_id: str
    method: str
    subject: str
    kind: str
    prompt: str
    video: str
    reference: str
    category: str | None = None
    extra: dict = field(default_factory=dict)
    references: tuple[str, ...] = ()  # several references (multi-subject video; reference is the first)
    reference_names: tuple[str, ...] = ()  # their detector prompts (object videos; vm_eval.multi_subject)

    @property
    def n_references(self) -> int:
        return max(1, len(self.references))


def plan_score(tasks: list[ScoreTask], scorer) -> dict[tuple[str, str], dict[str, str]]:
    """(method, sample_id) -> the fingerprint of each video ``bench score`` scores: the video's and reference's
    bytes, prompt, kind and the scoring setup."""
    refs = {r: file_digest(r) for t in tasks for r in (t.reference, *t.references)}
    scoring = scoring_identity(scorer)

    def several(t: ScoreTask) -> dict:  # only rows with several references: older fingerprints stay as they were
        detector = getattr(getattr(getattr(scorer, "encoders", None), "config", None), "subject_detector", None)
        return {"references": [refs[r] for r in t.references], "reference_names": list(t.reference_names),
                "subject_detector": detector} if len(t.references) > 1 else {}

    return {(t.method, t.sample_id): fingerprint({"video": file_digest(t.video), "reference": refs[t.reference],
                                                  "prompt": t.prompt, "kind": t.kind, "scoring": scoring,
                                                  **several(t)})
            for t in tasks}


def score_tasks(tasks: list[ScoreTask], out_dir: Path, *, scorer: VideoScorer, proc: ProcessInfo | None = None,
                progress: bool = True, common: dict | None = None, overwrite: bool = False) -> LoopStats:
    """Score existing videos; a missing/empty/truncated/non-video file gives error rows, the rest is scored.
    Rows of these methods whose fingerprint differs refuse the run unless ``overwrite`` (:mod:`vm_eval.resume`)."""
    proc = proc or ProcessInfo()
    store = SampleStore(Path(out_dir), proc)
    refs = load_references({r: r for t in tasks for r in (t.reference, *t.references)})
    planned = plan_score(tasks, scorer)
    stale = find_stale(stored_fingerprints(read_samples(Path(out_dir)), {t.method for t in tasks}), planned)
    resolve_stale(stale, Path(out_dir), overwrite=overwrite, proc=proc)
    existing = store.existing()
    mine = split_for_process(tasks, proc)
    todo = [t for t in mine if not all((t.method, t.sample_id, m) in existing
                                       for m in scorer.metrics_for(t.kind, t.n_references))]
    stats = LoopStats(total=len(tasks), mine=len(mine), skipped=len(mine) - len(todo))
    t0 = time.perf_counter()
    with _progress(len(todo), "bench score", proc, progress) as bar:
        for t in todo:
            wanted = missing_metrics(existing, t.method, t.sample_id,
                                     scorer.metrics_for(t.kind, t.n_references))  # resume: new only
            base = {"sample_id": t.sample_id, "method": t.method, "subject": t.subject, "kind": t.kind,
                    "category": t.category, "prompt": t.prompt, "video": t.video, "reference": t.reference, **t.extra,
                    **(common or {}), "fingerprint": planned[(t.method, t.sample_id)]}
            if len(t.references) > 1:
                base.update(references=list(t.references), reference_names=list(t.reference_names))
            try:
                frames, info = read_video_with_info(t.video)
            except MediaError as exc:
                results = {m: MetricResult.error(str(exc)) for m in wanted}
            else:
                base.update(n_frames=int(frames.shape[0]), height=int(frames.shape[1]), width=int(frames.shape[2]))
                # the authors' DD reader went by the frame rate of mp4 (non-GIF) files; GIFs keep all frames
                fps = None if Path(t.video).suffix.lower() == ".gif" else info.fps
                results = scorer.score(frames, prompt=t.prompt, reference=refs[t.reference], kind=t.kind,
                                       metrics=wanted, video_fps=fps,
                                       references=[refs[r] for r in t.references],
                                       subject_prompts=t.reference_names)
            stats.record(store, result_rows(base, results))
            bar.update(1)
    stats.seconds = time.perf_counter() - t0
    return stats
