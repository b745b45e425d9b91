"""The training-data manifest: the contract between `vm preprocess-dataset` (writes it) and `vm train` (reads it).

One JSON object per line, one line per input clip, with its status (``kept`` / ``rejected`` / ``error``, see
:mod:`vm_common.status`), references and masks. Paths are stored as given (absolute, or relative to the manifest's
folder) and resolved with :meth:`ManifestRow.resolve`. (Not to be confused with the manifest of videos that
``vm bench score`` reads: :mod:`vm_eval.score_manifest`.)

Schema versions (every older version is still read):

- 1: one subject per clip: ``references`` / ``masks`` / ``boxes`` ... describe it.
- 2: adds ``subjects``, one :class:`SubjectEntry` per subject of a multi-subject clip (``vm preprocess-dataset
  --subjects "dog.,cat."``): its name, its own reference image(s) and a per-frame mask file. A version-1 row has
  ``subjects == []``. In a row with subjects, the row-level ``references`` are the first subject's, so a reader that
  knows only version 1 trains on one subject.

A subject's mask file is data only: a NumPy ``.npz`` (read with ``allow_pickle=False``) holding ``masks``, uint8
(num_frames, H, W), one mask per frame of the clip's video (nonzero = the subject), at any resolution with the
video's aspect ratio (readers resize it as they resize the frames).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from vm_common.errors import InputFileError
from vm_common.input_tables import read_jsonl_rows
from vm_common.io_utils import append_jsonl
from vm_common.status import CLIP_STATUSES, KEPT, ClipStatus

SCHEMA_VERSION = 2
SUBJECT_MASKS_KEY = "masks"  # the array's name inside a subject's mask file (.npz)


class ManifestError(InputFileError):
    """A training manifest cannot be used; the message names the file (and line) and what is wrong."""


@dataclass
class SubjectEntry:
    """One subject of a multi-subject clip (schema 2)."""

    name: str  # the detector prompt that found it, without the trailing period ("dog")
    references: list[str] = field(default_factory=list)  # its reference image(s), paths as in ManifestRow
    masks: str | None = None  # its per-frame mask file (.npz, key SUBJECT_MASKS_KEY; module docstring)
    boxes: list[list[float]] = field(default_factory=list)  # xyxy source-frame pixels, one per reference
    scores: list[float] = field(default_factory=list)  # detector score, one per reference
    frame_indices: list[int] = field(default_factory=list)  # source frame of each reference

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a subject needs a non-empty name, got {self.name!r}")
        if not isinstance(self.references, list) or not all(isinstance(r, str) for r in self.references):
            raise ValueError(f"subject {self.name!r}: references must be a list of paths")
        if self.masks is not None and not isinstance(self.masks, str):
            raise ValueError(f"subject {self.name!r}: masks must be a path or null")

    @classmethod
    def from_dict(cls, data: Any) -> "SubjectEntry":
        if isinstance(data, SubjectEntry):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"a subject must be an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"subject {data.get('name')!r}: unknown field(s) {unknown}")
        return cls(**data)


@dataclass
class ManifestRow:
    clip_id: str
    video: str
    caption: str = ""
    references: list[str] = field(default_factory=list)
    class_word: str | None = None
    status: ClipStatus = KEPT
    reason: str | None = None
    masks: list[str] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)  # xyxy in source-frame pixels, one per reference
    scores: list[float] = field(default_factory=list)  # detector score, one per reference
    mask_area: list[float] = field(default_factory=list)  # mask area / frame area, one per reference
    frame_indices: list[int] = field(default_factory=list)  # source frame of each reference
    num_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # added by vm_data.preprocess (defaults keep older rows valid): the quantity the keep/reject decision was
    # made on (see vm_data.filters: a score, an area fraction, a frame count ...) and a human-readable detail.
    filter_score: float | None = None
    detail: str | None = None
    subjects: list[SubjectEntry] = field(default_factory=list)  # schema 2: one per subject (module docstring)

    def __post_init__(self) -> None:
        if not isinstance(self.subjects, list):
            raise ValueError(f"clip {self.clip_id}: subjects must be a list, got {type(self.subjects).__name__}")
        self.subjects = [SubjectEntry.from_dict(s) for s in self.subjects]
        names = [s.name for s in self.subjects]
        if len(set(names)) != len(names):
            raise ValueError(f"clip {self.clip_id}: subject names repeat: {names}")
        if self.status not in CLIP_STATUSES:
            raise ValueError(f"clip {self.clip_id}: status must be one of {CLIP_STATUSES}, got {self.status!r}")
        if self.status != KEPT and not self.reason:
            raise ValueError(f"clip {self.clip_id}: a {self.status} row needs a reason")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ManifestRow":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        extra = dict(known.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in names})
        return cls(**known, extra=extra)

    def resolve(self, path: str, base: Path) -> Path:
        p = Path(path)
        return p if p.is_absolute() else base / p


def read_manifest(path: str | Path, *, status: str | None = None) -> Iterator[ManifestRow]:
    """Rows of a manifest file (optionally only those with ``status``). Read strictly: a bad line is a
    :class:`ManifestError` naming file and line (the manifest is written atomically, so it has no torn lines)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}" if not path.exists() else
                            f"{path} is a folder, not a manifest (the manifest.jsonl `vm preprocess-dataset` writes)")
    for line in read_jsonl_rows(path):
        if line.error:
            raise ManifestError(line.message)
        try:
            row = ManifestRow.from_dict(line.data)
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{line.where}: does not match the manifest schema ({exc})") from None
        if status is None or row.status == status:
            yield row


def append_manifest(path: str | Path, rows: Iterable[ManifestRow]) -> None:
    append_jsonl(path, (r.to_dict() for r in rows))
