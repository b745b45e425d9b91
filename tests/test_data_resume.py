"""Faults at scale: kill -9 mid-run then --resume (every clip exactly once, no temporaries), torn shard lines,
and a real 2-process `accelerate launch` that splits clips disjointly and merges one manifest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vm_data.synthetic import make_synthetic_dataset

FAST = ["--detector", "synthetic-color", "--segmenter", "synthetic-color", "--min-short-side", "32",
        "--output-size", "32", "--num-workers", "0", "--no-require-caption"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _shard_rows(out: Path) -> int:
    n = 0
    for p in (out / "shards").glob("clips-*.jsonl"):
        n += p.read_bytes().count(b"\n")
    return n


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    make_synthetic_dataset(root / "syn", num_clips=60, num_frames=20, size=48, seed=5)
    return root / "syn" / "videos"


@pytest.mark.slow
def test_kill_minus_nine_then_resume_processes_each_clip_once(clips, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vm_data.preprocess", "--input", str(clips), "--output", str(out),
           "--batch-clips", "1", *FAST]
    kills = 0
    for attempt in range(2):  # kill twice, at different points
        args = cmd + (["--resume"] if attempt else [])
        start_rows = _shard_rows(out) if out.exists() else 0
        proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and _shard_rows(out) >= start_rows + 5 + 7 * attempt:
                break
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        assert not (out / "manifest.jsonl").exists(), "the run finished before it could be killed"
    assert kills == 2
    done_before = _shard_rows(out)
    assert 0 < done_before < 60
    # a torn last line (a writer killed inside its write) and a temporary file of an interrupted PNG write
    shard = next((out / "shards").glob("clips-*.jsonl"))
    with open(shard, "a") as fh:
        fh.write('{"clip_id": "synthetic_00')
    (out / "references").mkdir(exist_ok=True)
    (out / "references" / ".synthetic_0059_0.abc123.tmp.png").write_bytes(b"half a png")

    final = subprocess.run(cmd + ["--resume"], env=_env(), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-3000:]
    rows = _rows(out / "manifest.jsonl")
    ids = [r["clip_id"] for r in rows]
    assert ids == [f"synthetic_{i:04d}" for i in range(60)]  # every clip exactly once, in input order
    shard_ids = [r["clip_id"] for p in (out / "shards").glob("clips-*.jsonl") for r in _rows(p)]
    assert sorted(shard_ids) == sorted(ids)  # no clip was processed twice across the three runs
    assert all(r["status"] == "kept" for r in rows)
    for r in rows:
        for p in r["references"] + r["masks"]:
            assert (out / p).stat().st_size > 0
    assert not list(out.rglob(".*.tmp*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 60 and summary["throughput"]["clips_this_run"] == 60 - done_before


@pytest.mark.slow
def test_accelerate_two_processes_split_disjointly_and_merge(clips, tmp_path):
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    small = tmp_path / "small"
    small.mkdir()
    for p in sorted(clips.glob("*.mp4"))[:10]:
        shutil.copy(p, small / p.name)
    out = tmp_path / "out2"
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(29500 + os.getpid() % 1000),
           "-m", "vm_data.preprocess", "--input", str(small), "--output", str(out), *FAST]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-4000:]
    rank0 = {r["clip_id"] for r in _rows(out / "shards" / "clips-00000.jsonl")}
    rank1 = {r["clip_id"] for r in _rows(out / "shards" / "clips-00001.jsonl")}
    assert rank0 and rank1 and not rank0 & rank1
    ids = [r["clip_id"] for r in _rows(out / "manifest.jsonl")]
    assert ids == sorted(p.stem for p in small.glob("*.mp4")) and set(ids) == rank0 | rank1
    assert rank0 == {ids[i] for i in range(0, 10, 2)}  # clip i -> process i % 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["throughput"]["num_processes"] == 2 and summary["rows"] == 10

    # the same input in one process gives the same rows
    single = tmp_path / "single"
    from vm_data.preprocess import main

    assert main(["--input", str(small), "--output", str(single), *FAST]) == 0
    strip = lambda r: {k: v for k, v in r.items() if k != "extra"}  # noqa: E731
    assert [strip(r) for r in _rows(single / "manifest.jsonl")] == [strip(r) for r in _rows(out / "manifest.jsonl")]
