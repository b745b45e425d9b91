"""Reference-injection schedules: the weight w in [0, 1] of the reference inside PISA at each denoising step.

w = 1 is the paper's PISA; w = 0 is each frame's stock self-attention over its own tokens (the reference reaches
the video only through the motion modules); in between, every attention logit from a token to a token of another
frame (for a generated frame: the reference tokens) is shifted by log w (``vm_model.pisa``).

A schedule is written as one string (``vm generate --injection-schedule``, YAML ``generation.injection_schedule``).
The position of step i of n is ``p = i / (n - 1)``: 0 at the first (noisiest) step, 1 at the last (p = 0 when
n = 1).

- ``constant``: w = 1 at every step (the paper; the default).
- ``customcrafter`` or ``customcrafter:F``: CustomCrafter-style: w = 0 while p < F, then 1 (F defaults to
  :data:`DEFAULT_OFF_FRACTION`, our choice, not a number from the CustomCrafter paper).
- ``linear`` or ``linear:A:B``: w = 0 while p <= A, rising linearly to 1 at p = B, 1 after (default A=0, B=1).
- ``P:W,P:W,...``: piecewise constant: at position p the weight of the last point with P <= p. The first point
  must be at 0 and the positions must increase, e.g. ``0:0,0.4:1`` (off for the first 40% of the trajectory).

Specs are checked when parsed (:func:`parse_injection_schedule`), so a bad flag fails before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_OFF_FRACTION = 0.4
NAMED = ("constant", "customcrafter", "linear")


@dataclass(frozen=True)
class InjectionSchedule:
    """A parsed schedule: ``kind`` is ``steps`` (piecewise constant over ``points``) or ``ramp`` (linear from
    ``points[0]`` to ``points[1]``, each a (position, weight) pair)."""

    spec: str
    kind: str
    points: tuple[tuple[float, float], ...]

    @property
    def is_constant(self) -> bool:
        """True when every step has w = 1 (the paper): the pipeline then takes today's code path."""
        return self.kind == "steps" and all(w == 1.0 for _, w in self.points)

    def weight_at(self, position: float) -> float:
        """The weight at ``position`` in [0, 1] of the trajectory."""
        if self.kind == "ramp":
            (start, _), (end, _) = self.points
            if position <= start:
                return 0.0
            if position >= end:
                return 1.0
            return (position - start) / (end - start)
        weight = self.points[0][1]
        for at, w in self.points:
            if at <= position:
                weight = w
        return weight

    def weights(self, num_steps: int) -> list[float]:
        """One weight per denoising step (step i at position i / (num_steps - 1))."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        last = max(num_steps - 1, 1)
        return [self.weight_at(i / last if num_steps > 1 else 0.0) for i in range(num_steps)]


def _number(text: str, what: str, spec: str, lo: float = 0.0, hi: float = 1.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"injection schedule {spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"injection schedule {spec!r}: {what} must be in [{lo:g}, {hi:g}], got {text}")
    return value


def _named(spec: str, name: str, args: list[str]) -> InjectionSchedule:
    if name == "constant":
        if args:
            raise ValueError(f"injection schedule {spec!r}: 'constant' takes no arguments")
        return InjectionSchedule(spec, "steps", ((0.0, 1.0),))
    if name == "customcrafter":
        if len(args) > 1:
            raise ValueError(f"injection schedule {spec!r}: write customcrafter or customcrafter:F")
        off = _number(args[0], "the off fraction F", spec) if args else DEFAULT_OFF_FRACTION
        points = ((0.0, 0.0), (off, 1.0)) if off > 0 else ((0.0, 1.0),)
        return InjectionSchedule(spec, "steps", points)
    if len(args) not in (0, 2):
        raise ValueError(f"injection schedule {spec!r}: write linear or linear:A:B")
    start, end = (_number(args[0], "the ramp start A", spec), _number(args[1], "the ramp end B", spec)) \
        if args else (0.0, 1.0)
    if not end > start:
        raise ValueError(f"injection schedule {spec!r}: the ramp end B must be after its start A")
    return InjectionSchedule(spec, "ramp", ((start, 0.0), (end, 1.0)))


def _points(spec: str) -> InjectionSchedule:
    points = []
    for item in spec.split(","):
        parts = item.strip().split(":")
        if len(parts) != 2:
            raise ValueError(f"injection schedule {spec!r}: {item.strip()!r} is not POSITION:WEIGHT "
                             f"(or use one of {', '.join(NAMED)})")
        points.append((_number(parts[0], "a position", spec), _number(parts[1], "a weight", spec)))
    if points[0][0] != 0.0:
        raise ValueError(f"injection schedule {spec!r}: the first point must be at position 0")
    if any(b[0] <= a[0] for a, b in zip(points, points[1:])):
        raise ValueError(f"injection schedule {spec!r}: positions must increase")
    return InjectionSchedule(spec, "steps", tuple(points))


def parse_injection_schedule(spec: str) -> InjectionSchedule:
    """Parse a schedule string (module docstring); ValueError names the spec and what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"injection schedule must be a non-empty string, got {spec!r}")
    text = spec.strip().lower()
    name, *args = text.split(":")
    if name in NAMED:
        return _named(spec, name, args)
    return _points(text)


def schedule_weights(schedule: str | InjectionSchedule | list[float] | tuple[float, ...] | None,
                     num_steps: int) -> list[float] | None:
    """Per-step weights from a spec, a parsed schedule or an explicit list (checked: one weight in [0, 1] per
    step). None, and any schedule that is 1 everywhere, give None: the paper's PISA, today's code path."""
    if schedule is None:
        return None
    if isinstance(schedule, str):
        schedule = parse_injection_schedule(schedule)
    if isinstance(schedule, InjectionSchedule):
        weights = schedule.weights(num_steps)
    else:
        weights = [float(w) for w in schedule]
        if len(weights) != num_steps:
            raise ValueError(f"injection weights: got {len(weights)} weights for {num_steps} denoising steps")
        bad = [w for w in weights if not (math.isfinite(w) and 0.0 <= w <= 1.0)]
        if bad:
            raise ValueError(f"injection weights must be in [0, 1], got {bad[0]}")
    return None if all(w == 1.0 for w in weights) else weights
