"""Issue 16 §4: OpenS2V-Eval's tracks as `vm bench` benchmarks read from the user's download (constructed here in
the dataset's real layout), and `vm bench export --format vbench|opens2v` naming the videos as those suites' own
tools expect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vm_common.media import video_info, write_mp4
from vm_eval.bench import main as bench_main
from vm_eval.bench_defs import BenchmarkError, load_benchmark
from vm_eval.export import ExportError, export_run
from vm_eval.runner import run_items
from vm_eval.results import MetricResult
from vm_eval.testing import FakeGenerator, smooth_texture
from vm_eval.videoio import read_video_strict
from vm_model.presets import TINY_PROTOCOL
from vm_model.protocol import GenerationProtocol

TINY = GenerationProtocol(**TINY_PROTOCOL)
# two cases as they appear in OpenS2V-Eval's Human-Domain_Eval.json (keys, fields and path shapes of the dataset)
CASES = {
    "singlehuman_1": {"img_paths": ["Images/singlehuman/crop_man/15.png"],
                      "prompt": "The video depicts a young man sitting at a wooden desk.",
                      "synthesis_flag": "wrong", "class_label": ["Man"]},
    "singleface_2": {"img_paths": ["Images/singleface/woman/3.jpg"],
                     "prompt": "A woman smiles at the camera in a garden.",
                     "synthesis_flag": "Wrong", "class_label": ["Woman"]},
}


def _opens2v_folder(root: Path, cases: dict = CASES, name: str = "Human-Domain_Eval.json") -> Path:
    from skimage import data

    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(cases, indent=4))
    images = [Image.fromarray(data.astronaut()), Image.fromarray(smooth_texture(96, seed=3))]
    for i, case in enumerate(cases.values()):
        for rel in case["img_paths"]:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            images[i % 2].convert("RGB").resize((96, 96)).save(path)
    return root


def test_opens2v_human_reads_cases_from_the_users_folder(tmp_path):
    root = _opens2v_folder(tmp_path / "OpenS2V-Eval")
    bench = load_benchmark("opens2v-human")
    subjects = bench.resolve_subjects(root, tmp_path / "out")
    assert [(s.id, s.kind, Path(s.image)) for s in subjects] == [
        ("singlehuman_1", "human", root / "Images/singlehuman/crop_man/15.png"),
        ("singleface_2", "human", root / "Images/singleface/woman/3.jpg")]
    items = bench.work_items(subjects, [42, 7])
    assert [(it.sample_id, it.prompt.text) for it in items] == [
        ("singlehuman_1/p01/s42", CASES["singlehuman_1"]["prompt"]),
        ("singlehuman_1/p01/s7", CASES["singlehuman_1"]["prompt"]),
        ("singleface_2/p02/s42", CASES["singleface_2"]["prompt"]),
        ("singleface_2/p02/s7", CASES["singleface_2"]["prompt"])]
    assert {it.prompt.category for it in items} == {"singlehuman", "singleface"}


def test_opens2v_single_gives_objects_their_class(tmp_path):
    cases = {"singleobj_4": {"img_paths": ["Images/singleobject/cup/52.jpg"], "prompt": "A cup on a table.",
                             "synthesis_flag": "wrong", "class_label": ["Cup"]}, **CASES}
    root = _opens2v_folder(tmp_path / "d", cases, "Single-Domain_Eval.json")
    subjects = load_benchmark("opens2v-single").resolve_subjects(root, tmp_path / "out")
    obj = next(s for s in subjects if s.id == "singleobj_4")
    assert (obj.kind, obj.cls, obj.highlight_text) == ("object", "cup", "cup.")


@pytest.mark.parametrize("damage, message", [
    ("no_json", "Human-Domain_Eval.json.*hf download --repo-type dataset BestWishYsh/OpenS2V-Eval"),
    ("no_image", r"1 reference image\(s\).*Images/singleface/woman/3.jpg"),
    ("multi", "singleface_2: 2 reference images; VideoMaker takes one"),
    ("escape", "points outside the dataset folder"),
    ("bad_id", "'face-3': not an OpenS2V-Eval case id"),
])
def test_a_missing_or_bad_download_is_one_clear_error(tmp_path, damage, message):
    cases = json.loads(json.dumps(CASES))
    if damage == "multi":
        cases["singleface_2"]["img_paths"].append("Images/singlehuman/crop_man/15.png")
    if damage == "escape":
        cases["singleface_2"]["img_paths"] = ["../outside.png"]
        Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    if damage == "bad_id":
        cases["face-3"] = cases.pop("singleface_2")
    root = _opens2v_folder(tmp_path / "d", {k: v for k, v in cases.items()
                                              if damage != "escape" or k != "singleface_2"})
    (root / "Human-Domain_Eval.json").write_text(json.dumps(cases))
    if damage == "no_json":
        (root / "Human-Domain_Eval.json").unlink()
    if damage == "no_image":
        (root / "Images/singleface/woman/3.jpg").unlink()
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark("opens2v-human").resolve_subjects(root, tmp_path / "out")


def test_run_without_the_dataset_is_exit_2_before_any_work(tmp_path, caplog):
    out = tmp_path / "out"
    assert bench_main(["run", "--benchmark", "opens2v-human", "--subjects", str(tmp_path / "empty"), "--out",
                       str(out), "--preset", "tiny"]) == 2
    (tmp_path / "empty").mkdir()
    assert bench_main(["run", "--benchmark", "opens2v-human", "--subjects", str(tmp_path / "empty"), "--out",
                       str(out), "--preset", "tiny"]) == 2
    assert "case file not found" in caplog.text and "BestWishYsh/OpenS2V-Eval" in caplog.text
    assert not (out / "samples.jsonl").exists()


class ConstantScorer:
    """Export does not read scores: one constant metric keeps these tests fast."""

    def metrics_for(self, kind):
        return ("clip_t",)

    def score(self, frames, **kw):
        return {"clip_t": MetricResult.ok(0.5)}


@pytest.fixture
def scorer():
    return ConstantScorer()


def _fake_opens2v_run(tmp_path, scorer, seeds=(42,)):
    root = _opens2v_folder(tmp_path / "OpenS2V-Eval")
    bench = load_benchmark("opens2v-human")
    out = tmp_path / "run"
    items = bench.work_items(bench.resolve_subjects(root, out), list(seeds))
    for method in ("Fake", "Fake: other"):
        run_items(bench, items, out, method=method, protocol=TINY, scorer=scorer, generate_fn=FakeGenerator(),
                  progress=False, highlight=False)
    (out / "run.json").write_text(json.dumps({"benchmark": "opens2v-human", "generation": {"fps": 8.0},
                                              "config": {"subjects": str(root)}}))
    return out, root


def test_export_opens2v_names_each_video_by_its_case_id(tmp_path, scorer, capsys):
    run, root = _fake_opens2v_run(tmp_path, scorer)
    exp = tmp_path / "exp"
    assert bench_main(["export", str(run), "--format", "opens2v", "--out", str(exp)]) == 0
    for folder in ("Fake", "Fake_other"):
        files = sorted(p.name for p in (exp / folder).iterdir())
        assert files == ["singleface_2.mp4", "singlehuman_1.mp4"]  # what OpenS2V's scripts list and look up
        info = video_info(exp / folder / "singleface_2.mp4")
        assert (info.num_frames, info.width, round(info.fps)) == (8, 128, 8)
    record = json.loads((exp / "export.json").read_text())
    args = record["methods"]["Fake"]["arguments"]
    assert args == {"--input_video_folder": str(exp / "Fake"),
                    "--input_json_file": str(root / "Human-Domain_Eval.json"), "--input_image_folder": str(root)}
    # the case file OpenS2V's scripts read finds every exported video (file name without .mp4 = case id)
    cases = json.loads(Path(args["--input_json_file"]).read_text())
    assert all(p.stem in cases for p in (exp / "Fake").glob("*.mp4"))
    assert "get_facesim.py" in capsys.readouterr().out


def test_export_opens2v_with_several_seeds_writes_one_folder_per_seed(tmp_path, scorer):
    run, _ = _fake_opens2v_run(tmp_path, scorer, seeds=(1, 2))
    record = export_run(run, tmp_path / "exp", "opens2v", methods={"Fake"})
    assert sorted(record["methods"]) == ["Fake (seed 1)", "Fake (seed 2)"]
    assert sorted(p.name for p in (tmp_path / "exp" / "Fake" / "seed2").iterdir()) == [
        "singleface_2.mp4", "singlehuman_1.mp4"]


def test_export_vbench_encodes_gifs_as_mp4_and_writes_its_prompt_file(tmp_path, scorer):
    """GIFs become mp4 (VBench's motion smoothness reads .mp4 only); the frames survive H.264 closely."""
    run, _ = _fake_opens2v_run(tmp_path, scorer)
    exp = tmp_path / "exp"
    record = export_run(run, exp, "vbench")
    m = record["methods"]["Fake: other"]
    vdir, prompts = Path(m["folder"]), json.loads(Path(m["prompt_file"]).read_text())
    assert sorted(prompts) == sorted(p.name for p in vdir.iterdir()) == [
        "singleface_2_p02_s42.mp4", "singlehuman_1_p01_s42.mp4"]
    assert prompts["singleface_2_p02_s42.mp4"] == CASES["singleface_2"]["prompt"]
    src = read_video_strict(run / "videos" / "Fake_other" / "singleface_2" / "p02_s42.gif")
    got = read_video_strict(vdir / "singleface_2_p02_s42.mp4")
    assert got.shape == src.shape
    assert np.abs(got.astype(float) - src.astype(float)).max() <= 3  # crf 0, 4:4:4: the RGB/YUV rounding only
    assert m["command"][:4] == ["python", "evaluate.py", "--videos_path", str(vdir)]
    assert "--mode=custom_input" in m["command"] and "imaging_quality" in m["command"]
    with pytest.raises(ExportError, match="holds the vbench export"):
        export_run(tmp_path / "run", exp, "opens2v")


def test_export_refuses_what_the_suite_cannot_read(tmp_path, scorer):
    bench = load_benchmark("demo")
    out = tmp_path / "run"
    items = bench.work_items(bench.resolve_subjects(None, out), [42])
    run_items(bench, items, out, method="Fake", protocol=TINY, scorer=scorer, generate_fn=FakeGenerator(),
              progress=False, highlight=False)
    with pytest.raises(ExportError, match="not an OpenS2V-Eval case"):
        export_run(out, tmp_path / "exp", "opens2v")
    assert not any((tmp_path / "exp").glob("*/*.mp4"))  # checked before anything is written
    assert bench_main(["export", str(out), "--format", "vbench", "--out", str(tmp_path / "e2"),
                       "--methods", "Nope"]) == 2
    assert bench_main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "e3")]) == 2


