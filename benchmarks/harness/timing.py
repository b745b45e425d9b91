"""Timing: the median of repeats, one timed call, and several calls measured side by side.

Side by side means interleaved: every repeat runs each call once, so that a slow period of a shared machine falls
on all of them instead of on whichever ran then. The order within a repeat is ``fixed`` (as given), ``rotate``
(shifted by one per repeat) or ``alternate`` (as given on even repeats, reversed on odd ones).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

logger = logging.getLogger(__name__)

ORDERS = ("fixed", "rotate", "alternate")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Timed:
    """What :func:`timed` measured: the call's value, its wall seconds and this process's CPU seconds."""

    value: Any
    wall_s: float
    cpu_s: float


def timed(call: Callable[[], Any], sync: Callable[[], None] | None = None) -> Timed:
    """Run ``call`` once; ``sync`` (e.g. a CUDA synchronize) runs before the clocks start and before they stop."""
    if sync:
        sync()
    c0, t0 = time.process_time(), time.perf_counter()
    value = call()
    if sync:
        sync()
    return Timed(value, time.perf_counter() - t0, time.process_time() - c0)


def repeat_order(names: list[str], repeat: int, order: str) -> list[str]:
    """The order of ``names`` in repeat number ``repeat`` (0-based) under an order rule of :data:`ORDERS`."""
    if order == "fixed":
        return list(names)
    if order == "rotate":
        k = repeat % len(names)
        return names[k:] + names[:k]
    if order == "alternate":
        return list(names) if repeat % 2 == 0 else list(reversed(names))
    raise ValueError(f"unknown order {order!r}; one of {ORDERS}")


@dataclass
class SideBySide:
    """Per call name: wall and CPU seconds of every repeat, the order of each repeat, the last value returned."""

    wall_s: dict[str, list[float]]
    cpu_s: dict[str, list[float]]
    orders: list[list[str]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)

    def medians(self) -> dict[str, float]:
        return {name: median(times) for name, times in self.wall_s.items()}


def side_by_side(calls: Mapping[str, Callable[[], Any]], repeats: int, *, order: str = "fixed",
                 before: Callable[[str], Any] | None = None, sync: Callable[[], None] | None = None,
                 label: str = "") -> SideBySide:
    """Time every call of ``calls`` once per repeat, interleaved (see the module docstring for ``order``).

    ``before(name)`` runs untimed ahead of each call (e.g. switching the model to that variant).
    """
    names = list(calls)
    out = SideBySide({n: [] for n in names}, {n: [] for n in names})
    for r in range(repeats):
        this_order = repeat_order(names, r, order)
        out.orders.append(this_order)
        for name in this_order:
            if before:
                before(name)
            t = timed(calls[name], sync)
            out.wall_s[name].append(t.wall_s)
            out.cpu_s[name].append(t.cpu_s)
            out.last[name] = t.value
            logger.info("%srepeat %d/%d %-11s %.3f s (process CPU time %.1f s)", f"{label}: " if label else "",
                        r + 1, repeats, name, t.wall_s, t.cpu_s)
    return out
