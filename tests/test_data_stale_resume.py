"""Issue 11 §5 for `vm preprocess-dataset --resume`: resuming with options that decide the rows differently from the
recorded run (OUT/run.json) is refused, naming the keys; options that only change speed resume as before."""

from __future__ import annotations

import json

import pytest

from vm_data.preprocess import main
from vm_data.synthetic import make_synthetic_dataset

FAST = ["--detector", "synthetic-color", "--segmenter", "synthetic-color", "--min-short-side", "32",
        "--output-size", "32", "--num-workers", "0", "--no-require-caption"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("stale")
    make_synthetic_dataset(root / "syn", num_clips=3, num_frames=20, size=48, seed=2)
    return root / "syn" / "videos"


def test_resume_with_changed_options_is_refused_naming_the_keys(clips, tmp_path, caplog):
    out = tmp_path / "out"
    argv = ["--input", str(clips), "--output", str(out), *FAST]
    assert main(argv) == 0
    manifest = (out / "manifest.jsonl").read_text()
    run_json = (out / "run.json").read_text()
    caplog.clear()
    assert main(argv + ["--resume", "--min-frames", "8", "--box-threshold", "0.5"]) == 2
    assert "min_frames: 16 -> 8" in caplog.text and "highlight.box_threshold: 0.35 -> 0.5" in caplog.text
    assert "--overwrite" in caplog.text
    assert (out / "manifest.jsonl").read_text() == manifest and (out / "run.json").read_text() == run_json
    # speed-only options and the same options resume
    assert main(argv + ["--resume", "--batch-clips", "2", "--log-every", "5"]) == 0
    assert main(argv + ["--overwrite", "--min-frames", "8"]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["min_frames"] == 8
