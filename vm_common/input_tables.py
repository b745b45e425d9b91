"""Strict readers of the tables users hand the toolkit (CSV, JSONL, a JSON list): one result per line, each either
the row's data or an error naming the file and line, so that one bad line never hides, swallows or corrupts another.

- A UTF-8 byte-order mark (what spreadsheet programs write) is dropped.
- CSV is read one physical line per row: a quoted field cannot span lines, so an unterminated quote is an error of
  its own line instead of silently swallowing the lines after it. More fields than the header has is an error.
- JSONL: every non-empty line must be a JSON object; a truncated last line is an error too (an input file is not
  the output of a killed writer).
- A line that is not UTF-8 is an error of that line.

Field types are checked by :func:`field_str` / :func:`field_str_list` / :func:`field_int`, which raise
:class:`RowError`; the caller turns it into the row-level error (:meth:`InputRow.where` names file and line).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputFileError

BOM = "\ufeff"


class RowError(ValueError):
    """One row does not fit the schema; the message says which field and why (without file and line)."""


@dataclass
class InputRow:
    path: Path
    line: int  # 1-based physical line (the item number of a JSON list)
    data: dict | None = None
    error: str | None = None  # the problem, without file and line

    @property
    def where(self) -> str:
        return f"{self.path}, line {self.line}"

    @property
    def message(self) -> str | None:
        return None if self.error is None else f"{self.where}: {self.error}"


def _lines(path: Path) -> list[tuple[int, str | None, str | None]]:
    """(line number, text or None, decode error or None) of each line; the BOM of the first one dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise InputFileError(f"{path} is a folder, not a table file") from None
    out = []
    for i, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.append((i, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
            continue
        if i == 1 and text.startswith(BOM):
            text = text[len(BOM):]
        out.append((i, text.rstrip("\r"), None))
    return out


def _parse_csv_line(text: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise RowError(f"not a valid CSV line ({exc}); an unterminated quote? (a quoted field cannot span "
                       f"lines)") from None


def read_csv_rows(path: str | Path, *, delimiter: str = ",") -> tuple[list[str], list[InputRow]]:
    """(header, one :class:`InputRow` per non-empty line after it). A bad header is an :class:`InputFileError`."""
    path = Path(path)
    header: list[str] | None = None
    rows: list[InputRow] = []
    for line, text, problem in _lines(path):
        if header is None:
            if problem:
                raise InputFileError(f"{path}, line {line}: header is {problem}")
            if text is None or not text.strip():
                continue
            try:
                header = [h.strip() for h in _parse_csv_line(text, delimiter)]
            except RowError as exc:
                raise InputFileError(f"{path}, line {line}: header: {exc}") from None
            duplicated = sorted({h for h in header if header.count(h) > 1})
            if duplicated or not all(header):
                raise InputFileError(f"{path}, line {line}: header has empty or repeated column names "
                                     f"{duplicated or header}")
            continue
        if problem:
            rows.append(InputRow(path, line, error=problem))
            continue
        if text is None or not text.strip():
            continue
        try:
            values = _parse_csv_line(text, delimiter)
        except RowError as exc:
            rows.append(InputRow(path, line, error=str(exc)))
            continue
        if len(values) > len(header):
            rows.append(InputRow(path, line, error=f"{len(values)} fields but the header has {len(header)} "
                                                   f"({', '.join(header)}); quote fields that contain "
                                                   f"'{delimiter}'"))
            continue
        values += [""] * (len(header) - len(values))
        rows.append(InputRow(path, line, data=dict(zip(header, values))))
    if header is None:
        raise InputFileError(f"{path}: empty table (no header line)")
    return header, rows


def read_jsonl_rows(path: str | Path) -> list[InputRow]:
    """One :class:`InputRow` per non-empty line; ``.json`` files: a JSON list of objects, one row per item."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _read_json_list(path)
    rows = []
    for line, text, problem in _lines(path):
        if problem:
            rows.append(InputRow(path, line, error=problem))
            continue
        if text is None or not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.append(InputRow(path, line, error=f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(data, dict):
            rows.append(InputRow(path, line, error=f"expected a JSON object, got {type(data).__name__}"))
            continue
        rows.append(InputRow(path, line, data=data))
    return rows


def _read_json_list(path: Path) -> list[InputRow]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputFileError(f"input file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    return [InputRow(path, i, data=item) if isinstance(item, dict)
            else InputRow(path, i, error=f"item {i} is not an object ({type(item).__name__})")
            for i, item in enumerate(data, start=1)]


# ------------------------------------------------------------------------------------------------ field types
def field_str(row: dict, key: str, *, required: bool = False, numbers: bool = True) -> str | None:
    """A text field: a string (with ``numbers``, a number is accepted and written as text: an id such as 1042);
    lists, objects and booleans are not. Paths are read with ``numbers=False``."""
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise RowError(f"'{key}' is missing")
        return None
    allowed = (str, int, float) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise RowError(f"'{key}' must be {'text' if numbers else 'a path (text)'}, got {type(value).__name__} "
                       f"{_show(value)}")
    return str(value)


def field_str_list(row: dict, key: str, *, separator: str | None = ";") -> list[str]:
    """A list of texts: a JSON list of strings, or one string split on ``separator``."""
    value = row.get(key)
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        parts = value.split(separator) if separator else [value]
        return [p.strip() for p in parts if p.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise RowError(f"'{key}' must be a list of texts (or one text), got {type(value).__name__} {_show(value)}")


def field_int(row: dict, key: str) -> int | None:
    """An integer field (an integral number or a decimal text)."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowError(f"'{key}' must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise RowError(f"'{key}' must be an integer, got {type(value).__name__} {_show(value)}")


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
