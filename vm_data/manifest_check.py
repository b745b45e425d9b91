"""Check a training manifest before training starts: readable, with kept clips, every kept clip's files present.

`vm train` calls :func:`check_manifest_files` on ``--data`` before it loads a model, so that a wrong path (a
folder, a text file), an empty or all-rejected manifest, a malformed line or a moved video is one message naming
the file and line (exit 2), not a traceback minutes or hours into the run. Paths in rows are resolved as the
dataset resolves them: absolute, or relative to the manifest's folder.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vm_common.input_tables import read_jsonl_rows
from vm_common.status import KEPT

from .clip_manifest import ManifestError, ManifestRow

logger = logging.getLogger(__name__)

MAX_LISTED = 10
__all__ = ["ManifestCheck", "ManifestError", "check_manifest_files"]


@dataclass
class ManifestCheck:
    path: Path
    rows: int = 0
    kept: int = 0
    statuses: dict = field(default_factory=dict)


def _listed(problems: list[str]) -> str:
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return "\n".join(f"  - {p}" for p in problems[:MAX_LISTED]) + more


def check_manifest_files(path: str | os.PathLike) -> ManifestCheck:
    """Raise :class:`ManifestError` unless ``path`` is a manifest whose every kept row's video and reference images
    (and, schema 2, every subject's references and mask file) exist; returns the counts."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    if path.is_dir():
        hint = f"; did you mean {path / 'manifest.jsonl'}?" if (path / "manifest.jsonl").is_file() else ""
        raise ManifestError(f"{path} is a folder, not a manifest (the manifest.jsonl that `vm preprocess-dataset` "
                            f"writes){hint}")
    base = Path(os.path.abspath(path)).parent
    problems: list[str] = []
    check = ManifestCheck(path)
    statuses: Counter[str] = Counter()
    for line in read_jsonl_rows(path):
        if line.error:
            problems.append(line.message)
            continue
        try:
            row = ManifestRow.from_dict(line.data)
        except (TypeError, ValueError) as exc:
            problems.append(f"{line.where}: does not match the manifest schema ({exc})")
            continue
        check.rows += 1
        statuses[row.status] += 1
        if row.status != KEPT:
            continue
        check.kept += 1
        if not isinstance(row.video, str) or not isinstance(row.references, list) \
                or not all(isinstance(r, str) and r for r in row.references):
            problems.append(f"{line.where}: 'video' must be a path and 'references' a list of paths")
            continue
        if not row.references:
            problems.append(f"{line.where}: kept clip {row.clip_id} has no reference images")
        subject_files = [f for s in row.subjects for f in (*s.references, *([s.masks] if s.masks else []))]
        missing = [str(row.resolve(p, base)) for p in [row.video, *row.references, *subject_files]
                   if not row.resolve(p, base).is_file()]
        if missing:
            problems.append(f"{line.where}: clip {row.clip_id}: missing {', '.join(missing[:3])}")
    check.statuses = dict(statuses)
    if problems:
        raise ManifestError(f"{path}: {len(problems)} problem(s); nothing was trained:\n{_listed(problems)}")
    if check.rows == 0:
        raise ManifestError(f"{path}: no rows (is it a manifest written by `vm preprocess-dataset`?)")
    if check.kept == 0:
        raise ManifestError(f"{path}: no kept clips ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))});"
                            f" see summary.json beside it for the reasons")
    logger.info("%s: %d rows, %d kept clips, all their files present", path, check.rows, check.kept)
    return check
