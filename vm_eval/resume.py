"""Resume without stale results: a video's rows are reused only when their fingerprint proves the same inputs.

Every row of ``samples.jsonl`` written by `vm bench run` / `vm bench score` carries ``fingerprint``: the digests of
the parts that decide the video and its scores (:mod:`vm_common.fingerprint`) - for ``run`` the generation
protocol, the model sources, the reference image's bytes, the highlight choice, the prompt, the seed and the
scoring setup; for ``score`` the video's and the reference's bytes, the prompt and the scoring setup.

On resume, the rows of each planned video of the methods being run are compared with the plan:

- same fingerprint: skipped (resume);
- a different or missing fingerprint, or rows of those methods for videos that are no longer planned (other
  seeds, subjects or prompts): **stale**. Without ``--overwrite`` the command refuses, naming what changed; with
  it the stale rows are dropped and their videos made again.
"""

from __future__ import annotations

import dataclasses

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from vm_common.distributed import ProcessInfo
from vm_common.errors import StaleOutputError
from vm_common.fingerprint import changed_parts

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (method, sample_id)
NOT_PLANNED = "not part of this run"
NO_FINGERPRINT = "fingerprint (none stored: written by an earlier version)"
MAX_LISTED = 5


@dataclass(frozen=True)
class Stale:
    key: Key
    changed: tuple[str, ...]  # the parts that differ, or (NOT_PLANNED,)


def scoring_identity(scorer) -> dict:
    """What decides the scores besides the video: the encoders' preset, scoring protocol, flow and weights."""
    cfg = getattr(getattr(scorer, "encoders", None), "config", None)
    if cfg is None:
        return {"scorer": type(scorer).__name__}
    identity = {k: getattr(cfg, k, None) for k in ("preset", "protocol", "flow", "clip_weights", "dino_weights",
                                                   "face_weights", "raft_weights")}
    # the other suites' weights, only where given: a run that leaves them at their defaults keeps the identity
    # (and the rows) it had before these suites existed, and choosing other weights marks the rows stale
    extra = {k: getattr(cfg, k, None) for k in _SUITE_WEIGHT_FIELDS}
    options = getattr(cfg, "opens2v", None)
    if options is not None:
        extra.update({f"opens2v.{f.name}": getattr(options, f.name) for f in dataclasses.fields(options)
                      if f.name.endswith("_weights")})
    identity.update({k: v for k, v in extra.items() if v is not None})
    return identity


_SUITE_WEIGHT_FIELDS = ("vbench_dino_weights", "clip_l14_weights", "aesthetic_weights", "amt_weights",
                        "musiq_weights", "subject_detector")


def stored_fingerprints(rows: Iterable[dict], methods: set[str]) -> dict[Key, Any]:
    """(method, sample_id) -> the fingerprint its rows carry (None for rows written without one)."""
    out: dict[Key, Any] = {}
    for r in rows:
        if r.get("method") in methods:
            out.setdefault((str(r.get("method")), str(r.get("sample_id"))), r.get("fingerprint"))
    return out


def find_stale(stored: Mapping[Key, Any], planned: Mapping[Key, Mapping[str, str]]) -> list[Stale]:
    """Videos whose rows do not match the plan (see the module docstring)."""
    stale = []
    for key, fp in stored.items():
        if key not in planned:
            stale.append(Stale(key, (NOT_PLANNED,)))
        elif not isinstance(fp, Mapping):
            stale.append(Stale(key, (NO_FINGERPRINT,)))
        elif changed := changed_parts(fp, planned[key]):
            stale.append(Stale(key, tuple(changed)))
    return sorted(stale, key=lambda s: s.key)


def stale_message(stale: list[Stale], out_dir: Path) -> str:
    """One message: how many videos, which parts changed (with counts), a few examples, what to do."""
    counts = Counter(part for s in stale for part in s.changed)
    what = ", ".join(f"{part} ({n} video(s))" for part, n in sorted(counts.items()))
    examples = "; ".join(f"{s.key[0]} {s.key[1]}: {', '.join(s.changed)}" for s in stale[:MAX_LISTED])
    return (f"{out_dir} holds {len(stale)} video(s) whose rows were not made from this run's inputs and settings "
            f"- changed: {what} (e.g. {examples}). Nothing was generated. Pass --overwrite to replace them, or "
            f"choose another --out")


def resolve_stale(stale: list[Stale], out_dir: Path, *, overwrite: bool, proc: ProcessInfo) -> set[Key]:
    """Refuse (:class:`StaleOutputError`) or, with ``overwrite``, drop the stale rows (the main process, between
    barriers: every process finds the same stale set, so all of them pass the barriers). Returns the dropped keys."""
    if not stale:
        return set()
    if not overwrite:
        raise StaleOutputError(stale_message(stale, out_dir))
    from .store import SampleStore

    keys = {s.key for s in stale}
    proc.barrier()
    if proc.is_main:
        SampleStore(out_dir, ProcessInfo()).drop(keys)
        logger.warning("--overwrite: dropped the rows of %d stale video(s) in %s; they are made again", len(keys),
                       out_dir)
    proc.barrier()
    return keys
