"""Find the clips of an input dataset, in a stable order, with their captions, class words and provided references.

Formats (``--input-format``, default ``auto``):

- ``folder``: every video file under the folder (recursively); ``<name>.txt`` beside ``<name>.mp4`` is its
  caption. A file with a video extension that is not a video is still listed (and reported as an error row).
- ``csv`` / ``jsonl``: one clip per row with a video path (``video``, ``path``, ``video_path`` or ``file``),
  a caption (``caption``, ``text`` or ``name``), optionally a class word (``class_word``, ``class`` or
  ``category``), a clip id (``clip_id`` or ``id``) and provided reference images (``reference`` or
  ``references``; several separated by ``;`` in CSV, a list in JSONL). Relative paths are resolved against the
  file's folder and stored absolute. Tables are read strictly (:mod:`vm_common.input_tables`): a UTF-8 BOM is
  dropped, a CSV row is one line (a quoted field cannot span lines), and a bad line (unterminated quote, extra
  fields, not JSON, a field of the wrong type) becomes an ``error`` row of its own naming file and line, never
  touching its neighbours.
- ``celebvtext``: the CelebV-Text release: videos in ``celebvtext_6/``, ``videos/`` or the root, and text
  annotations in ``texts/``, ``descriptions/`` or ``descripitions/`` with one sub-folder per attribute
  (``face40_details_new``, ``action_dur``, ``emotion``, ``light_dir`` ...), each holding ``<video name>.txt``.
  The caption joins the first line of the attributes named by ``--celebv-caption-fields``.
- ``videobooth``: VideoBooth's WebVid subset: ``<class>.csv`` per class (WebVid columns ``videoid``, ``name`` =
  caption, ``page_dir``), ``<class>/<videoid>/mask.json`` (a list of ``{"value", "label", "box"}``) with
  ``mask_<value>.png`` beside it, and videos at ``<video root>/<page_dir>/<videoid>.mp4`` (or
  ``<video root>/<videoid>.mp4``; video root ``--video-root``, default ``<input>/videos``). The provided masks
  are used as they are (no detector): the reference is the first frame under the provided mask.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vm_common.errors import InputFileError
from vm_common.input_tables import InputRow, RowError, field_str, field_str_list, read_csv_rows, read_jsonl_rows
from vm_common.safe_names import is_safe_component

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".wmv", ".flv")
FORMATS = ("auto", "folder", "csv", "jsonl", "celebvtext", "videobooth")
CELEBV_VIDEO_DIRS = ("celebvtext_6", "videos", "video")
CELEBV_TEXT_DIRS = ("texts", "descriptions", "descripitions", "text")
CELEBV_DEFAULT_FIELDS = ("face40_details_new", "action_dur")


@dataclass
class ProvidedMask:
    """A reference mask that ships with the dataset (VideoBooth): applied to ``frame`` of the video."""

    mask: str
    label: str | None = None
    box: list[float] | None = None
    frame: int = 0


@dataclass
class ClipSpec:
    clip_id: str
    video: str
    caption: str | None = None
    class_word: str | None = None
    reference_images: list[str] = field(default_factory=list)
    provided_masks: list[ProvidedMask] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    input_error: str | None = None  # the input row could not be read: the clip becomes an error row with this


def absolute(path: str | Path, base: Path) -> Path:
    """``path`` (``~`` expanded) made absolute against ``base``, normalised lexically (symlinks kept)."""
    p = Path(os.path.expanduser(str(path)))
    return Path(os.path.normpath(p if p.is_absolute() else Path(os.path.abspath(base)) / p))


def bad_row_spec(row: InputRow, message: str) -> ClipSpec:
    """The clip of an input line that could not be read: an error row naming file and line."""
    return ClipSpec(clip_id=safe_id(f"{row.path.stem}-line{row.line}"), video="", caption=None,
                    input_error=f"{row.where}: {message}", extra={"input_file": str(row.path), "input_line": row.line})


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """A file-name-safe clip id from a relative path or id (path separators become ``__``)."""
    text = str(text).replace("\\", "/").strip("/")
    text = "__".join(part for part in text.split("/") if part)
    return _SAFE.sub("_", text).strip("._") or "clip"


def _unique(specs: list[ClipSpec]) -> list[ClipSpec]:
    seen: dict[str, int] = {}
    for spec in specs:
        base = spec.clip_id
        if base in seen:
            seen[base] += 1
            spec.clip_id = f"{base}_{seen[base]}"
            logger.warning("duplicate clip id %r: renamed to %r", base, spec.clip_id)
        else:
            seen[base] = 0
    return specs


def detect_format(path: Path) -> str:
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".json"):
            return "jsonl"
        raise InputFileError(f"{path}: cannot tell the input format from the suffix '{suffix}' (expected a folder, "
                         f".csv or .jsonl); pass --input-format")
    if not path.is_dir():
        raise InputFileError(f"input not found: {path}")
    if any((path / d).is_dir() for d in CELEBV_TEXT_DIRS) and (
            any((path / d).is_dir() for d in CELEBV_VIDEO_DIRS)):
        return "celebvtext"
    for csv_path in path.glob("*.csv"):
        if (path / csv_path.stem).is_dir() and any((path / csv_path.stem).glob("*/mask.json")):
            return "videobooth"
    return "folder"


def discover(path: str | Path, fmt: str = "auto", *, video_root: str | Path | None = None,
             celebv_fields: tuple[str, ...] = CELEBV_DEFAULT_FIELDS) -> list[ClipSpec]:
    """The clips of ``path`` in a stable order (see the module docstring for the formats)."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    if not path.exists():
        raise InputFileError(f"input not found: {path}")
    if fmt not in FORMATS:
        raise InputFileError(f"unknown input format {fmt!r}; choose one of {FORMATS}")
    if fmt == "auto":
        fmt = detect_format(path)
    logger.info("input %s: format %s", path, fmt)
    if fmt == "folder":
        specs = _from_folder(path)
    elif fmt == "csv":
        specs = _from_table(path, _read_csv(path))
    elif fmt == "jsonl":
        specs = _from_table(path, _read_jsonl(path))
    elif fmt == "celebvtext":
        specs = _from_celebvtext(path, celebv_fields)
    else:
        specs = _from_videobooth(path, absolute(video_root, Path.cwd()) if video_root else path / "videos")
    return _unique(specs)


