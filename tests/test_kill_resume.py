"""Issue 11 §2, exactly once after kill -9: each long command (train, preprocess-dataset, bench run, generate) is run
as a subprocess, killed with SIGKILL at seeded random moments spread over its run time (measured once, on an
uninterrupted run into another folder), resumed, killed again, ... and finally resumed to the end. Every JSONL it
writes then holds exactly one row per unit of work (no duplicates, no gaps), equal to the uninterrupted run's, and
no temporary file of an interrupted write is left behind.

Kills land anywhere: while Python imports, while the model is built, between units, inside a write. A kill may also
miss (the resumed run finished first); what matters is that every rerun ends with the same outputs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

TIMEOUT = 180  # one subprocess, seconds: a hang fails the test instead of stalling the suite


# --------------------------------------------------------------------------------------------- the shared helper
def _env() -> dict:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VM_ERROR_POLICY", "raise")
    return env


def _run(args: list[str], log: Path) -> float:
    """Run to the end (asserting exit 0); returns its wall time."""
    t0 = time.monotonic()
    with open(log, "ab") as fh:
        res = subprocess.run(args, env=_env(), stdout=fh, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    assert res.returncode == 0, f"{args} exited {res.returncode}:\n{log.read_text()[-4000:]}"
    return time.monotonic() - t0


@dataclass
class Timing:
    """An uninterrupted run: seconds to its first and last unit of work written, and to its end."""
    first: float
    last: float
    end: float


def timed_run(args: list[str], log: Path, progress, folder: Path) -> Timing:
    """Run to the end (asserting exit 0), watching ``progress(folder)`` (units written) every 10 ms."""
    t0 = time.monotonic()
    first = last = None
    seen = 0
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
        while proc.poll() is None and time.monotonic() - t0 < TIMEOUT:
            now, done = time.monotonic() - t0, progress(folder)
            if done > seen:
                first, last, seen = first if first is not None else now, now, done
            time.sleep(0.01)
        rc = proc.wait(timeout=30)
    assert rc == 0, f"{args} exited {rc}:\n{log.read_text()[-4000:]}"
    end = time.monotonic() - t0
    return Timing(first if first is not None else end, last if last is not None else end, end)


@dataclass
class KillLog:
    delays: list[float] = field(default_factory=list)
    killed: int = 0  # SIGKILL delivered while the command still ran
    mid_work: int = 0  # ... of them after this run wrote some units of work, before all were written
    finished: int = 0  # the command ended (exit 0) before its kill
    seconds: float = 0.0


def kill_loop(first: list[str], again: list[str], log: Path, *, timing: Timing, kills: int, seed: int, progress,
              folder: Path, total: int, check=None) -> KillLog:
    """Start ``first``; SIGKILL it after a random delay; start ``again`` (the resume), kill it, ... ``kills`` times;
    then run ``again`` to the end.

    The delays come from the uninterrupted run's ``timing``: a fraction f, stratified over [-0.25, 1] (one per
    stratum, earliest first), puts the kill at f x the work window (first to last unit written, scaled to the
    units still to do) after the first unit's time, or (f < 0) in the last quarter of start-up; most start-up is
    imports and model building, identical in every run. ``progress(folder)``: units of work written so far (of
    ``total``), to tell kills that landed mid-work; ``check()`` runs after every attempt (what holds for a partial
    output). ``VM_KILL_SEED`` shifts the seed, to try other moments by hand
    (``VM_KILL_SEED=7 pytest --runslow tests/test_kill_resume.py``)."""
    rng = random.Random(seed + int(os.environ.get("VM_KILL_SEED", "0")))
    fractions = [-0.25 + 1.25 * (i + rng.random()) / kills for i in range(kills)]  # ascending: a late kill
    # first would leave the later attempts nothing to interrupt
    out = KillLog()
    t0 = time.monotonic()
    for attempt, f in enumerate(fractions):
        args = first if attempt == 0 else again
        before = progress(folder)
        window = (timing.last - timing.first) * (total - before) / total
        delay = timing.first + f * window if f >= 0 else timing.first * (1 + f)
        out.delays.append(delay)
        with open(log, "ab") as fh:
            fh.write(f"\n===== attempt {attempt}, SIGKILL after {delay:.2f} s: {' '.join(args)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(args, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                out.killed += 1
                after = progress(folder)
                out.mid_work += after > before and after < total
            else:
                assert rc == 0, f"attempt {attempt} exited {rc}:\n{log.read_text()[-4000:]}"
                out.finished += 1
        if check is not None:
            check()
    with open(log, "ab") as fh:
        fh.write(b"\n===== final resume, not killed\n")
    _run(again, log)
    out.seconds = time.monotonic() - t0
    print(f"{first[2]}: {out.killed} kill(s) ({out.mid_work} mid-work), {out.finished} finished first; delays "
          f"{[round(d, 2) for d in out.delays]} s; uninterrupted: first unit {timing.first:.1f} s, last "
          f"{timing.last:.1f} s, end {timing.end:.1f} s; loop {out.seconds:.1f} s")
    return out


def lines(path: Path) -> int:
    """Whole lines of a JSONL another process may be appending to."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def partial_rows(path: Path) -> list[dict]:
    """The rows of a killed writer's JSONL (a kill inside a write may have torn its last line)."""
    from vm_common.io_utils import read_jsonl

    return list(read_jsonl(path)) if path.exists() else []


