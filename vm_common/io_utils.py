"""Atomic file writes and append-only JSONL, so that a killed run never leaves a half-written file.

Temporary files get unique names (``mkstemp``) beside their target, so that concurrent writers never share one, and
the permissions the umask gives an ordinary new file (``mkstemp`` alone would leave them 0600, unreadable to
colleagues).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def current_umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temp_file(directory: Path, prefix: str, suffix: str) -> Path:
    """A unique empty file in ``directory`` with the permissions the umask gives a new file."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(name)


def _tmp_path(path: Path) -> Path:
    return _new_temp_file(path.parent, f".{path.name}.", ".tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


class atomic_output:
    """Context manager giving a temporary path beside ``path``; renamed over ``path`` on success only.

    For writers that want a filename (video encoders, ``torch.save``, ``safetensors``)::

        with atomic_output(out / "video.mp4") as tmp:
            write_video(tmp, frames)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # keep the suffix so that encoders choosing a format by extension still work
        self.tmp = _new_temp_file(self.path.parent, f".{self.path.stem}.", f".tmp{self.path.suffix}")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_row(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=_json_default, allow_nan=True)


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append rows as whole lines with one write + fsync; a crash loses at most the rows of this call.

    A reader (:func:`read_jsonl`) ignores a truncated last line, so a kill mid-write never corrupts earlier rows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(dumps_row(r) + "\n" for r in rows)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike, *, missing_ok: bool = True) -> Iterator[dict]:
    """Yield the complete rows of a JSONL file; a truncated final line (a killed writer) is skipped."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return
        raise FileNotFoundError(f"JSONL file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                return  # torn final line from a killed writer
            raise ValueError(f"{path}: line {i + 1} is not valid JSON")


def repair_jsonl(path: str | os.PathLike) -> int:
    """Drop a torn final line (from a killed writer) so that appends start on a clean line. Returns rows kept."""
    path = Path(path)
    if not path.exists():
        return 0
    rows = list(read_jsonl(path))
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n") or len(rows) != sum(1 for ln in raw.splitlines() if ln.strip()):
        atomic_write_text(path, "".join(dumps_row(r) + "\n" for r in rows))
    return len(rows)
