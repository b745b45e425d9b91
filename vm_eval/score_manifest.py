"""The scoring manifest that ``vm bench score`` reads: one JSON object per line describing a video of any method.

Required keys: ``video``, ``prompt``, ``reference``, ``subject``, ``method``; optional: ``category``, ``kind``
(``human`` | ``object``, default from ``--kind``), ``sample_id`` (default ``<subject>:<video>``), ``seed``.
Relative paths are relative to the manifest's folder. (Not the training-data manifest of ``vm preprocess-dataset``:
that one is :mod:`vm_data.clip_manifest`.)
"""

from __future__ import annotations

from pathlib import Path

from vm_common.io_utils import read_jsonl

from .runner import ScoreTask

REQUIRED = ("video", "prompt", "reference", "subject", "method")
KINDS = ("human", "object")


class ScoreManifestError(ValueError):
    """The scoring manifest is missing, empty, or has a row that does not fit the schema above."""


def read_score_manifest(path: Path, default_kind: str = "human") -> list[ScoreTask]:
    """One :class:`ScoreTask` per row, paths resolved; :class:`ScoreManifestError` names the first bad row."""
    path = Path(path)
    if not path.is_file():
        raise ScoreManifestError(f"manifest not found: {path}")
    base = path.parent
    tasks, seen = [], set()
    for i, row in enumerate(read_jsonl(path, missing_ok=False), start=1):
        missing = [k for k in REQUIRED if not row.get(k)]
        if missing:
            raise ScoreManifestError(f"{path}: row {i} lacks {', '.join(missing)} (required: {', '.join(REQUIRED)})")
        kind = row.get("kind") or default_kind
        if kind not in KINDS:
            raise ScoreManifestError(f"{path}: row {i}: kind must be one of {KINDS}, got {kind!r}")

        def resolve(p: str) -> str:
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (base / q).resolve())

        video, reference = resolve(row["video"]), resolve(row["reference"])
        sample_id = str(row.get("sample_id") or f"{row['subject']}:{row['video']}")
        key = (row["method"], sample_id)
        if key in seen:
            raise ScoreManifestError(f"{path}: row {i}: duplicate sample {sample_id!r} for method {row['method']!r}")
        seen.add(key)
        extra = {k: row[k] for k in ("seed", "prompt_index", "benchmark") if k in row}
        tasks.append(ScoreTask(sample_id, str(row["method"]), str(row["subject"]), kind, str(row["prompt"]), video,
                               reference, row.get("category"), extra))
    if not tasks:
        raise ScoreManifestError(f"{path}: no rows")
    return tasks