def rows_of(path: Path) -> list[dict]:
    """Every line of a JSONL must be a whole row (a resumed writer repairs a torn last line first)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def temporaries(folder: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes (``vm_common.io_utils``: ``.NAME.XXXX.tmp[.ext]``, checkpoint
    folders ``.step-N.XXXX.tmp``)."""
    return sorted(p for p in folder.rglob(".*.tmp*"))


def plant_kill_leftovers(out: Path, temporary: str) -> Path:
    """What a kill inside an atomic write leaves (the window is too short for a random kill to hit it reliably): a
    half-written temporary ``out/temporary`` beside its target, and the lock file still naming the dead writer."""
    from vm_common.output_lock import LOCK_NAME

    path = out / temporary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    (out / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 22 + 17, "host": "killed", "started_utc": "then",
                                             "command": "a writer killed inside a write"}) + "\n")
    return path


def _assert_no_duplicates(keys: list) -> None:
    seen = set()
    dups = [k for k in keys if k in seen or seen.add(k)]
    assert not dups, f"rows written more than once: {dups[:5]}"


# ------------------------------------------------------------------------------------------------------ train
ROW_KEYS = ("step", "loss", "loss_video", "loss_reg", "lr", "grad_norm")


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    """One dataset for both runs: x264 encoding is not bit-reproducible, so compared runs must read the same files
    (`--data synthetic` would write a fresh copy into each run folder)."""
    from vm_data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("train-data"), num_clips=3, num_frames=24, size=64)


@pytest.mark.slow
def test_train_kill_minus_nine_loop_logs_every_step_once_and_ends_with_the_same_weights(tmp_path, train_data):
    import torch
    from safetensors.torch import load_file

    from vm_model.checkpoint import latest_checkpoint

    steps = 16
    base = [sys.executable, "-m", "vm_model.train", "--preset", "tiny", "--data", str(train_data), "--num-workers",
            "0", "--report-to", "none", "--max-steps", str(steps), "--checkpoint-every", "3",
            "--keep-checkpoints", "2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    progress = lambda run: lines(run / "losses.jsonl")  # noqa: E731
    timing = timed_run(base + ["--output-dir", str(straight)], tmp_path / "straight.log", progress, straight)

    def check():  # a partial run: the rows it has are steps 1..k, each once (after the resume's truncation)
        _assert_no_duplicates([r["step"] for r in partial_rows(killed / "losses.jsonl")])

    first = base + ["--output-dir", str(killed)]
    result = kill_loop(first, first + ["--resume"], tmp_path / "killed.log", timing=timing, kills=4, seed=11,
                       check=check, progress=progress, folder=killed, total=steps)
    rows = rows_of(killed / "losses.jsonl")
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert [{k: r[k] for k in ROW_KEYS} for r in rows] == \
        [{k: r[k] for k in ROW_KEYS} for r in rows_of(straight / "losses.jsonl")]
    a = load_file(str(latest_checkpoint(straight) / "trainable.safetensors"))
    b = load_file(str(latest_checkpoint(killed) / "trainable.safetensors"))
    assert latest_checkpoint(killed).name == f"step-{steps:08d}" and a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=0, rtol=0, msg=key)
    assert not temporaries(killed)
    assert result.killed + result.finished == 4


