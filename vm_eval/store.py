"""samples.jsonl: append-only rows, resume, per-process shards and their merge.

One row per (video, metric). A single process appends to ``DIR/samples.jsonl``; under ``accelerate launch`` each
process appends to ``DIR/shards/samples-NNNNN.jsonl`` (:func:`vm_common.distributed.shard_path`; the
``samples.NNN.jsonl`` shards of earlier versions are read too) and the main process merges them into
``samples.jsonl`` (de-duplicated on (method, sample_id, metric), sorted, written atomically) once all are done. All
rows of one video are appended in one write, so a killed run loses at most the video in flight.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from vm_common.distributed import SHARD_DIR, ProcessInfo, shard_files, shard_path
from vm_common.io_utils import append_jsonl, atomic_write_text, dumps_row, read_jsonl, repair_jsonl

from vm_common.status import SKIPPED

from .metrics import METRICS
from .results import MODEL_UNAVAILABLE

logger = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
SAMPLES_SHARD = "samples"  # shards/samples-NNNNN.jsonl
_METRIC_ORDER = {m: i for i, m in enumerate(METRICS)}


def row_key(row: dict) -> tuple[str, str, str]:
    return (str(row.get("method")), str(row.get("sample_id")), str(row.get("metric")))


def dedupe(rows: Iterable[dict]) -> list[dict]:
    """The last row per (method, sample_id, metric), in a stable order (independent of how work was split)."""
    latest: dict[tuple[str, str, str], dict] = {}
    for r in rows:
        latest[row_key(r)] = r
    return sorted(latest.values(), key=lambda r: (str(r.get("method")), str(r.get("sample_id")),
                                                  _METRIC_ORDER.get(r.get("metric"), 99), str(r.get("metric"))))


def read_samples(out_dir: Path) -> list[dict]:
    """All rows of a run folder (merged file and any shards left by an interrupted multi-process run)."""
    out_dir = Path(out_dir)
    rows = list(read_jsonl(out_dir / SAMPLES))
    for shard in shard_files(out_dir, SAMPLES_SHARD):
        rows.extend(read_jsonl(shard))
    return dedupe(rows)


class SampleStore:
    def __init__(self, out_dir: Path, proc: ProcessInfo | None = None):
        self.out_dir = Path(out_dir)
        self.proc = proc or ProcessInfo()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.proc.count == 1:
            self.path = self.out_dir / SAMPLES
            own = [self.path]
        else:
            self.path = shard_path(self.out_dir, SAMPLES_SHARD, self.proc.index)
            own = [self.path, *shard_files(self.out_dir, SAMPLES_SHARD, index=self.proc.index)]  # + older names
        for path in dict.fromkeys(own):  # a torn last line from a killed writer; only this process's own files
            repair_jsonl(path)

    def existing(self) -> set[tuple[str, str, str]]:
        """Keys of the rows a resumed run keeps: all but skips for a model that was unavailable
        (``MetricResult.unavailable``), which are scored again (the new row replaces the old one on merge)."""
        return {row_key(r) for r in read_samples(self.out_dir)
                if not (r.get("status") == SKIPPED and (r.get("detail") or {}).get(MODEL_UNAVAILABLE))}

    def append(self, rows: list[dict]) -> None:
        append_jsonl(self.path, rows)

    def drop(self, keys: set[tuple[str, str]]) -> int:
        """Main process, while no other process writes: remove every row of the (method, sample_id) ``keys``
        (``--overwrite`` of stale results), folding any shards into samples.jsonl. Returns the rows removed."""
        rows = read_samples(self.out_dir)
        kept = [r for r in rows if (str(r.get("method")), str(r.get("sample_id"))) not in keys]
        atomic_write_text(self.out_dir / SAMPLES, "".join(dumps_row(r) + "\n" for r in kept))
        for shard in shard_files(self.out_dir, SAMPLES_SHARD):
            shard.unlink()
        return len(rows) - len(kept)

    def merge(self) -> int:
        """Main process: fold every shard into samples.jsonl. Returns the number of rows."""
        rows = read_samples(self.out_dir)
        atomic_write_text(self.out_dir / SAMPLES, "".join(dumps_row(r) + "\n" for r in rows))
        for shard in shard_files(self.out_dir, SAMPLES_SHARD):
            shard.unlink()
        try:
            (self.out_dir / SHARD_DIR).rmdir()
        except OSError:  # absent, or holds something else
            pass
        return len(rows)
