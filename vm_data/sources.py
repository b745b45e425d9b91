"""Find the clips of an input dataset, in a stable order, with their captions, class words and provided references.

Formats (``--input-format``, default ``auto``):

- ``folder``: every video file under the folder (recursively); ``<name>.txt`` beside ``<name>.mp4`` is its
  caption. A file with a video extension that is not a video is still listed (and reported as an error row).
- ``csv`` / ``jsonl``: one clip per row with a video path (``video``, ``path``, ``video_path`` or ``file``),
  a caption (``caption``, ``text`` or ``name``), optionally a class word (``class_word``, ``class`` or
  ``category``), a clip id (``clip_id`` or ``id``) and provided reference images (``reference`` or
  ``references``; several separated by ``;`` in CSV, a list in JSONL). Relative paths are relative to the file.
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

import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        raise ValueError(f"{path}: cannot tell the input format from the suffix '{suffix}' (expected a folder, "
                         f".csv or .jsonl); pass --input-format")
    if not path.is_dir():
        raise FileNotFoundError(f"input not found: {path}")
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
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; choose one of {FORMATS}")
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
        specs = _from_videobooth(path, Path(video_root) if video_root else path / "videos")
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
        raise ValueError(f"{root}: expected a folder of videos")
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


def _first(row: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in row and row[key] not in (None, ""):
            return row[key]
    return None


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not any(k in reader.fieldnames for k in _VIDEO_KEYS):
            raise ValueError(f"{path}: needs a video column (one of {_VIDEO_KEYS}); found {reader.fieldnames}")
        return [dict(r) for r in reader]


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of clip objects")
        return data
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {i + 1} is not valid JSON: {exc}") from exc
    return rows


def _from_table(path: Path, rows: list[dict]) -> list[ClipSpec]:
    base = path.parent
    specs = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i + 1} is not an object")
        video = _first(row, _VIDEO_KEYS)
        if video is None:
            raise ValueError(f"{path}: row {i + 1} has no video path (keys {_VIDEO_KEYS})")
        video_path = Path(str(video)).expanduser()
        video_path = video_path if video_path.is_absolute() else base / video_path
        clip_id = _first(row, _ID_KEYS)
        clip_id = safe_id(str(clip_id)) if clip_id is not None else safe_id(str(Path(str(video)).with_suffix("")))
        refs = _first(row, _REF_KEYS) or []
        if isinstance(refs, str):
            refs = [r.strip() for r in refs.split(";") if r.strip()]
        refs = [str(p if Path(p).is_absolute() else base / p) for p in map(str, refs)]
        caption = _first(row, _CAPTION_KEYS)
        class_word = _first(row, _CLASS_KEYS)
        known = set(_VIDEO_KEYS + _CAPTION_KEYS + _CLASS_KEYS + _ID_KEYS + _REF_KEYS)
        specs.append(ClipSpec(
            clip_id=clip_id, video=str(video_path), caption=" ".join(str(caption).split()) if caption else None,
            class_word=str(class_word).strip() if class_word else None, reference_images=refs,
            extra={k: v for k, v in row.items() if k not in known and v not in (None, "")},
        ))
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
    specs = []
    for csv_path in sorted(root.glob("*.csv")):
        class_word = csv_path.stem
        mask_root = root / class_word
        if not mask_root.is_dir():
            continue
        for row in _read_csv_any(csv_path):
            vid = str(row.get("videoid") or row.get("video_id") or "").strip()
            if not vid:
                continue
            page_dir = str(row.get("page_dir") or "").strip()
            candidates = [video_root / page_dir / f"{vid}.mp4"] if page_dir else []
            candidates.append(video_root / f"{vid}.mp4")
            video = next((c for c in candidates if c.exists()), candidates[0])
            masks = []
            mask_json = mask_root / vid / "mask.json"
            if mask_json.is_file():
                try:
                    entries = json.loads(mask_json.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    logger.warning("%s: not valid JSON (%s); the clip gets no provided mask", mask_json, exc)
                    entries = []
                for e in entries if isinstance(entries, list) else []:
                    if not isinstance(e, dict) or "value" not in e:
                        continue
                    masks.append(ProvidedMask(mask=str(mask_root / vid / f"mask_{e['value']}.png"),
                                              label=e.get("label"), box=e.get("box")))
            same_class = [m for m in masks if (m.label or "").lower() == class_word.lower()]
            specs.append(ClipSpec(
                clip_id=safe_id(f"{class_word}/{vid}"), video=str(video), caption=(row.get("name") or "").strip() or None,
                class_word=class_word, provided_masks=same_class or masks,
                extra={"dataset": "videobooth", "videoid": vid, "page_dir": page_dir},
            ))
    return specs


def _read_csv_any(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [dict(r) for r in csv.DictReader(fh)]
