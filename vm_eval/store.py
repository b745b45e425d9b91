"""samples.jsonl: append-only rows, resume, per-process shards and their merge.

One row per (video, metric). A single process appends to ``DIR/samples.jsonl``; under ``accelerate launch`` each
process appends to ``DIR/shards/samples.<index>.jsonl`` and the main process merges them into ``samples.jsonl``
(de-duplicated on (method, sample_id, metric), sorted, written atomically) once all are done. All rows of one
video are appended in one write, so a killed run loses at most the video in flight.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from vm_common.io_utils import append_jsonl, atomic_write_text, dumps_row, read_jsonl, repair_jsonl

from .metrics import METRICS

logger = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
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
    for shard in sorted((out_dir / "shards").glob("samples.*.jsonl")) if (out_dir / "shards").is_dir() else []:
        rows.extend(read_jsonl(shard))
    return dedupe(rows)


@dataclass
class ProcessInfo:
    index: int = 0
    count: int = 1
    barrier: Callable[[], None] = lambda: None

    @property
    def is_main(self) -> bool:
        return self.index == 0


def process_info() -> ProcessInfo:
    """This process's place among ``accelerate launch`` workers (a single process when not launched)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ProcessInfo()
    import torch
    from accelerate import PartialState

    # without a GPU the processes of `accelerate launch --multi_gpu` must be told to use CPU (gloo), or each
    # silently believes it runs alone
    state = PartialState(cpu=not torch.cuda.is_available())
    return ProcessInfo(state.process_index, state.num_processes, state.wait_for_everyone)


class SampleStore:
    def __init__(self, out_dir: Path, proc: ProcessInfo | None = None):
        self.out_dir = Path(out_dir)
        self.proc = proc or ProcessInfo()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.proc.count == 1:
            self.path = self.out_dir / SAMPLES
        else:
            self.path = self.out_dir / "shards" / f"samples.{self.proc.index:03d}.jsonl"
        repair_jsonl(self.path)  # a torn last line from a killed writer; only our own file

    def existing(self) -> set[tuple[str, str, str]]:
        return {row_key(r) for r in read_samples(self.out_dir)}

    def append(self, rows: list[dict]) -> None:
        append_jsonl(self.path, rows)

    def merge(self) -> int:
        """Main process: fold every shard into samples.jsonl. Returns the number of rows."""
        shard_dir = self.out_dir / "shards"
        rows = read_samples(self.out_dir)
        atomic_write_text(self.out_dir / SAMPLES, "".join(dumps_row(r) + "\n" for r in rows))
        if shard_dir.is_dir():
            for shard in shard_dir.glob("samples.*.jsonl"):
                shard.unlink()
            try:
                shard_dir.rmdir()
            except OSError:
                pass
        return len(rows)
