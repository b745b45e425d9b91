"""Issue 11 §5 for `vm bench run` / `vm bench score`: a video skipped on resume is proven (by the fingerprint in its
rows) to come from the same protocol, sources, reference bytes, prompt, seed and scoring; anything else is refused
naming what changed, and --overwrite makes it again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from vm_common.io_utils import read_jsonl
from vm_common.media import write_gif
from vm_eval.bench import main as bench_main
from vm_eval.bench_defs import load_benchmark
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.runner import run_items
from vm_eval.scorer import VideoScorer
from vm_eval.store import read_samples
from vm_eval.testing import FakeGenerator, shifting_video, smooth_texture
from vm_model.presets import TINY_PROTOCOL
from vm_model.protocol import GenerationProtocol

TINY = GenerationProtocol(**TINY_PROTOCOL)


@pytest.fixture(scope="module")
def scorer():
    return VideoScorer(Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu")))


def _run(out: Path, scorer, protocol=TINY, **kw):
    bench = load_benchmark("demo")
    items = bench.work_items(bench.resolve_subjects(None, out), protocol.seeds)
    gen = FakeGenerator()
    stats = run_items(bench, items, out, method="Fake", protocol=protocol, scorer=scorer, generate_fn=gen,
                      progress=False, **kw)
    return stats, gen


def test_resume_with_another_protocol_is_refused_then_overwritten(tmp_path, scorer):
    from vm_common.errors import StaleOutputError

    out = tmp_path / "run"
    _run(out, scorer)
    rows = read_samples(out)
    assert all(isinstance(r.get("fingerprint"), dict) for r in rows)
    changed = replace(TINY, guidance_scale=TINY.guidance_scale + 1)
    with pytest.raises(StaleOutputError, match="protocol") as exc:
        _run(out, scorer, protocol=changed)
    assert "--overwrite" in str(exc.value)
    assert read_samples(out) == rows  # nothing touched
    stats, gen = _run(out, scorer, protocol=changed, overwrite=True)
    assert len(gen.calls) == 4 and stats.skipped == 0
    stats, gen = _run(out, scorer, protocol=changed)  # now they match: a plain resume
    assert gen.calls == [] and stats.skipped == 4


def test_a_changed_reference_image_is_named(tmp_path, scorer):
    from vm_common.errors import StaleOutputError

    out = tmp_path / "run"
    _run(out, scorer)
    ref = out / "subjects" / "chelsea.png"
    Image.open(ref).transpose(Image.FLIP_LEFT_RIGHT).save(ref)
    with pytest.raises(StaleOutputError, match=r"reference \(2 video"):
        _run(out, scorer)


def test_rows_of_seeds_no_longer_planned_are_stale(tmp_path, scorer):
    from vm_common.errors import StaleOutputError

    out = tmp_path / "run"
    _run(out, scorer)
    other_seeds = replace(TINY, seeds=[7])
    with pytest.raises(StaleOutputError, match="not part of this run"):
        _run(out, scorer, protocol=other_seeds)
    _run(out, scorer, protocol=other_seeds, overwrite=True)
    assert {r["seed"] for r in read_samples(out)} == {7}  # the old seed's rows are gone, not mixed in


def test_bench_score_refuses_a_changed_video_unless_overwrite(tmp_path, caplog):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "ref.png")
    write_gif(tmp_path / "v1.gif", shifting_video(smooth_texture(64), 2, 6))
    row = {"video": "v1.gif", "prompt": "a thing", "reference": "ref.png", "subject": "s", "method": "M"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    argv = ["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "out"), "--preset", "tiny",
            "--flow", "dis", "--no-progress", "--no-report"]
    assert bench_main(argv) == 0
    before = list(read_jsonl(tmp_path / "out" / "samples.jsonl"))
    write_gif(tmp_path / "v1.gif", shifting_video(smooth_texture(64, 1), 9, 6))  # another video, same name
    assert bench_main(argv) == 2
    assert "video (1 video(s))" in caplog.text and "--overwrite" in caplog.text
    assert list(read_jsonl(tmp_path / "out" / "samples.jsonl")) == before
    assert bench_main(argv + ["--overwrite"]) == 0
    after = {r["metric"]: r for r in read_samples(tmp_path / "out")}
    assert after["dd_dis"]["fingerprint"] != before[0]["fingerprint"]
