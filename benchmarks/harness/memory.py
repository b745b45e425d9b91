"""Peak memory of a block of code above the level at its start, and a guard against using too much.

On CUDA the peak is ``torch.cuda.max_memory_allocated``. On CPU it is the peak of the bytes held by tensors (from
the profiler's memory events, the same definition), and also the peak of the process's resident set, which counts
memory outside tensors too (library scratch, malloc caching): ``VmHWM`` reset through ``/proc/self/clear_refs``,
or ``ru_maxrss`` where that reset is not possible.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import threading
import time

import torch

logger = logging.getLogger(__name__)

MEMORY_GUARD_EXIT = 86  # exit code of a process stopped by :func:`start_memory_guard`


def proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None where there is none."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: peak memory above the level at entry, in bytes.

    ``.peak_bytes``: on CUDA ``max_memory_allocated``; on CPU the peak of tensor bytes. ``.rss_peak_bytes`` (CPU
    only, else None): the peak of the resident set. ``.method`` / ``.rss_method`` say how each was measured.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.rss_peak_bytes: int | None = None
        self.method = ""
        self.rss_method = ""

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated - memory_allocated at start"
            return self
        rss = proc_status_kib("VmRSS")
        self._hwm = rss is not None and _reset_rss_peak()
        if self._hwm:
            self.baseline_bytes = rss * 1024
            self.rss_method = "VmHWM (reset via /proc/self/clear_refs) - VmRSS at start"
        else:  # ru_maxrss cannot be reset: the baseline is the high-water mark so far (may under-report)
            self.baseline_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.rss_method = "ru_maxrss - ru_maxrss at start"
        self.method = "peak of tensor bytes allocated (torch.profiler memory events) - level at start"
        self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.peak_bytes = max(0, torch.cuda.max_memory_allocated(self.device) - self.baseline_bytes)
            return
        if self._hwm:
            rss_peak = proc_status_kib("VmHWM") * 1024
        else:
            rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.rss_peak_bytes = max(0, rss_peak - self.baseline_bytes)
        self._prof.__exit__(*exc)
        events = [e for e in self._prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        level = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            level += e.nbytes()
            peak = max(peak, level)
        self.peak_bytes = peak


def peak_fields(mem: PeakMemory) -> dict:
    """A finished :class:`PeakMemory` as result fields: ``peak_bytes``, ``rss_peak_bytes``, ``baseline_bytes``,
    ``method``, ``rss_method``."""
    return dict(peak_bytes=mem.peak_bytes, rss_peak_bytes=mem.rss_peak_bytes, baseline_bytes=mem.baseline_bytes,
                method=mem.method, rss_method=mem.rss_method)


def start_memory_guard(limit_bytes: int, interval_s: float = 0.1) -> None:
    """Exit this process (code :data:`MEMORY_GUARD_EXIT`) as soon as its resident set passes ``limit_bytes``: on a
    shared machine a clean abort beats the kernel's OOM killer picking someone else's process."""

    def watch() -> None:
        while True:
            rss = proc_status_kib("VmRSS")
            if rss is not None and rss * 1024 > limit_bytes:
                logger.error("resident set %.2f GiB passed the memory guard of %.2f GiB: aborting this job",
                             rss / 2**20, limit_bytes / 2**30)
                os._exit(MEMORY_GUARD_EXIT)
            time.sleep(interval_s)

    threading.Thread(target=watch, name="memory-guard", daemon=True).start()
