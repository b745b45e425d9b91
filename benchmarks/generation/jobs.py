"""The generation measurements as jobs of ``benchmarks.harness.jobs``: ``build`` writes the random components once
(``spec["model_dir"]``), ``generate`` loads a pipeline from them and times its settings
(:func:`benchmarks.generation.measure.measure_settings`), writing the results so far to ``spec["partial_path"]``
after every run when one is given."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.generation.components import build_components
from benchmarks.generation.measure import measure_settings

MODULE = __name__
MEASURED_CODE = ("vm_model/pipeline.py", "vm_model/protocol.py", "vm_model/execution.py", "vm_model/pisa.py",
                 "vm_model/unet_call.py")


def job_build(spec: dict) -> dict:
    return build_components(spec["preset"], spec["model_dir"], seed=int(spec.get("seed", 0)))


def job_generate(spec: dict) -> dict:
    partial = spec.get("partial_path")

    def progress(out: dict) -> None:
        if partial:
            Path(partial).write_text(json.dumps(out, indent=1))

    return measure_settings(spec, progress)


JOBS = {"build": job_build, "generate": job_generate}
