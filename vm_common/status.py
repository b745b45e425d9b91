"""The status words written into rows, one vocabulary for the whole toolkit.

Two levels, each a closed set; the words are file format (old manifests and ``samples.jsonl`` hold them), so they
never change:

A **step result** - one metric of one video (:class:`vm_eval.results.MetricResult`), the subject highlight of one
image (:class:`vm_data.highlight.HighlightResult`), the preparation of a benchmark's reference image:

- ``ok``: the step ran and its output (value, image) is there;
- ``skipped``: the step did not apply to this input (say, face similarity on a video without a face); the reason
  says why; no value;
- ``error``: the step failed (unreadable file, a model raised); the reason carries the message; no value;
- ``unavailable``: the step was asked for but its component is not installed, so the input went on unchanged
  (reference preparation without vm_data).

A subject highlight that decides against an image reports the rejection reason from :mod:`vm_data.filters`
(``no_detection``, ``multiple_subjects`` ...) as its status instead of ``ok``.

A **clip row** of the training manifest (``vm preprocess-dataset`` writes it, ``vm train`` reads the kept rows):

- ``kept``: the clip passed every filter and has references;
- ``rejected``: a filter turned it down; ``reason`` names the filter (:mod:`vm_data.filters`);
- ``error``: it could not be processed (unreadable video, a model failed); ``reason`` carries the message and
  ``extra["error_kind"]`` the kind.
"""

from __future__ import annotations

from typing import Literal

OK = "ok"
SKIPPED = "skipped"
ERROR = "error"
UNAVAILABLE = "unavailable"
#: the statuses of a metric result (MetricResult accepts exactly these)
RESULT_STATUSES: tuple[str, ...] = (OK, SKIPPED, ERROR)

KEPT = "kept"
REJECTED = "rejected"
#: the statuses of a clip row of the training manifest
CLIP_STATUSES: tuple[str, ...] = (KEPT, REJECTED, ERROR)
ClipStatus = Literal["kept", "rejected", "error"]  # the same words, for type checkers (tested to agree)