@pytest.mark.slow
def test_train_resume_removes_an_interrupted_checkpoint_and_write(tmp_path, train_data):
    """A kill inside save_checkpoint leaves its temporary folder; one inside an atomic write, a temporary file."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "vm_model.train", "--preset", "tiny", "--data", str(train_data), "--num-workers",
            "0", "--report-to", "none", "--output-dir", str(out)]
    _run(args + ["--max-steps", "1"], tmp_path / "run.log")
    half = plant_kill_leftovers(out, "checkpoints/.step-00000002.k9x1.tmp/trainable.safetensors")
    tmp = plant_kill_leftovers(out, ".losses.jsonl.k9x2.tmp")
    _run(args + ["--max-steps", "2", "--resume"], tmp_path / "run.log")
    assert not half.parent.exists() and not tmp.exists() and not temporaries(out)
    assert [r["step"] for r in rows_of(out / "losses.jsonl")] == [1, 2]


# ------------------------------------------------------------------------------------------- preprocess-dataset
@pytest.mark.slow
def test_preprocess_kill_minus_nine_loop_keeps_every_clip_once(tmp_path):
    """The random-moment loop of tests/test_data_resume.py's row-count kill test, compared with a straight run."""
    from test_data_resume import FAST

    from vm_data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "syn", num_clips=120, num_frames=20, size=48, seed=5)
    clips = tmp_path / "syn" / "videos"
    base = [sys.executable, "-m", "vm_data.preprocess", "--input", str(clips), "--batch-clips", "1", *FAST]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    progress = lambda out: sum(lines(p) for p in (out / "shards").glob("clips-*.jsonl"))  # noqa: E731
    timing = timed_run(base + ["--output", str(straight)], tmp_path / "straight.log", progress, straight)

    def check():
        _assert_no_duplicates([r["clip_id"] for p in (killed / "shards").glob("clips-*.jsonl")
                               for r in partial_rows(p)])

    first = base + ["--output", str(killed)]
    result = kill_loop(first, first + ["--resume"], tmp_path / "killed.log", timing=timing, kills=4, seed=22,
                       check=check, progress=progress, folder=killed, total=120)
    strip = lambda r: {k: v for k, v in r.items() if k != "extra"}  # noqa: E731 - timings and process details
    rows = rows_of(killed / "manifest.jsonl")
    assert [strip(r) for r in rows] == [strip(r) for r in rows_of(straight / "manifest.jsonl")]
    assert [r["clip_id"] for r in rows] == [f"synthetic_{i:04d}" for i in range(120)]
    shard_ids = [r["clip_id"] for p in (killed / "shards").glob("clips-*.jsonl") for r in rows_of(p)]
    assert sorted(shard_ids) == sorted(r["clip_id"] for r in rows)  # no clip processed twice over all the runs
    for r in rows:
        for p in r["references"] + r["masks"]:
            assert (killed / p).read_bytes() == (straight / p).read_bytes()
    assert not temporaries(killed)
    assert result.killed + result.finished == 4


# -------------------------------------------------------------------------------------------------- bench run
def _sample_key(row: dict) -> tuple:
    return row["method"], row["sample_id"], row["metric"]


