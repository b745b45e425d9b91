"""The PISA measurements as jobs of ``benchmarks.harness.jobs``: ``spec`` (JSON) in, result (JSON) out.

``build`` makes the random-weight UNet once and saves it to ``spec["weights"]``; every other job loads it, so
that each can run in its own fresh process.
"""

from __future__ import annotations

import time

import torch

from benchmarks.harness.device import torch_dtype
from benchmarks.pisa.forward import forward_peak_memory, time_forwards
from benchmarks.pisa.model import build_unet, load_unet
from benchmarks.pisa.sdpa_probe import sdpa_layout_probe
from benchmarks.pisa.train_step import training_step_memory

MODULE = __name__  # what ``benchmarks.harness.jobs.run_job`` is given
MEASURED_CODE = ("vm_model/pisa.py", "vm_model/unet_call.py", "vm_model/grad_checkpointing.py", "vm_model/train.py")


def job_build(spec: dict) -> dict:
    t0 = time.perf_counter()
    unet = build_unet(spec["preset"], seed=spec.get("seed", 0))
    built = time.perf_counter() - t0
    torch.save(unet.state_dict(), spec["weights"])
    return dict(build_s=built, parameters=sum(p.numel() for p in unet.parameters()),
                motion_module_parameters=sum(p.numel() for n, p in unet.named_parameters() if "motion_modules" in n))


def _unet(spec: dict, dtype: str | None = None):
    return load_unet(spec["preset"], spec["weights"], spec["device"], torch_dtype(dtype or spec["dtype"]))


def job_timing(spec: dict) -> dict:
    return time_forwards(_unet(spec), spec["preset"], tuple(spec["variants"]), spec["frames"], spec["resolution"],
                         spec["repeats"], spec["device"], torch_dtype(spec["dtype"]), warmup=spec["warmup"])


def job_forward_memory(spec: dict) -> dict:
    return forward_peak_memory(_unet(spec), spec["preset"], spec["variant"], spec["frames"], spec["resolution"],
                               spec["device"], torch_dtype(spec["dtype"]))


def job_train_memory(spec: dict) -> dict:
    return training_step_memory(_unet(spec, "float32"), spec["preset"], spec["frames"], spec["resolution"],
                                spec["checkpointing"], spec["device"], torch_dtype(spec["dtype"]))


def job_sdpa_probe(spec: dict) -> dict:
    return sdpa_layout_probe(spec["preset"], spec["frames"], spec["resolution"], spec["device"],
                             torch_dtype(spec["dtype"]), spec["repeats"])


JOBS = {"build": job_build, "timing": job_timing, "forward_memory": job_forward_memory,
        "train_memory": job_train_memory, "sdpa_probe": job_sdpa_probe}
