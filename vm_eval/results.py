"""A metric's answer for one video: a value with status ``ok``, or ``skipped`` / ``error`` with a reason.

A failure is never turned into a number: ``value`` is ``None`` unless the status is ``ok``. The status words are
those of a step result in :mod:`vm_common.status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vm_common.status import ERROR, OK, RESULT_STATUSES, SKIPPED

MODEL_UNAVAILABLE = "model_unavailable"  # detail key of a skip a later run retries (MetricResult.unavailable)


@dataclass(frozen=True)
class MetricResult:
    value: float | None
    status: str = OK
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in RESULT_STATUSES:
            raise ValueError(f"unknown metric status {self.status!r}; expected one of {RESULT_STATUSES}")
        if self.status == OK and self.value is None:
            raise ValueError("an ok result needs a value")
        if self.status != OK and self.value is not None:
            raise ValueError(f"a {self.status} result must not carry a value (got {self.value!r})")
        if self.status != OK and not self.reason:
            raise ValueError(f"a {self.status} result needs a reason")

    @classmethod
    def ok(cls, value: float, **detail: Any) -> "MetricResult":
        return cls(float(value), OK, "", dict(detail))

    @classmethod
    def skipped(cls, reason: str, **detail: Any) -> "MetricResult":
        return cls(None, SKIPPED, reason, dict(detail))

    @classmethod
    def unavailable(cls, reason: str, **detail: Any) -> "MetricResult":
        """Skipped because the metric's model could not be had in this run (weights missing, a judge off): the row
        carries ``detail[MODEL_UNAVAILABLE]`` and a later run of the same command scores it again, so adding the
        weights afterwards fills the column without --overwrite."""
        return cls(None, SKIPPED, reason, {**detail, MODEL_UNAVAILABLE: True})

    @classmethod
    def error(cls, reason: str, **detail: Any) -> "MetricResult":
        return cls(None, ERROR, reason, dict(detail))
