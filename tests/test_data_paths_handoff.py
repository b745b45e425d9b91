"""Issue 11 §9: paths and handoffs. Relative paths in an input table are resolved against the table's folder and
stored absolute (whatever the working directory); a training manifest is checked - every kept row's files - before
training starts; report.html of a run with a relative --out shows its reference images (also in a browser)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from vm_data.sources import discover

CHROMIUM = Path("/usr/bin/chromium")


def test_relative_paths_in_an_input_table_are_stored_absolute(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "clips.jsonl").write_text(json.dumps({"video": "videos/a.mp4", "caption": "x",
                                                  "references": ["refs/a.png"]}) + "\n")
    (data / "clips.csv").write_text("video,caption,reference\nvideos/b.mp4,y,refs/b1.png;refs/b2.png\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (a,) = discover(Path("..") / "data" / "clips.jsonl")
    (b,) = discover(os.path.relpath(data / "clips.csv"))
    assert a.video == str(data / "videos" / "a.mp4") and a.reference_images == [str(data / "refs" / "a.png")]
    assert b.video == str(data / "videos" / "b.mp4")
    assert b.reference_images == [str(data / "refs" / "b1.png"), str(data / "refs" / "b2.png")]
    assert all(Path(p).is_absolute() for p in [a.video, b.video, *a.reference_images, *b.reference_images])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from vm_data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("manifest")
    return make_synthetic_dataset(root / "syn", num_clips=3, num_frames=12, size=32, seed=0)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return path


def test_check_manifest_files_before_training(manifest, tmp_path):
    from vm_data.manifest_check import ManifestError, check_manifest_files

    check = check_manifest_files(manifest)
    assert check.kept == check.rows == 3
    rows = _rows(manifest)
    base = manifest.parent
    absolute = [dict(r, video=str(base / r["video"]) if not Path(r["video"]).is_absolute() else r["video"],
                     references=[str(base / p) for p in r["references"]]) for r in rows]

    moved = [dict(absolute[0]), *absolute[1:]]
    moved[0]["video"] = str(tmp_path / "moved.mp4")
    cases = {
        "missing": (_write(tmp_path / "missing.jsonl", moved), ["line 1", "moved.mp4"]),
        "folder": (tmp_path, ["is a folder"]),
        "text file": (tmp_path / "notes.txt", ["line 1", "not valid JSON"]),
        "empty": (_write(tmp_path / "empty.jsonl", []), ["no rows"]),
        "all rejected": (_write(tmp_path / "rejected.jsonl", [dict(r, status="rejected", reason="no_detection")
                                                              for r in absolute]), ["no kept clips", "3 rejected"]),
        "malformed": (_write(tmp_path / "bad.jsonl", absolute[:1], '{"clip_id": "x", '), ["line 2", "JSON"]),
        "wrong types": (_write(tmp_path / "types.jsonl", [dict(absolute[0], references=5)]), ["line 1"]),
        "not found": (tmp_path / "nope.jsonl", ["not found"]),
    }
    (tmp_path / "notes.txt").write_text("these are my notes\n")
    for name, (path, words) in cases.items():
        with pytest.raises(ManifestError) as exc:
            check_manifest_files(path)
        assert all(w in str(exc.value) for w in words), (name, str(exc.value))


def _report(out: Path):
    from vm_eval.bench_defs import load_benchmark
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.report import write_report
    from vm_eval.runner import run_items
    from vm_eval.scorer import VideoScorer
    from vm_eval.testing import FakeGenerator
    from vm_model.presets import TINY_PROTOCOL
    from vm_model.protocol import GenerationProtocol

    protocol = GenerationProtocol(**TINY_PROTOCOL)
    bench = load_benchmark("demo")
    items = bench.work_items(bench.resolve_subjects(None, out), protocol.seeds)
    scorer = VideoScorer(Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu")))
    run_items(bench, items, out, method="Fake", protocol=protocol, scorer=scorer, generate_fn=FakeGenerator(),
              progress=False)
    write_report([out], out)
    return (out / "report.html").read_text()


def test_report_of_a_relative_out_shows_its_references(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = _report(Path("runs") / "demo")
    assert "reference not found" not in page
    assert page.count('alt="reference ') == 2 and page.count('src="data:image/png') >= 4  # reference + model input
    rows = [json.loads(line) for line in (tmp_path / "runs" / "demo" / "samples.jsonl").read_text().splitlines()]
    assert all(Path(r["reference"]).is_absolute() for r in rows)


@pytest.mark.browser
def test_report_of_a_relative_out_in_headless_chromium(tmp_path, monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    monkeypatch.chdir(tmp_path)
    _report(Path("runs") / "demo")
    page = (tmp_path / "runs" / "demo" / "report.html").resolve()
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "subject-section" in dom and "reference not found" not in dom
    assert dom.count('class="ref"') == 4  # each subject's reference and model input rendered as images
