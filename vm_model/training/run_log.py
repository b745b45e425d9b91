"""The run's ``losses.jsonl``: one row per logged optimizer step, exactly once across a kill and ``--resume``.

Rows are appended as training goes; a killed run may have logged steps after its last checkpoint. A resumed run
repeats those steps from the checkpoint, so before it appends anything the rows with ``step`` greater than the
checkpoint's step are dropped (and a torn last line is removed), atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vm_common.io_utils import atomic_write_text, dumps_row, read_jsonl

logger = logging.getLogger(__name__)


def truncate_after_step(path: str | Path, step: int) -> int:
    """Keep the complete rows of ``path`` whose ``step`` is at most ``step``; returns the rows dropped.

    The file is rewritten (atomically) only when something is dropped or its last line is torn."""
    path = Path(path)
    if not path.exists():
        return 0
    rows = list(read_jsonl(path))
    kept = [r for r in rows if int(r.get("step", 0)) <= step]
    raw = path.read_bytes()
    torn = bool(raw) and not raw.endswith(b"\n")
    dropped = len(rows) - len(kept)
    if dropped or torn or len(rows) != sum(1 for ln in raw.splitlines() if ln.strip()):
        atomic_write_text(path, "".join(dumps_row(r) + "\n" for r in kept))
    if dropped:
        logger.info("%s: dropped %d row(s) logged after step %d (they are trained again on resume)", path,
                    dropped, step)
    return dropped
