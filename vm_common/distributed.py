"""One run, several processes: who this process is, which share of the work is its, and where it writes.

Every sharded command (`vm preprocess-dataset`, `vm bench run` / `score`) does the same three things:

- :func:`process_info` - this process's index among the processes of ``accelerate launch`` (or torchrun), their
  count, a barrier and its device, obtained one way: a process that was not launched is process 0 of 1 and never
  touches ``torch.distributed``; launched processes use CPU (gloo) exactly when :func:`vm_common.devices.use_cpu`
  says so (``--device cpu``, ``ACCELERATE_USE_CPU``, no GPU).
- :func:`split_for_process` - item ``i`` of the input (in its stable order) belongs to process ``i % count``, the
  rule of webdataset's ``split_by_node``; shares are disjoint and together cover every item once.
- :func:`shard_path` / :func:`shard_files` - each process appends to its own file ``DIR/shards/<kind>-NNNNN<ext>``
  (five-digit index), which the main process merges. Readers also accept the older ``<kind>.NNN<ext>`` form
  (``samples.000.jsonl`` of earlier `vm bench` runs), so folders written before still resume and merge.

`vm train` keeps accelerate's ``Accelerator`` (it shards batches itself) but decides CPU by the same rule.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from .devices import default_device, use_cpu

logger = logging.getLogger(__name__)

T = TypeVar("T")

SHARD_DIR = "shards"
INDEX_DIGITS = 5
_KIND = re.compile(r"[A-Za-z0-9_]+")
# "<kind>-00003.jsonl" (the naming written now) or "<kind>.003.jsonl" (older runs); nothing hidden or temporary
_SHARD_NAME = re.compile(r"(?P<kind>[A-Za-z0-9_]+)[-.](?P<index>\d+)(?P<suffix>\..+)")


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class ProcessInfo:
    """This process's place in a run. The default is a lone process (index 0 of 1) with no-op synchronisation.

    ``device`` is the torch device this process should use (``None``: let the caller decide); ``barrier`` waits
    for every process; ``shutdown`` releases the process group (see :meth:`finish`).
    """

    index: int = 0
    count: int = 1
    device: str | None = None
    barrier: Callable[[], None] = field(default=_nothing, repr=False, compare=False)
    shutdown: Callable[[], None] = field(default=_nothing, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"process index {self.index} out of range for {self.count} process(es)")

    @property
    def is_main(self) -> bool:
        """The process that prepares shared state and merges the shards."""
        return self.index == 0

    def finish(self) -> None:
        """At the end of a multi-process run: wait for every process, then release the process group."""
        if self.count > 1:
            self.barrier()
            self.shutdown()


def launched_process_count() -> int:
    """How many processes the launcher started (``WORLD_SIZE``, set by ``accelerate launch`` and torchrun); 1 when
    this process was started directly."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        logger.warning("ignoring WORLD_SIZE=%r (not a number); running as a single process",
                       os.environ.get("WORLD_SIZE"))
        return 1


def process_info(device: str | None = None) -> ProcessInfo:
    """This process's :class:`ProcessInfo`. ``device`` is the user's ``--device`` (``None``: the default one)."""
    if launched_process_count() <= 1:
        return ProcessInfo(device=device or default_device())
    from accelerate import PartialState

    state = PartialState(cpu=use_cpu(device))
    return ProcessInfo(index=state.process_index, count=state.num_processes, device=device or str(state.device),
                       barrier=state.wait_for_everyone, shutdown=state.destroy_process_group)


def split_for_process(items: Iterable[T], proc: ProcessInfo) -> list[T]:
    """This process's share of ``items``: item ``i`` goes to process ``i % proc.count`` (round robin)."""
    return list(itertools.islice(items, proc.index, None, proc.count))


# ---------------------------------------------------------------------------------------------------- shards
def shard_name(kind: str, index: int, suffix: str = ".jsonl") -> str:
    """File name of process ``index``'s shard of ``kind``: ``shard_name("samples", 3) == "samples-00003.jsonl"``."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"shard kind must be letters, digits or '_', got {kind!r}")
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"{kind}-{index:0{INDEX_DIGITS}d}{suffix}"


def parse_shard_name(name: str) -> tuple[str, int, str] | None:
    """``(kind, index, suffix)`` of a shard file name in either naming (``kind-00003.jsonl``, ``kind.003.jsonl``),
    or ``None`` for any other name (temporary files of interrupted writes included)."""
    match = _SHARD_NAME.fullmatch(name)
    if match is None:
        return None
    return match["kind"], int(match["index"]), match["suffix"]


def shard_path(folder: str | os.PathLike, kind: str, index: int, suffix: str = ".jsonl") -> Path:
    """Where process ``index`` writes its shard of ``kind`` in the run folder ``folder``."""
    return Path(folder) / SHARD_DIR / shard_name(kind, index, suffix)


def shard_files(folder: str | os.PathLike, kind: str, suffix: str = ".jsonl", *, index: int | None = None,
                old_kinds: Iterable[str] = ()) -> list[Path]:
    """The shards of ``kind`` (or of a former name of it in ``old_kinds``) in ``folder``/shards, in either naming,
    ordered by process index; only those of process ``index`` when given. No shard folder: an empty list."""
    shard_dir = Path(folder) / SHARD_DIR
    if not shard_dir.is_dir():
        return []
    kinds = {kind, *old_kinds}
    found = []
    for path in shard_dir.iterdir():
        parsed = parse_shard_name(path.name)
        if parsed is None or not path.is_file():
            continue
        k, i, sfx = parsed
        if k in kinds and sfx == suffix and (index is None or i == index):
            found.append((i, path.name, path))
    return [path for _, _, path in sorted(found)]
