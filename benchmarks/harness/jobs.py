"""Measurement jobs, each optionally in a fresh Python process so that memory peaks do not pollute each other.

A job is a function ``spec (JSON-able dict) -> result (JSON-able dict)`` listed in the ``JOBS`` dict of a module
(e.g. ``benchmarks.pisa.jobs``). :func:`run_job` runs it in this process, or starts
``python -m benchmarks.harness.jobs MODULE JOB SPEC.json OUT.json``, which applies the spec's ``threads`` and, on
CPU, its ``max_rss_gb`` memory guard, runs the job and writes the result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from benchmarks.harness.cli import setup_logging
from benchmarks.harness.memory import MEMORY_GUARD_EXIT, start_memory_guard

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def job_function(module: str, name: str) -> Callable[[dict], dict]:
    return importlib.import_module(module).JOBS[name]


def run_job(module: str, name: str, spec: dict, isolate: bool, workdir: Path) -> dict:
    """Run job ``name`` of ``module`` on ``spec``; in a fresh process when ``isolate`` (spec and result travel as
    JSON files in ``workdir``). Raises MemoryError when the process passed its memory guard."""
    t0 = time.perf_counter()
    if not isolate:
        result = job_function(module, name)(spec)
    else:
        spec_path = workdir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.json"
        out_path = spec_path.with_suffix(".out.json")
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}  # `benchmarks` from any folder
        proc = subprocess.run([sys.executable, "-m", __name__, module, name, str(spec_path), str(out_path)], env=env)
        if proc.returncode == MEMORY_GUARD_EXIT:
            raise MemoryError(f"benchmark job {name} passed the {spec.get('max_rss_gb')} GiB memory guard "
                              f"(spec {spec}); use a smaller shape or raise --max-rss-gb")
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark job {name} failed with exit code {proc.returncode} (spec {spec})")
        result = json.loads(out_path.read_text())
    logger.info("job %s done in %.1f s", name, time.perf_counter() - t0)
    return result


def worker_main(argv: list[str] | None = None) -> int:
    """The fresh process of an isolated job."""
    p = argparse.ArgumentParser(description="run one benchmark job (started by benchmarks.harness.jobs.run_job)")
    p.add_argument("module")
    p.add_argument("job")
    p.add_argument("spec", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    setup_logging()
    spec = json.loads(args.spec.read_text())
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    if spec.get("max_rss_gb") and not str(spec.get("device", "cpu")).startswith("cuda"):
        start_memory_guard(int(float(spec["max_rss_gb"]) * 2**30))
    result = job_function(args.module, args.job)(spec)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