# ----------------------------------------------------------------------------------------------------- folder
def _read_caption(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        logger.warning("cannot read caption %s: %s", path, exc)
        return None
    return " ".join(text.split()) or None


def _from_folder(root: Path) -> list[ClipSpec]:
    if root.is_file():
        raise InputFileError(f"{root}: expected a folder of videos")
    videos = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                    and not p.name.startswith("."))
    specs = []
    for video in videos:
        rel = video.relative_to(root).with_suffix("")
        specs.append(ClipSpec(clip_id=safe_id(str(rel)), video=str(video.resolve()),
                              caption=_read_caption(video.with_suffix(".txt"))))
    return specs


# ------------------------------------------------------------------------------------------------ csv / jsonl
_VIDEO_KEYS = ("video", "path", "video_path", "file", "filename")
_CAPTION_KEYS = ("caption", "text", "name", "prompt")
_CLASS_KEYS = ("class_word", "class", "category", "label")
_ID_KEYS = ("clip_id", "id", "videoid")
_REF_KEYS = ("reference", "references", "reference_image")


def _read_csv(path: Path) -> list[InputRow]:
    header, rows = read_csv_rows(path)
    if not any(k in header for k in _VIDEO_KEYS):
        raise InputFileError(f"{path}: needs a video column (one of {_VIDEO_KEYS}); found {header}")
    return rows


def _read_jsonl(path: Path) -> list[InputRow]:
    return read_jsonl_rows(path)


def _spec_from_row(row: dict, base: Path) -> ClipSpec:
    """One table row as a clip; :class:`RowError` names the field that does not fit."""
    video = field_str(row, _first_key(row, _VIDEO_KEYS) or _VIDEO_KEYS[0], numbers=False)
    if video is None:
        raise RowError(f"no video path (one of {', '.join(_VIDEO_KEYS)})")
    caption = field_str(row, _first_key(row, _CAPTION_KEYS) or _CAPTION_KEYS[0])
    class_word = field_str(row, _first_key(row, _CLASS_KEYS) or _CLASS_KEYS[0])
    clip_id = field_str(row, _first_key(row, _ID_KEYS) or _ID_KEYS[0])
    refs = field_str_list(row, _first_key(row, _REF_KEYS) or _REF_KEYS[0])
    known = set(_VIDEO_KEYS + _CAPTION_KEYS + _CLASS_KEYS + _ID_KEYS + _REF_KEYS)
    return ClipSpec(
        clip_id=safe_id(clip_id) if clip_id is not None else safe_id(str(Path(video).with_suffix(""))),
        video=str(absolute(video, base)), caption=" ".join(caption.split()) if caption else None,
        class_word=class_word.strip() if class_word and class_word.strip() else None,
        reference_images=[str(absolute(r, base)) for r in refs],
        extra={k: v for k, v in row.items() if k not in known and v not in (None, "")},
    )


def _first_key(row: dict, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in row and row[k] not in (None, "")), None)