def test_export_encodes_other_formats_as_mp4_for_vbench(tmp_path):
    """Rows of `vm bench score` point at the user's files; a webm becomes an mp4 VBench can read."""
    frames = np.stack([smooth_texture(64, seed=i) for i in range(4)])
    run = tmp_path / "scores"
    run.mkdir()
    video = tmp_path / "v.mp4"
    write_mp4(video, frames, fps=8)
    webm = tmp_path / "v.webm"
    import av

    with av.open(str(webm), mode="w") as c:
        s = c.add_stream("libvpx-vp9", rate=8)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    rows = [{"method": "M", "sample_id": sid, "subject": "s", "prompt": "p", "video": str(v), "metric": "clip_t",
             "value": 0.1, "status": "ok"} for sid, v in (("a", video), ("b", webm))]
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = export_run(run, tmp_path / "exp", "vbench")
    names = sorted(p.name for p in Path(record["methods"]["M"]["folder"]).iterdir())
    assert names == ["a.mp4", "b.mp4"]
    assert video_info(Path(record["methods"]["M"]["folder"]) / "b.mp4").num_frames == 4


@pytest.mark.slow
def test_bench_run_opens2v_human_then_export_end_to_end(tmp_path):
    """`vm bench run --benchmark opens2v-human --subjects DIR` on the tiny model, then the OpenS2V export (~45 s)."""
    root = _opens2v_folder(tmp_path / "OpenS2V-Eval")
    run = tmp_path / "run"
    assert bench_main(["run", "--benchmark", "opens2v-human", "--subjects", str(root), "--out", str(run), "--preset",
                       "tiny", "--no-highlight", "--flow", "dis", "--num-frames", "3", "--no-progress",
                       "--no-baselines"]) == 0
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {(r["subject"], r["prompt"]) for r in rows} == {(k, v["prompt"]) for k, v in CASES.items()}
    assert bench_main(["export", str(run), "--format", "opens2v", "--out", str(tmp_path / "exp")]) == 0
    record = json.loads((tmp_path / "exp" / "export.json").read_text())
    assert record["methods"]["VideoMaker"]["arguments"]["--input_json_file"] == str(root / "Human-Domain_Eval.json")
    assert sorted(p.name for p in (tmp_path / "exp" / "VideoMaker").iterdir()) == [
        "singleface_2.mp4", "singlehuman_1.mp4"]


