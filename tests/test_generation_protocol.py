"""One generation protocol: the same seed gives the same video from `vm generate` and `vm bench run`; the
protocol's fields, the official-release switches and the benchmark/preset/YAML/flag layering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vm_eval
from vm_common.media import read_video
from vm_eval.bench import main as bench_main
from vm_model.generate import main as generate_main
from vm_model.protocol import (EVAL_NEGATIVE_PROMPT, INFERENCE_NEGATIVE_PROMPT, GenerationProtocol)


def test_same_seed_same_video_from_generate_and_bench_run(tmp_path):
    bench_out = tmp_path / "bench"
    assert bench_main(["run", "--preset", "tiny", "--benchmark", "demo", "--out", str(bench_out), "--no-highlight",
                       "--flow", "dis", "--num-frames", "3", "--no-report", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (bench_out / "samples.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["subject"] == "astronaut")
    run = json.loads((bench_out / "run.json").read_text())
    assert run["generation"]["num_frames"] == 3 and run["generation"]["steps"] == 2  # flag < preset < benchmark
    assert run["generation"]["negative_prompt"] == "eval" and run["random_weights"] is True
    gen_out = tmp_path / "gen"
    assert generate_main(["--preset", "tiny", "--num-frames", "3", "--image",
                          str(bench_out / row["reference_for_model"]), "--prompt", row["prompt"],
                          "--seed", str(row["seed"]), "--out", str(gen_out)]) == 0
    (gif,) = gen_out.glob("*.gif")
    np.testing.assert_array_equal(read_video(gif), read_video(bench_out / row["video"]))


def test_negative_prompt_names_and_text():
    assert GenerationProtocol().negative_prompt_text == EVAL_NEGATIVE_PROMPT
    assert GenerationProtocol(negative_prompt="inference").negative_prompt_text == INFERENCE_NEGATIVE_PROMPT
    assert GenerationProtocol(negative_prompt="none").negative_prompt_text == ""
    assert GenerationProtocol(negative_prompt="ugly").negative_prompt_text == "ugly"


@pytest.mark.parametrize("bad", [dict(num_frames=0), dict(steps=-1), dict(guidance_scale=float("nan")),
                                 dict(fps=0.0), dict(seeds=[])])
def test_nonsense_numbers_are_refused(bad):
    with pytest.raises(ValueError, match="protocol"):
        GenerationProtocol(**bad)


def test_generator_device_and_dtype():
    assert GenerationProtocol().generator(5, "cuda").device.type == "cpu"  # the same noise on any machine
    assert GenerationProtocol(generator_device="device").generator(5, "cpu").device.type == "cpu"
    a = GenerationProtocol().generator(5, "cpu")
    assert torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=torch.Generator().manual_seed(5)))
    assert GenerationProtocol().torch_dtype("cuda") == torch.float16
    assert GenerationProtocol().torch_dtype("cpu") == torch.float32
    assert GenerationProtocol(dtype="fp32").torch_dtype("cuda") == torch.float32


def test_bench_yaml_preset_and_bad_benchmark_protocol(tmp_path):
    bad = tmp_path / "b.json"
    data = json.loads((Path(vm_eval.__file__).parent / "benchmarks" / "demo.json").read_text())
    data["protocol"]["frames"] = 3
    bad.write_text(json.dumps(data))
    assert bench_main(["run", "--preset", "tiny", "--benchmark", str(bad), "--out", str(tmp_path / "o")]) == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("preset: nonsense\n")
    assert bench_main(["run", "--config", str(cfg), "--out", str(tmp_path / "o2")]) == 2
