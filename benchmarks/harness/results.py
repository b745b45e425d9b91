"""Result files: ``<stem>.json`` (the measured figures and their provenance) beside ``<stem>.md`` (a rendered
table for people), both written atomically; plus the small markdown helpers the renderers share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vm_common.io_utils import atomic_write_text


def _jsonable(value: Any) -> Any:
    """numpy / torch values as lists or numbers, anything else JSON cannot hold (paths, ...) as its string."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def write_results(stem: Path, result: dict, markdown: str | None = None, *,
                  sort_keys: bool = False) -> tuple[Path, Path | None]:
    """Write ``stem.json`` (and ``stem.md`` when ``markdown`` is given), each atomically; returns their paths.
    ``sort_keys``: JSON keys in sorted order instead of the order of ``result``."""
    stem = Path(stem)
    js = atomic_write_text(stem.with_name(stem.name + ".json"),
                           json.dumps(result, indent=2, sort_keys=sort_keys, default=_jsonable) + "\n")
    md = atomic_write_text(stem.with_name(stem.name + ".md"), markdown) if markdown is not None else None
    return js, md


def gib(n_bytes: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{n_bytes / 2**30:.2f}"


def gib_or_na(n_bytes: float | None) -> str:
    return "n/a" if n_bytes is None else gib(n_bytes)


def table(header: list[str], rows: list[list[object]]) -> list[str]:
    """Markdown table lines: the header row, the ``|---|`` rule, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def notes_section(notes: list[str] | None) -> list[str]:
    """A ``## Notes`` section, one bullet per note; no lines when there are none."""
    return ["## Notes", ""] + [f"- {n}" for n in notes] if notes else []