def _from_table(path: Path, rows: list[InputRow]) -> list[ClipSpec]:
    base = path.parent  # absolute: discover() made the input path absolute
    return specs_from_rows(rows, lambda data: _spec_from_row(data, base))


def specs_from_rows(rows: list[InputRow], make) -> list[ClipSpec]:
    """``make(row.data)`` per row; a row that cannot be read or made into a clip becomes an error spec naming its
    file and line (never a neighbour's problem)."""
    specs = []
    for row in rows:
        if row.error:
            logger.warning("%s", row.message)
            specs.append(bad_row_spec(row, row.error))
            continue
        try:
            specs.append(make(row.data))
        except RowError as exc:
            logger.warning("%s: %s", row.where, exc)
            specs.append(bad_row_spec(row, str(exc)))
    return specs


# ------------------------------------------------------------------------------------------------- CelebV-Text
def _from_celebvtext(root: Path, fields: tuple[str, ...]) -> list[ClipSpec]:
    video_dir = next((root / d for d in CELEBV_VIDEO_DIRS if (root / d).is_dir()), root)
    text_dir = next((root / d for d in CELEBV_TEXT_DIRS if (root / d).is_dir()), None)
    videos = sorted(p for p in video_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    specs = []
    for video in videos:
        parts = []
        if text_dir is not None:
            for name in fields:
                text = _read_caption_first_line(text_dir / name / f"{video.stem}.txt")
                if text:
                    parts.append(text)
        specs.append(ClipSpec(clip_id=safe_id(video.stem), video=str(video.resolve()),
                              caption=" ".join(parts) or None, extra={"dataset": "celebvtext"}))
    return specs


def _read_caption_first_line(path: Path) -> str | None:
    text = _read_caption_lines(path)
    return text[0] if text else None


def _read_caption_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = [" ".join(ln.split()) for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [ln for ln in lines if ln]


# -------------------------------------------------------------------------------------------------- VideoBooth
def _from_videobooth(root: Path, video_root: Path) -> list[ClipSpec]:
    """Clips of a VideoBooth root. Ids, page folders and mask values come from its files: each must be a plain
    name (a ``videoid`` or mask value climbing out with ``../`` makes the row an error row instead of a path)."""
    specs = []
    for csv_path in sorted(root.glob("*.csv")):
        class_word = csv_path.stem
        mask_root = root / class_word
        if not mask_root.is_dir():
            continue
        _, rows = read_csv_rows(csv_path)
        specs += specs_from_rows(rows, lambda data, c=class_word, m=mask_root: _videobooth_clip(data, c, m,
                                                                                                 video_root))
    return [s for s in specs if s is not None]


def _videobooth_clip(row: dict, class_word: str, mask_root: Path, video_root: Path) -> ClipSpec | None:
    vid = (field_str(row, "videoid") or field_str(row, "video_id") or "").strip()
    if not vid:
        return None
    if not is_safe_component(vid):
        raise RowError(f"videoid {vid!r} is not a plain file name")
    page_dir = (field_str(row, "page_dir") or "").strip()
    if page_dir and not all(is_safe_component(part) for part in page_dir.split("/")):
        raise RowError(f"page_dir {page_dir!r} is not a relative folder of plain names")
    candidates = [video_root / page_dir / f"{vid}.mp4"] if page_dir else []
    candidates.append(video_root / f"{vid}.mp4")
    video = next((c for c in candidates if c.exists()), candidates[0])
    masks = []
    mask_json = mask_root / vid / "mask.json"
    if mask_json.is_file():
        try:
            entries = json.loads(mask_json.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            logger.warning("%s: not valid JSON (%s); the clip gets no provided mask", mask_json, exc)
            entries = []
        for e in entries if isinstance(entries, list) else []:
            if not isinstance(e, dict) or "value" not in e:
                continue
            if not is_safe_component(str(e["value"])):
                logger.warning("%s: mask value %r is not a plain name; entry ignored", mask_json, e["value"])
                continue
            label = e.get("label") if isinstance(e.get("label"), str) else None
            box = e.get("box") if isinstance(e.get("box"), list) else None
            masks.append(ProvidedMask(mask=str(mask_root / vid / f"mask_{e['value']}.png"), label=label, box=box))
    same_class = [m for m in masks if (m.label or "").lower() == class_word.lower()]
    caption = (field_str(row, "name") or "").strip() or None
    return ClipSpec(
        clip_id=safe_id(f"{class_word}/{vid}"), video=str(video), caption=caption, class_word=class_word,
        provided_masks=same_class or masks, extra={"dataset": "videobooth", "videoid": vid, "page_dir": page_dir},
    )
