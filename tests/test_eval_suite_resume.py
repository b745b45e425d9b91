"""Issue 16: a suite added to a scored run computes only the new columns (`vm bench score` and `vm bench run`
resume); the rows already there are kept as they were and nothing is generated again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from vm_eval.bench import main as bench_main
from vm_eval.bench_defs import load_benchmark
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.metrics import VBENCH_COLUMNS, metrics_for
from vm_eval.runner import run_items
from vm_eval.scorer import VideoScorer
from vm_eval.store import read_samples
from vm_eval.testing import FakeGenerator, shifting_video, smooth_texture
from vm_common.media import write_gif
from vm_model.presets import TINY_PROTOCOL
from vm_model.protocol import GenerationProtocol

TINY = GenerationProtocol(**TINY_PROTOCOL)


class SpyScorer(VideoScorer):
    """Records which metrics each score call computed."""

    def __init__(self, encoders):
        super().__init__(encoders)
        self.asked: list[tuple[str, ...]] = []

    def score(self, frames, **kw):
        out = super().score(frames, **kw)
        self.asked.append(tuple(out))
        return out


def _scorer(suites):
    return SpyScorer(Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu", suites=suites)))


def _by_key(rows):
    return {(r["method"], r["sample_id"], r["metric"]): r for r in rows}


def test_run_with_an_added_suite_scores_only_the_new_columns_from_the_saved_videos(tmp_path):
    out = tmp_path / "run"
    bench = load_benchmark("demo")
    items = bench.work_items(bench.resolve_subjects(None, out), TINY.seeds)
    first = _scorer(("paper",))
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=first, generate_fn=FakeGenerator(),
              progress=False, highlight=False)
    before = _by_key(read_samples(out))
    assert {k[2] for k in before} == {"clip_t", "face_sim", "clip_i", "dino_i", "t_cons", "dd_dis"}

    more = _scorer(("paper", "vbench", "copy"))
    gen = FakeGenerator()
    stats = run_items(bench, items, out, method="Fake", protocol=TINY, scorer=more, generate_fn=gen,
                      progress=False, highlight=False)
    assert gen.calls == []  # nothing generated again
    assert stats.done == len(items) and stats.skipped == 0
    new_cols = set(VBENCH_COLUMNS) | {"copy_paste"}
    assert more.asked and all(set(a) == new_cols for a in more.asked)  # only the new columns were computed
    after = _by_key(read_samples(out))
    for key, row in before.items():
        assert after[key] == row  # the old rows untouched
    added = [r for k, r in after.items() if k not in before]
    assert {r["metric"] for r in added} == new_cols
    assert all(r["scored_from"] == "saved video" and r["status"] == "ok" for r in added)
    assert all(r["fingerprint"] == before[("Fake", r["sample_id"], "clip_t")]["fingerprint"] for r in added)

    again = _scorer(("paper", "vbench", "copy"))  # everything present: a plain resume
    stats = run_items(bench, items, out, method="Fake", protocol=TINY, scorer=again, generate_fn=FakeGenerator(),
                      progress=False, highlight=False)
    assert again.asked == [] and stats.skipped == len(items)


def test_run_regenerates_a_video_whose_file_is_gone(tmp_path):
    out = tmp_path / "run"
    bench = load_benchmark("demo")
    items = bench.work_items(bench.resolve_subjects(None, out), TINY.seeds)
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=_scorer(("paper",)),
              generate_fn=FakeGenerator(), progress=False, highlight=False)
    lost = read_samples(out)[0]
    (out / lost["video"]).unlink()
    gen = FakeGenerator()
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=_scorer(("paper", "copy")), generate_fn=gen,
              progress=False, highlight=False)
    assert len(gen.calls) == 1  # only the video without a file is made again; the others are read back
    assert (out / lost["video"]).is_file()


def _manifest(tmp_path: Path) -> Path:
    ref = tmp_path / "ref.png"
    Image.fromarray(smooth_texture(64, seed=1)).save(ref)
    lines = []
    for i in range(2):
        video = tmp_path / f"v{i}.gif"
        write_gif(video, shifting_video(smooth_texture(64, seed=i), 2, 6), fps=8)
        lines.append(json.dumps({"video": video.name, "prompt": f"a prompt {i}", "reference": ref.name,
                                 "subject": "s", "method": "M", "kind": "object"}))
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("added", ["vbench", "copy"])
def test_score_command_with_an_added_suite_computes_only_the_new_columns(tmp_path, added, monkeypatch):
    manifest, out = _manifest(tmp_path), tmp_path / "scores"
    common = ["score", "--manifest", str(manifest), "--out", str(out), "--preset", "tiny", "--flow", "dis",
              "--device", "cpu", "--no-progress"]
    assert bench_main(common + ["--suites", "paper"]) == 0
    before = _by_key(read_samples(out))
    asked: list[tuple[str, ...]] = []
    original = VideoScorer.score

    def spy(self, frames, **kw):
        res = original(self, frames, **kw)
        asked.append(tuple(res))
        return res

    monkeypatch.setattr(VideoScorer, "score", spy)
    assert bench_main(common + ["--suites", f"paper,{added}"]) == 0
    new_cols = set(metrics_for("object", "dis", ("paper", added))) - set(metrics_for("object", "dis", ("paper",)))
    assert len(asked) == 2 and all(set(a) == new_cols for a in asked)
    after = _by_key(read_samples(out))
    assert all(after[k] == r for k, r in before.items())
    assert {k[2] for k in after} - {k[2] for k in before} == new_cols
    table = (out / "table.md").read_text()
    assert "CLIP-T" in table and any(lbl in table for lbl in ("VBench", "Copy-paste"))


def test_a_skip_for_an_unavailable_model_is_scored_again_when_the_model_is_there(tmp_path, monkeypatch):
    """Weights missing on the first run (an ``unavailable`` skip), present on the second: the rerun scores only
    that metric and leaves exactly one row per (video, metric); ordinary skips and ok rows are kept."""
    from vm_eval.results import MODEL_UNAVAILABLE, MetricResult

    manifest, out = _manifest(tmp_path), tmp_path / "scores"
    common = ["score", "--manifest", str(manifest), "--out", str(out), "--preset", "tiny", "--flow", "dis",
              "--device", "cpu", "--no-progress", "--suites", "paper,copy"]
    original = VideoScorer.score
    asked: list[tuple[str, ...]] = []

    def weights_missing(self, frames, **kw):
        res = original(self, frames, **kw)
        asked.append(tuple(res))
        if "copy_paste" in res:
            res["copy_paste"] = MetricResult.unavailable("copy-paste weights missing (test)")
        return res

    monkeypatch.setattr(VideoScorer, "score", weights_missing)
    assert bench_main(common) == 0
    first = read_samples(out)
    skipped = [r for r in first if r["metric"] == "copy_paste"]
    assert len(skipped) == 2 and all(r["status"] == "skipped" and r["detail"][MODEL_UNAVAILABLE] for r in skipped)

    def spy(self, frames, **kw):
        res = original(self, frames, **kw)
        asked.append(tuple(res))
        return res

    asked.clear()
    monkeypatch.setattr(VideoScorer, "score", spy)
    assert bench_main(common) == 0
    assert asked == [("copy_paste",), ("copy_paste",)]  # only the skipped metric, once per video
    after = read_samples(out)
    assert len(after) == len(first)  # one row per (video, metric)
    assert all(r["status"] == "ok" for r in after if r["metric"] == "copy_paste")
    keep = {(r["sample_id"], r["metric"]): r for r in first if r["metric"] != "copy_paste"}
    assert all(keep[(r["sample_id"], r["metric"])] == r for r in after if r["metric"] != "copy_paste")

    asked.clear()
    assert bench_main(common) == 0 and asked == []  # nothing left to retry


def test_scoring_identity_names_other_suites_weights_only_when_given():
    from vm_eval.resume import scoring_identity

    def identity(**kw):
        return scoring_identity(VideoScorer(Encoders(EncoderConfig(preset="tiny", device="cpu", **kw))))

    base = identity()
    assert "amt_weights" not in base  # defaults: the identity older runs were fingerprinted with
    assert identity(amt_weights="/w/amt-s.pth")["amt_weights"] == "/w/amt-s.pth"
    assert identity(amt_weights="/w/amt-s.pth") != base