VBENCH_DIR = __import__("os").environ.get("VBENCH_DIR")  # a Vchitect/VBench checkout


@pytest.mark.skipif(not VBENCH_DIR, reason="set VBENCH_DIR to a Vchitect/VBench checkout to run VBench's own code")
def test_vbench_own_custom_input_reader_accepts_the_export(tmp_path, scorer):
    """VBench's `build_full_info_json` (custom_input, the prompt file loaded as its evaluate.py does) finds every
    exported video with its prompt."""
    import sys

    from benchmarks.parity_vbench import placeholder_modules

    added = placeholder_modules()
    sys.path.insert(0, VBENCH_DIR)
    try:
        from vbench import VBench

        run, _ = _fake_opens2v_run(tmp_path, scorer)
        m = export_run(run, tmp_path / "exp", "vbench")["methods"]["Fake"]
        prompts = json.loads(Path(m["prompt_file"]).read_text())
        vb = VBench("cpu", str(Path(VBENCH_DIR) / "vbench" / "VBench_full_info.json"), str(tmp_path / "vb"))
        info = vb.build_full_info_json(m["folder"], "t", ["subject_consistency"], prompts, mode="custom_input")
    finally:  # leave no placeholder or VBench module behind for other tests
        sys.path.remove(VBENCH_DIR)
        for name in [*added, *(k for k in sys.modules if k == "vbench" or k.startswith("vbench."))]:
            sys.modules.pop(name, None)
    found = {Path(e["video_list"][0]).name: e["prompt_en"] for e in json.loads(Path(info).read_text())}
    assert found == {"singlehuman_1_p01_s42.mp4": CASES["singlehuman_1"]["prompt"],
                     "singleface_2_p02_s42.mp4": CASES["singleface_2"]["prompt"]}