@pytest.mark.slow
def test_bench_run_kill_minus_nine_loop_scores_every_video_metric_once(tmp_path):
    base = [sys.executable, "-m", "vm_eval.bench", "run", "--preset", "tiny", "--benchmark", "demo", "--flow", "dis",
            "--num-frames", "2", "--steps", "2", "--no-progress", "--no-report"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    progress = lambda out: lines(out / "samples.jsonl")  # noqa: E731
    timing = timed_run(base + ["--out", str(straight)], tmp_path / "straight.log", progress, straight)

    def check():
        _assert_no_duplicates([_sample_key(r) for r in partial_rows(killed / "samples.jsonl")])

    args = base + ["--out", str(killed)]
    result = kill_loop(args, args, tmp_path / "killed.log", timing=timing, kills=3, seed=33,
                       check=check, progress=progress, folder=killed, total=lines(straight / "samples.jsonl"))
    plant_kill_leftovers(killed, "videos/.p00_s0.k9x3.tmp.gif")  # a kill inside write_gif
    _run(args, tmp_path / "killed.log")
    want, got = rows_of(straight / "samples.jsonl"), rows_of(killed / "samples.jsonl")
    _assert_no_duplicates([_sample_key(r) for r in got])
    assert sorted(map(_sample_key, got)) == sorted(map(_sample_key, want))
    same = lambda r: (_sample_key(r), r["status"], r["value"], r["fingerprint"], r["video"])  # noqa: E731
    assert sorted(map(same, got)) == sorted(map(same, want))
    for r in got:
        assert (killed / r["video"]).read_bytes() == (straight / r["video"]).read_bytes()
    assert not temporaries(killed)
    assert result.killed + result.finished == 3


# --------------------------------------------------------------------------------------------------- generate
@pytest.mark.slow
def test_generate_kill_minus_nine_loop_writes_each_video_once_with_a_valid_sidecar(tmp_path):
    from PIL import Image

    image = tmp_path / "subject.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(image)
    base = [sys.executable, "-m", "vm_model.generate", "--preset", "tiny", "--num-frames", "2", "--steps", "2",
            "--height", "64", "--width", "64", "--image", str(image), "--prompt", "A red ball.",
            "--prompt", "A blue car.", "--seed", "1", "2", "3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    progress = lambda out: len(list(out.glob("*-s*.json"))) if out.is_dir() else 0  # noqa: E731
    timing = timed_run(base + ["--out", str(straight)], tmp_path / "straight.log", progress, straight)

    def check():  # a sidecar is written last: each one there is whole and names a complete video
        for sidecar in killed.glob("*-s*.json") if killed.is_dir() else []:
            data = json.loads(sidecar.read_text())
            assert (killed / data["video"]).stat().st_size > 0 and (killed / data["gif"]).stat().st_size > 0

    args = base + ["--out", str(killed)]
    result = kill_loop(args, args, tmp_path / "killed.log", timing=timing, kills=4, seed=44,
                       check=check, progress=progress, folder=killed, total=6)
    plant_kill_leftovers(killed, ".001-a-blue-car-s3.k9x4.tmp.mp4")  # a kill inside write_mp4
    _run(args, tmp_path / "killed.log")
    names = lambda d: sorted(p.name for p in d.iterdir() if not p.name.startswith("."))  # noqa: E731
    assert names(killed) == names(straight)
    stems = sorted(p.stem for p in straight.glob("*-s*.json"))
    assert len(stems) == 6
    for stem in stems:
        got, want = (json.loads((d / f"{stem}.json").read_text()) for d in (killed, straight))
        assert got["fingerprint"] == want["fingerprint"] and got["seed"] == want["seed"]
        assert (killed / f"{stem}.gif").read_bytes() == (straight / f"{stem}.gif").read_bytes()
    json.loads((killed / "run.json").read_text())
    assert not temporaries(killed)
    assert result.killed + result.finished == 4


def test_only_the_dead_writers_temporaries_are_removed(tmp_path):
    """Taking over a stale lock removes temporaries older than the takeover, files and checkpoint folders, at any
    depth; a newer one (another process of the new run already writing) and ordinary dot files stay."""
    from vm_common.output_lock import hold_output_folder, remove_orphan_temporaries

    old_file = plant_kill_leftovers(tmp_path, "videos/a/.x.mp4.k9x5.tmp.mp4")
    old_dir = plant_kill_leftovers(tmp_path, "checkpoints/.step-00000004.k9x6.tmp/state.pt").parent
    keep = [tmp_path / ".hidden", tmp_path / "x.tmp", tmp_path / "videos" / "a" / "x.mp4"]
    for p in keep:
        p.write_text("mine")
    with hold_output_folder(tmp_path, "test"):
        assert not old_file.exists() and not old_dir.exists() and all(p.exists() for p in keep)
    new = plant_kill_leftovers(tmp_path, ".late.k9x7.tmp")
    assert remove_orphan_temporaries(tmp_path, older_than=os.stat(new).st_mtime - 1) == 0 and new.exists()
    with hold_output_folder(tmp_path, "test"):  # the lock named a dead writer again: taken over, cleaned
        assert not new.exists()
    with hold_output_folder(tmp_path, "test"):  # released cleanly: nothing stale, nothing removed
        pass
