"""All aggregation, from samples.jsonl rows only (as the paper): per video -> per subject -> mean over subjects.

- Scalar metrics: the ok values of a subject's videos are averaged, then the subject means; a subject without
  any ok value (e.g. Face Sim NaN: no face in any of its videos) is left out of the mean.
- DD (and every boolean metric, e.g. the toy's motion direction): the fraction of scored videos where it holds
  (flat, not per subject).
- Beside every value: ``n_valid / n_total`` videos, subjects used, and for Face Sim the face-detection rate.
Everything is sums and counts over rows, so the result does not depend on how the work was split.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Iterable

import numpy as np

from vm_common.status import OK

from .metrics import KINDS, METRICS, get_metric
from .store import dedupe


def _metric_summary(rows: list[dict], metric: str) -> dict:
    spec = get_metric(metric)
    ok = [r for r in rows if r.get("status") == OK and r.get("value") is not None]
    statuses: dict[str, int] = defaultdict(int)
    for r in rows:
        statuses[str(r.get("status"))] += 1
    subjects_total = sorted({str(r.get("subject")) for r in rows})
    out = {"n_valid": len(ok), "n_total": len(rows), "statuses": dict(statuses),
           "n_subjects_total": len(subjects_total)}
    if spec.boolean:
        out["value"] = float(np.mean([float(r["value"]) for r in ok])) if ok else None
        out["n_subjects"] = len({str(r.get("subject")) for r in ok})
        out["aggregation"] = spec.aggregation
    else:
        per_subject: dict[str, list[float]] = defaultdict(list)
        for r in ok:
            per_subject[str(r.get("subject"))].append(float(r["value"]))
        means = [float(np.mean(v)) for v in per_subject.values() if v]
        out["value"] = float(np.mean(means)) if means else None
        out["n_subjects"] = len(means)
        out["aggregation"] = "mean over subjects of the per-subject mean"
    if metric == "face_sim":
        with_detail = [r for r in rows if isinstance(r.get("detail"), dict) and "n_frames" in r["detail"]]
        frames = sum(int(r["detail"]["n_frames"]) for r in with_detail)
        faces = sum(int(r["detail"].get("frames_with_face", 0)) for r in with_detail)
        videos_with = sum(1 for r in with_detail if int(r["detail"].get("frames_with_face", 0)) > 0)
        out["face_detection"] = {
            "frames_with_face": faces, "frames": frames, "frame_rate": faces / frames if frames else None,
            "videos_with_face": videos_with, "videos": len(with_detail),
            "video_rate": videos_with / len(with_detail) if with_detail else None,
        }
    return out


def _summaries(rows: list[dict]) -> dict[str, dict]:
    by_metric: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_metric[str(r.get("metric"))].append(r)
    order = [m for m in METRICS if m in by_metric]
    return {m: _metric_summary(by_metric[m], m) for m in order}


def aggregate(rows: Iterable[dict]) -> dict:
    """Summary of rows (deduplicated on (method, sample_id, metric)); groups are (method, kind)."""
    rows = list(rows)
    methods: list[str] = []  # in order of first appearance (the ablation table keeps the order given)
    for r in rows:
        if str(r.get("method")) not in methods:
            methods.append(str(r.get("method")))
    groups: "OrderedDict[tuple[str, str], list[dict]]" = OrderedDict(
        ((m, k), []) for m in methods for k in KINDS)
    for r in dedupe(rows):
        groups[(str(r.get("method")), str(r.get("kind") or "human"))].append(r)
    groups = OrderedDict((k, v) for k, v in groups.items() if v)
    out_groups = []
    for (method, kind), grows in groups.items():
        cats: dict[str, list[dict]] = defaultdict(list)
        for r in grows:
            if r.get("category"):
                cats[str(r["category"])].append(r)
        out_groups.append({
            "method": method, "kind": kind,
            "n_videos": len({r.get("sample_id") for r in grows}),
            "n_subjects": len({r.get("subject") for r in grows}),
            "metrics": _summaries(grows),
            "categories": {c: _summaries(cr) for c, cr in sorted(cats.items())},
            "presets": sorted({str(r["preset"]) for r in grows if r.get("preset")}),
        })
    return {"methods": methods, "groups": out_groups,
            "random_weights": any(r.get("random_weights") for r in rows),
            "metric_info": {m: {"label": s.label, "higher_is_better": s.higher_is_better,
                                "paper_comparable": s.paper_comparable} for m, s in METRICS.items()}}
