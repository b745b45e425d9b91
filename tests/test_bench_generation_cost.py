"""The generation cost benchmark (benchmarks/model_generation_cost.py, benchmarks/generation/) and the GPU script
(benchmarks/gpu_inference.sh) on tiny components: they run, measure the real path, and their settings never change
a video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import model_generation_cost
from benchmarks.generation import components, measure
from benchmarks.generation.report import render_markdown, summarize

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    args = model_generation_cost.resolve_defaults(model_generation_cost.build_parser().parse_args(
        ["--quick", "--device", "cpu", "--threads", "1", "--in-process", "--repeats", "2", "--out", str(out)]))
    res = model_generation_cost.run_benchmark(args)
    js, md = model_generation_cost.write_results(res, out)
    return res, js, md


def test_cpu_suite_runs_batched_and_unbatched_side_by_side(quick_result):
    res, js, md = quick_result
    data = json.loads(js.read_text())
    assert js.name == f"model_generation_cost_{data['device_tag']}.json" and data["device_tag"].endswith("-quick")
    (group,) = data["groups"]
    assert group["orders"] == [["batch4", "batch1"], ["batch1", "batch4"]]  # interleaved, alternating
    steps, videos = data["shape"]["steps"], data["shape"]["videos"]
    b4, b1 = group["runs"]["batch4"], group["runs"]["batch1"]
    assert len(b4) == len(b1) == 2
    # guidance: one UNet call per step per pipeline call; batch 4 makes 1 call per step, batch 1 makes 4
    assert all(r["component_calls"]["unet"] == steps for r in b4)
    assert all(r["component_calls"]["unet"] == steps * videos for r in b1)
    assert all(r["component_calls"]["text_encoder"] >= 1 and r["component_s"]["vae_decoder"] > 0 for r in b4 + b1)
    assert all(0 < r["component_s"]["unet"] < r["wall_s"] for r in b4 + b1)
    assert "rss_peak_bytes" in b4[0]
    # the same videos whatever the batch size (float tolerance)
    assert group["video_shape"] == [videos, 4, 64, 64, 3]
    assert group["max_abs_diff_vs_first"]["batch1"] < 1e-4
    summ = data["summary"]
    assert summ["reference"] == "batch1"
    row = summ["settings"]["batch4"]
    assert row["videos_per_hour"] == pytest.approx(3600 * videos / row["median_wall_s"])
    assert row["projected_s_per_video"] > row["s_per_video"]  # 30 steps cost more than 2
    assert "| batch4 | 4 | float32 | lse |" in md.read_text()


def test_render_from_json_is_the_same(quick_result):
    res, js, md = quick_result
    data = json.loads(js.read_text())
    data["summary"] = summarize(data)
    assert render_markdown(data) == md.read_text()


def test_a_stopped_run_is_written_from_its_partial_file(quick_result, tmp_path):
    res, js, md = quick_result
    group = dict(json.loads(js.read_text())["groups"][0])
    del group["max_abs_diff_vs_first"], group["video_shape"]  # made at the end of a job only
    group["runs"] = dict(group["runs"], batch1=[])  # stopped before batch1 ran
    partial = tmp_path / "x.partial-0.json"
    partial.write_text(json.dumps(group))
    args = model_generation_cost.resolve_defaults(model_generation_cost.build_parser().parse_args(
        ["--quick", "--device", "cpu", "--threads", "1", "--out", str(tmp_path)]))
    part = model_generation_cost.from_partial(args, partial)
    assert part["partial"] and list(part["summary"]["settings"]) == ["batch4"]
    text = render_markdown(part)
    assert "**Partial run**" in text and "| batch4 | 4 |" in text and "| batch1 |" not in text


def test_interleaving_refuses_settings_that_need_another_pipeline():
    spec = dict(settings=[dict(name="a"), dict(name="b", dtype="fp16")], device="cpu", videos=1)
    with pytest.raises(ValueError, match="share"):
        measure.measure_settings(spec)


def test_official_pipeline_equals_ours(tmp_path):
    """The official layout in the benchmark's pipeline gives our video (it changes the cost, not the result)."""
    components.build_components("tiny", tmp_path)
    spec = dict(preset="tiny", model_dir=str(tmp_path), device="cpu", frames=4, resolution=64, steps=2,
                guidance_scale=8.0)
    videos = {}
    for mode in ("official", "concat"):
        s = measure.Setting(mode, pisa_mode=mode, dtype="fp32")
        pipe, info = measure._load(spec, s)
        assert info["pisa_mode_resolved"] == mode
        ref = measure._reference(spec, pipe)
        videos[mode] = measure.generate_videos(pipe, measure._protocol(spec, s), ["a person"], [1], ref, 1)[0]
    assert abs(videos["official"] - videos["concat"]).max() < 1e-4


def test_unknown_setting_is_one_clear_line():
    args = model_generation_cost.resolve_defaults(model_generation_cost.build_parser().parse_args(
        ["--device", "cpu", "--settings", "nope"]))
    with pytest.raises(ValueError, match="unknown"):
        model_generation_cost.selected_settings(args)
    with pytest.raises(SystemExit) as exc:
        model_generation_cost.main(["--device", "cpu", "--settings", "nope"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_gpu_script_smoke_mode(tmp_path):
    """benchmarks/gpu_inference.sh in its CPU smoke mode: every GPU setting but sequential offload runs, in its own
    process, with the dtype and PISA computation it names."""
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_inference.sh")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (js,) = tmp_path.glob("model_generation_cost_*.json")
    data = json.loads(js.read_text())
    rows = data["summary"]["settings"]
    assert list(rows) == ["official", "default", "fp16_concat_batch4", "fp16_lse_batch4", "offload_model"]
    assert data["summary"]["reference"] == "official"
    assert rows["official"]["pisa_mode"] == "official" and rows["official"]["dtype"] == "float32"
    assert rows["fp16_lse_batch4"]["dtype"] == "float16" and rows["fp16_lse_batch4"]["unet_calls"] == 2
    assert all(r["videos_per_hour"] > 0 for r in rows.values())
