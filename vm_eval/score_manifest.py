"""The scoring manifest that ``vm bench score`` reads: one JSON object per line describing a video of any method.

Required keys: ``video``, ``prompt``, ``reference``, ``subject``, ``method``; optional: ``category``, ``kind``
(``human`` | ``object``, default from ``--kind``), ``sample_id`` (default ``<subject>:<video>``), ``seed``.
A video made from several references lists them in ``references`` (a JSON list of paths; ``reference`` may then be
left out and is the first) and, for ``object`` videos, may name each subject's detector prompt in
``reference_names`` (same length; default ``object``): such rows also get the multi-subject metrics
(:mod:`vm_eval.multi_subject`).
Relative paths are relative to the manifest's folder. Read strictly (:mod:`vm_common.input_tables`): every bad
line (not JSON, a list where text is wanted, ...) is named with its file and line, and nothing is scored. (Not the
training-data manifest of ``vm preprocess-dataset``: that one is :mod:`vm_data.clip_manifest`.)
"""

from __future__ import annotations

from pathlib import Path

from vm_common.errors import InputFileError
from vm_common.input_tables import RowError, field_int, field_str, field_str_list, read_jsonl_rows

from .runner import ScoreTask

REQUIRED = ("video", "prompt", "reference", "subject", "method")  # "reference" may come from "references"
PATHS = ("video", "reference")
TEXT_FIELDS = ("category", "kind", "sample_id", "benchmark")
KINDS = ("human", "object")
MAX_LISTED = 20


class ScoreManifestError(InputFileError):
    """The scoring manifest is missing, empty, or has rows that do not fit the schema above (each one named by
    file and line)."""


def _task(row: dict, base: Path, default_kind: str) -> ScoreTask:
    """One row as a task; :class:`RowError` names the field that does not fit."""
    references = field_str_list(row, "references", separator=None)
    names = field_str_list(row, "reference_names", separator=None)
    if names and len(names) != len(references):
        raise RowError(f"'reference_names' has {len(names)} names for {len(references)} references")
    if references and row.get("reference") in (None, ""):
        row = {**row, "reference": references[0]}
    values = {k: field_str(row, k, required=True, numbers=k not in PATHS) for k in REQUIRED}
    optional = {k: field_str(row, k) for k in TEXT_FIELDS}
    kind = optional["kind"] or default_kind
    if kind not in KINDS:
        raise RowError(f"kind must be one of {KINDS}, got {kind!r}")
    extra: dict = {}
    for key in ("seed", "prompt_index"):
        if row.get(key) not in (None, ""):
            extra[key] = field_int(row, key)
    if optional["benchmark"]:
        extra["benchmark"] = optional["benchmark"]

    def resolve(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base / q).resolve())

    sample_id = optional["sample_id"] or f"{values['subject']}:{values['video']}"
    return ScoreTask(sample_id, values["method"], values["subject"], kind, values["prompt"],
                     resolve(values["video"]), resolve(values["reference"]), optional["category"], extra,
                     references=tuple(resolve(r) for r in references), reference_names=tuple(names))


def read_score_manifest(path: Path, default_kind: str = "human") -> list[ScoreTask]:
    """One :class:`ScoreTask` per row, paths resolved against the manifest's folder; :class:`ScoreManifestError`
    names every bad line (file and line) and scores nothing."""
    path = Path(path)
    if not path.is_file():
        raise ScoreManifestError(f"manifest not found: {path}" if not path.exists() else
                                 f"manifest {path} is not a file")
    base = path.resolve().parent
    tasks, seen, problems = [], {}, []
    for row in read_jsonl_rows(path):
        if row.error:
            problems.append(row.message)
            continue
        try:
            task = _task(row.data, base, default_kind)
        except RowError as exc:
            problems.append(f"{row.where}: {exc} (required: {', '.join(REQUIRED)})")
            continue
        key = (task.method, task.sample_id)
        if key in seen:
            problems.append(f"{row.where}: duplicate sample {task.sample_id!r} for method {task.method!r} (first "
                            f"on line {seen[key]})")
            continue
        seen[key] = row.line
        tasks.append(task)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise ScoreManifestError(f"{path}: {len(problems)} bad row(s); nothing was scored:\n{listed}{more}")
    if not tasks:
        raise ScoreManifestError(f"{path}: no rows")
    return tasks
