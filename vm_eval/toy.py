"""The toy benchmark's metrics as vm_eval results: ``toy_fidelity`` and ``toy_motion`` (family ``toy``).

They are :mod:`vm_model.toy.metrics` applied to a generated video: the colour earth mover's distance between the
generated subject and the reference subject (the reference as scored: the subject on white), and whether the
subject's mean DIS optical flow points in the direction the prompt names. Neither needs model weights.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .results import MetricResult

MODEL_ID = "vm_model.toy.metrics (colour earth mover's distance, OpenCV DIS flow; no weights)"


class ToyMetrics:
    """Scores videos of the toy domain (a coloured subject on the known dark background)."""

    model_id = MODEL_ID

    def __init__(self, seed: int = 0):
        self.seed = seed  # of the pixel samples the earth mover's distance is computed on

    def score(self, frames: np.ndarray, reference: Image.Image, prompt: str,
              names: tuple[str, ...] = ("toy_fidelity", "toy_motion")) -> dict[str, MetricResult]:
        """``frames``: uint8 (F, H, W, 3); ``reference``: the subject on white; ``prompt``: names a direction."""
        from vm_model.toy.domain import direction_in_caption
        from vm_model.toy.metrics import fidelity_error, mean_subject_flow, motion_direction

        out: dict[str, MetricResult] = {}
        if "toy_fidelity" in names:
            ref = np.asarray(reference.convert("RGB"))
            try:
                out["toy_fidelity"] = MetricResult.ok(fidelity_error(frames, ref, seed=self.seed))
            except ValueError as exc:  # a reference with no subject pixels
                out["toy_fidelity"] = MetricResult.error(str(exc))
        if "toy_motion" in names:
            wanted = direction_in_caption(prompt)
            if wanted is None:
                out["toy_motion"] = MetricResult.error(f"the prompt names no single direction: {prompt!r}")
            else:
                predicted = motion_direction(frames)
                flow = [round(float(v), 3) for v in mean_subject_flow(frames)]
                out["toy_motion"] = MetricResult.ok(float(predicted == wanted), captioned=wanted,
                                                    predicted=predicted, mean_flow_px_per_frame=flow)
        return out
