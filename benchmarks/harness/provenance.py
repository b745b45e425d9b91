"""What produced a result, built on :mod:`vm_common.provenance` (time, commit, versions, platform).

Benchmarks add to it only what a timing needs beside it: the CPU model, core and thread counts
(:func:`device_info`), and whether the modules being measured differ from the recorded commit
(:func:`code_version`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch

from vm_common.provenance import device_description, git_commit, provenance
from benchmarks.harness.device import cpu_model

__all__ = ["code_version", "device_description", "device_info", "provenance"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def device_info(device: str, prov: dict | None = None) -> dict:
    """The machine a measurement ran on: device, CPU model and count, torch (with its build suffix) and thread
    count, python, platform, diffusers; on CUDA also the GPU and the CUDA version. ``prov``: a
    :func:`provenance` record already taken (else one is taken)."""
    prov = prov or provenance()
    info = dict(device=device, cpu_model=cpu_model(), cpu_count=os.cpu_count(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(), python=prov["python"], platform=prov["platform"])
    if prov["versions"].get("diffusers"):
        info["diffusers"] = prov["versions"]["diffusers"]
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def code_version(measured_files: tuple[str, ...] = ()) -> dict:
    """``commit`` (the checkout's HEAD) and ``modified_measured_files``: those of ``measured_files`` (paths from the
    repository root) that differ from it. Empty when git does not answer. Read-only git calls."""
    commit = git_commit(REPO_ROOT)
    if not commit:
        return {}
    modified = []
    for path in measured_files:
        try:
            changed = subprocess.run(["git", "-C", str(REPO_ROOT), "diff", "--quiet", "HEAD", "--", path],
                                     capture_output=True, timeout=10).returncode != 0
        except (OSError, subprocess.SubprocessError):
            changed = True  # unknown counts as modified: the record must not claim a clean checkout
        if changed:
            modified.append(path)
    return dict(commit=commit.removesuffix("-dirty"), modified_measured_files=modified)
