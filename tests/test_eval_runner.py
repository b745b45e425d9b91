"""bench run/score loops with a fake generator and tiny encoders: outputs, resume, shards, bad input, the page."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from vm_common.distributed import ProcessInfo
from vm_common.io_utils import read_jsonl
from vm_common.media import write_gif, write_mp4
from vm_eval.aggregate import aggregate
from vm_eval.bench import main as bench_main
from vm_eval.bench_defs import load_benchmark
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.report import write_report
from vm_model.presets import TINY_PROTOCOL
from vm_model.protocol import GenerationProtocol
from vm_eval.runner import ReferenceImageError, ScoreTask, run_items, score_tasks
from vm_eval.scorer import VideoScorer
from vm_eval.store import SampleStore, read_samples
from vm_eval.testing import FakeGenerator, shifting_video, smooth_texture

CHROMIUM = Path("/usr/bin/chromium")
TINY = GenerationProtocol(**TINY_PROTOCOL)


@pytest.fixture(scope="module")
def scorer():
    return VideoScorer(Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu")))


def _demo(out: Path):
    bench = load_benchmark("demo")
    subjects = bench.resolve_subjects(None, out)
    return bench, bench.work_items(subjects, TINY.seeds)


def test_run_writes_rows_and_resumes(tmp_path, scorer):
    out = tmp_path / "run"
    bench, items = _demo(out)
    gen = FakeGenerator()
    stats = run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=gen,
                      progress=False, common={"preset": "tiny", "random_weights": True})
    assert stats.done == 4 and len(gen.calls) == 4
    rows = list(read_jsonl(out / "samples.jsonl"))
    assert len(rows) == 2 * 6 + 2 * 5  # human: 6 metrics, cat: 5 (no Face Sim)
    keys = {"sample_id", "method", "subject", "video", "metric", "value", "status", "reason", "category", "prompt",
            "seed", "reference_preprocessing"}
    assert all(keys <= set(r) for r in rows)
    assert {r["metric"] for r in rows if r["subject"] == "chelsea"} == {"clip_t", "clip_i", "dino_i", "t_cons",
                                                                          "dd_dis"}
    assert all((out / r["video"]).is_file() for r in rows)
    # resume: nothing is generated again
    gen2 = FakeGenerator()
    stats2 = run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=gen2,
                       progress=False)
    assert stats2.skipped == 4 and gen2.calls == []
    # a killed run: the last video's rows lost and a torn line left behind -> only that video is redone
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])["sample_id"]
    kept = [ln for ln in lines if json.loads(ln)["sample_id"] != last]
    (out / "samples.jsonl").write_text("".join(kept) + '{"sample_id": "torn')
    gen3 = FakeGenerator()
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=gen3, progress=False)
    assert len(gen3.calls) == 1
    assert len(read_samples(out)) == len(rows)


def test_shards_are_disjoint_and_merge_to_the_single_process_result(tmp_path, scorer):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    bench, items = _demo(single)
    run_items(bench, items, single, method="Fake", protocol=TINY, scorer=scorer, generate_fn=FakeGenerator(),
              progress=False)
    _, items2 = _demo(sharded)
    calls = []
    for idx in range(2):
        gen = FakeGenerator()
        run_items(bench, items2, sharded, method="Fake", protocol=TINY, scorer=scorer, generate_fn=gen,
                  proc=ProcessInfo(idx, 2), progress=False)
        calls.append({c for c in gen.calls})
    assert len(calls[0]) + len(calls[1]) == 4 and not (calls[0] & calls[1])
    assert (sharded / "shards").is_dir()
    SampleStore(sharded).merge()
    assert not (sharded / "shards").exists()
    a, b = aggregate(read_samples(single)), aggregate(read_samples(sharded))
    for ga, gb in zip(a["groups"], b["groups"]):
        for m in ga["metrics"]:
            assert ga["metrics"][m]["value"] == pytest.approx(gb["metrics"][m]["value"], abs=1e-6)



def test_shards_named_by_earlier_versions_resume_and_merge(tmp_path, scorer):
    """A multi-process run of an earlier version left shards/samples.000.jsonl: its videos are not redone, and the
    merge folds it into samples.jsonl."""
    out = tmp_path / "old"
    bench, items = _demo(out)
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=FakeGenerator(),
              proc=ProcessInfo(0, 2), progress=False)
    (out / "shards" / "samples-00000.jsonl").rename(out / "shards" / "samples.000.jsonl")
    rows = read_samples(out)
    assert rows and {r["sample_id"] for r in rows} == {it.sample_id for it in items[0::2]}
    again = FakeGenerator()
    stats = run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=again,
                      proc=ProcessInfo(0, 2), progress=False)
    assert again.calls == [] and stats.skipped == stats.mine == 2
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=FakeGenerator(),
              proc=ProcessInfo(1, 2), progress=False)
    assert SampleStore(out).merge() == len(read_samples(out)) > len(rows)
    assert not (out / "shards").exists()
    assert {r["sample_id"] for r in read_jsonl(out / "samples.jsonl")} == {it.sample_id for it in items}

def test_score_bad_inputs_become_error_rows(tmp_path, scorer):
    from PIL import Image
    from skimage import data

    ref = tmp_path / "ref.png"
    Image.fromarray(data.astronaut()).save(ref)
    good = tmp_path / "good.gif"
    write_gif(good, shifting_video(smooth_texture(96), 2, 6))
    other = tmp_path / "other_size.mp4"  # other size and frame count, mp4
    write_mp4(other, shifting_video(smooth_texture(160), 9, 11))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    truncated = tmp_path / "truncated.mp4"
    full = other.read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    missing = tmp_path / "missing.gif"
    videos = [good, other, empty, text, truncated, missing]
    tasks = [ScoreTask(f"s/{v.name}", "M", "s", "human", "a person", str(v), str(ref)) for v in videos]
    score_tasks(tasks, tmp_path / "out", scorer=scorer, progress=False)
    rows = read_samples(tmp_path / "out")
    by_video = {}
    for r in rows:
        by_video.setdefault(Path(r["video"]).name, []).append(r)
    assert all(r["status"] == "ok" for r in by_video["good.gif"] if r["metric"] != "face_sim")
    ok_other = {r["metric"]: r for r in by_video["other_size.mp4"]}
    assert ok_other["dd_dis"]["status"] == "ok" and ok_other["dd_dis"]["detail"]["min_pairs"] == round(4 * 11 / 16)
    assert ok_other["dd_dis"]["detail"]["threshold"] == pytest.approx(6.0 * 160 / 256)
    for bad in ("empty.mp4", "notes.mp4", "truncated.mp4", "missing.gif"):
        assert len(by_video[bad]) == 6
        assert all(r["status"] == "error" and r["value"] is None and r["reason"] for r in by_video[bad]), bad
    assert "empty" in by_video["empty.mp4"][0]["reason"]
    assert "not found" in by_video["missing.gif"][0]["reason"]


def test_missing_reference_stops_before_any_work(tmp_path, scorer):
    bench = load_benchmark("human")
    subjects_dir = tmp_path / "subjects"
    subjects_dir.mkdir()
    (subjects_dir / "alice.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = bench_main(["run", "--benchmark", "human", "--subjects", str(subjects_dir), "--out", str(out),
                     "--preset", "tiny"])
    assert rc == 2 and not (out / "samples.jsonl").exists()
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video": "v.gif", "prompt": "p", "reference": "nope.png", "subject": "s",
                                    "method": "M"}) + "\n")
    assert bench_main(["score", "--manifest", str(manifest), "--out", str(out), "--preset", "tiny"]) == 2
    assert not (out / "samples.jsonl").exists()
    with pytest.raises(ReferenceImageError):
        score_tasks([ScoreTask("x", "M", "s", "human", "p", "v.gif", str(tmp_path / "nope.png"))], out,
                    scorer=scorer, progress=False)
    del bench


def test_score_command_end_to_end(tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    write_gif(tmp_path / "v1.gif", shifting_video(smooth_texture(128), 1, 8))
    write_gif(tmp_path / "v2.gif", shifting_video(smooth_texture(128, 1), 12, 8))
    rows = [{"video": f"v{i}.gif", "prompt": "A cat is running on the grass.", "reference": "cat.png",
             "subject": "cat1", "method": "VideoBooth", "category": "cat", "kind": "object"} for i in (1, 2)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert bench_main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                       "--flow", "dis", "--no-progress"]) == 0
    for name in ("samples.jsonl", "summary.json", "table.md", "table.csv", "table.tex", "report.html", "run.json"):
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["protocol"] == "videomaker" and run["random_weights"] is True and "clip" in run["scoring_models"]
    dd = {r["video"].split("/")[-1]: r["value"] for r in read_jsonl(out / "samples.jsonl") if r["metric"] == "dd_dis"}
    assert dd == {"v1.gif": 0.0, "v2.gif": 1.0}  # 1 px/frame is static, 12 px/frame at 128 px is dynamic
    assert "DD (DIS)" in (out / "table.md").read_text()


@pytest.mark.browser
def test_report_html_in_headless_chromium(tmp_path, scorer):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    out = tmp_path / "run"
    bench, items = _demo(out)
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=FakeGenerator(),
              progress=False)
    write_report([out], out)
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained, no CDN

    def dom(fragment: str = "") -> str:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'chrome-profile'}", "--virtual-time-budget=3000", "--dump-dom",
               (out / "report.html").as_uri() + fragment]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout

    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cur, self.cell, self.imgs = [], None, None, []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                self.cur = {"attrs": a, "rows": []}
                self.tables.append(self.cur)
            elif tag == "tr" and self.cur is not None:
                self.cur["rows"].append([])
            elif tag in ("td", "th") and self.cur is not None:
                self.cell = a
                self.cur["rows"][-1].append(a)
            elif tag == "img":
                self.imgs.append(a.get("src", ""))

    plain = Tables()
    plain.feed(dom())
    videos = [t for t in plain.tables if "videos" in t["attrs"].get("class", "")]
    assert {t["attrs"]["data-subject"] for t in videos} == {"astronaut", "chelsea"}
    assert sum(len(t["rows"]) - 1 for t in videos) == 4  # every generated video is on the page
    assert sum(s.startswith("data:image/gif") for s in plain.imgs) == 4  # videos embedded
    assert sum(s.startswith("data:image/png") for s in plain.imgs) >= 2  # reference images embedded

    def column(table, key):
        header = [c.get("data-key") for c in table["rows"][0]]
        j = header.index(key)
        return [float(r[j]["data-sort"]) for r in table["rows"][1:] if r[j].get("data-sort")]

    for direction in ("asc", "desc"):
        sorted_page = Tables()
        sorted_page.feed(dom(f"#sort=clip_t:{direction}"))
        for t in [t for t in sorted_page.tables if "videos" in t["attrs"].get("class", "")]:
            assert t["attrs"].get("data-sorted") == f"clip_t:{direction}"  # the page's script ran
            vals = column(t, "clip_t")
            assert vals == sorted(vals, reverse=direction == "desc")
