"""Smoke test of the model_pisa_cost benchmark (benchmarks/model_pisa_cost.py and benchmarks/pisa/): its
measurement functions on the tiny configs, in-process."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import model_pisa_cost
from benchmarks.pisa import forward, model, targets


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    args = model_pisa_cost.resolve_defaults(model_pisa_cost.build_parser().parse_args(
        ["--quick", "--device", "cpu", "--threads", "1", "--out", str(out)]))
    res = model_pisa_cost.run_benchmark(args, isolate=False)
    res["notes"] = targets.explain(res)
    js, md = model_pisa_cost.write_results(res, out)
    return res, js, md


def test_build_unet_matches_from_unet2d():
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    unet_cfg, adapter_cfg, _ = model.model_configs("tiny")
    torch.manual_seed(0)
    expected = UNetMotionModel.from_unet2d(UNet2DConditionModel(**unet_cfg), MotionAdapter(**adapter_cfg))
    built = model.build_unet("tiny", seed=0)
    want, got = expected.state_dict(), built.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_flop_ratio_of_pisa_above_stock_on_tiny_shape():
    flops = {v: model.count_forward_flops("tiny", v, 4, 64) for v in model.FORWARD_VARIANTS}
    assert all(f > 0 for f in flops.values())
    assert flops["pisa_concat"] / flops["stock"] > 1
    assert flops["pisa_lse"] / flops["stock"] > 1
    assert flops["pisa_concat"] > flops["no_pisa"] > flops["stock"]


def test_quick_run_json_structure(quick_result):
    res, js, md = quick_result
    data = json.loads(js.read_text())
    assert js.name == f"model_pisa_cost_{data['device_tag']}.json" and data["device_tag"].endswith("-quick")
    for key in ("device", "model", "settings", "forward", "training", "targets", "sdpa_probe", "load_average", "code",
                "provenance"):
        assert key in data, key
    assert data["device"]["cpu_model"] and data["device"]["torch"] == torch.__version__
    fw = data["forward"]
    assert fw["shape"] == dict(resolution=64, latent=8, frames=4, frames_with_reference=5, batch=1)
    assert set(fw["variants"]) == set(fw["raw_s"]) == {"stock", "no_pisa", "pisa_concat", "pisa_lse", "official"}
    for v, r in fw["variants"].items():
        assert len(fw["raw_s"][v]) == fw["repeats"] == 1
        assert r["median_s"] > 0 and r["flops"] > 0 and r["peak_memory_bytes"] >= 0 and r["cpu_time_ratio"] > 0
        assert r["rss_peak_bytes"] is not None  # CPU: the resident-set view is reported too
        assert r["executed_flops"] == r["flops"]  # the executed ops count the same as the meta device
        assert r["flop_ratio"] == pytest.approx(r["flops"] / fw["variants"]["stock"]["flops"])
    assert fw["variants"]["pisa_concat"]["flop_ratio"] > 1
    assert "sdpa_math" not in fw["variants"]["stock"]["attention_calls"]
    runs = data["training"]["runs"]
    assert set(runs) == {"no_checkpointing", "checkpointing"}
    for r in runs.values():
        assert r["trainable_tensors_with_grad"] == r["trainable_tensors"] > 0
        assert r["peak_bytes"] >= 0 and r["time_s"] > 0
    for t in data["targets"].values():
        assert isinstance(t["passed"], bool) and t["description"]
    assert len(data["targets"]["time_ratio_pisa_concat"]["passed_per_repeat"]) == 1
    assert data["settings"]["threads"] == data["device"]["torch_threads"] == 1
    assert set(data["targets"]) == {"time_ratio_pisa_concat", "time_ratio_pisa_lse", "checkpointing_memory"}
    text = md.read_text()
    assert "| stock (" in text and "## Targets" in text and ("PASS" in text or "FAIL" in text)


def test_summarize_ratios():
    raw = {"stock": [1.0, 2.0, 3.0], "pisa_concat": [1.5, 2.8, 4.5]}
    out = forward.summarize(raw, {"stock": 100, "pisa_concat": 140})
    assert out["pisa_concat"]["median_s"] == 2.8
    assert out["pisa_concat"]["time_ratio"] == pytest.approx(1.4)
    assert out["pisa_concat"]["flop_ratio"] == pytest.approx(1.4)
    assert out["pisa_concat"]["time_ratio_over_flop_ratio"] == pytest.approx(1.0)
    assert out["pisa_concat"]["time_ratio_per_repeat"] == pytest.approx([1.5, 1.4, 1.5])
    assert "cpu_time_ratio" not in out["stock"]
    cpu = {"stock": [2.0, 2.0], "pisa_concat": [3.0, 3.0]}
    with_cpu = forward.summarize(raw, {"stock": 100, "pisa_concat": 140}, cpu=cpu)
    assert with_cpu["pisa_concat"]["cpu_time_ratio"] == pytest.approx(1.5)
