"""`vm train` beyond the basics (issue 12): gradient accumulation, exactly-once losses across kill + resume,
trackers, EMA, validation videos, LoRA (generate from the run, merged export)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vm_common.cli import main as vm_main
from vm_common.io_utils import read_jsonl
from vm_model.checkpoint import latest_checkpoint
from vm_model.train import main
from vm_model.training.run_log import truncate_after_step

ROW_KEYS = ("step", "loss", "loss_video", "loss_reg", "lr", "grad_norm")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One dataset for every run: video encoding is not bit-reproducible, so compared runs must share files."""
    from vm_data.synthetic import make_synthetic_dataset

    manifest = make_synthetic_dataset(tmp_path_factory.mktemp("data"), num_clips=3, num_frames=24, size=64)
    return ["--preset", "tiny", "--num-workers", "0", "--data", str(manifest)]


@pytest.fixture(scope="module")
def validation_manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("validation")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(folder / "subject.png")
    (folder / "validation.jsonl").write_text(json.dumps(
        {"name": "subject", "reference": "subject.png", "prompts": ["A red ball rolling."], "kind": "human"}) + "\n")
    return folder / "validation.jsonl"


def _files(run_dir, name="trainable.safetensors"):
    return load_file(str(latest_checkpoint(run_dir) / name))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)


def _rows(run_dir):
    return [{k: r[k] for k in ROW_KEYS} for r in read_jsonl(run_dir / "losses.jsonl")]


@pytest.mark.slow
def test_accumulation_and_ema_resume_two_plus_two_equals_four(tmp_path, data):
    args = data + ["--gradient-accumulation-steps", "2", "--ema-decay", "0.5", "--report-to", "none"]
    straight, resumed = tmp_path / "four", tmp_path / "two-two"
    assert main(args + ["--max-steps", "4", "--output-dir", str(straight)]) == 0
    assert main(args + ["--max-steps", "2", "--output-dir", str(resumed)]) == 0
    assert main(args + ["--max-steps", "4", "--output-dir", str(resumed), "--resume"]) == 0
    _assert_same(_files(straight), _files(resumed))
    _assert_same(_files(straight, "ema.safetensors"), _files(resumed, "ema.safetensors"))
    assert _rows(straight) == _rows(resumed) and [r["step"] for r in _rows(resumed)] == [1, 2, 3, 4]
    prov = json.loads((straight / "provenance.json").read_text())
    assert prov["gradient_accumulation_steps"] == 2 and prov["effective_batch_size"] == 2  # 1 process x 1 x 2
    assert json.loads((straight / "config.json").read_text())["gradient_accumulation_steps"] == 2
    # the average follows ema_4 = 0.5 ema_3 + 0.5 w_4 and is not the raw weights
    ema3 = load_file(str(straight / "checkpoints" / "step-00000003" / "ema.safetensors"))
    ema4, w4 = _files(straight, "ema.safetensors"), _files(straight)
    for key in w4:
        torch.testing.assert_close(ema4[key], 0.5 * ema3[key] + 0.5 * w4[key])
    assert any(not torch.equal(ema4[k], w4[k]) for k in w4)


def test_accumulation_is_one_optimizer_step_per_n_passes(tmp_path, data):
    """Two forward/backward passes make one optimizer (and lr-schedule) step and one losses.jsonl row."""
    out = tmp_path / "acc"
    assert main(data + ["--gradient-accumulation-steps", "2", "--max-steps", "1", "--report-to", "none",
                        "--output-dir", str(out)]) == 0
    state = torch.load(latest_checkpoint(out) / "state.pt", weights_only=True)
    assert state["lr_scheduler"]["_step_count"] == 2  # one optimizer step (+ the scheduler's initial step)
    assert [r["step"] for r in read_jsonl(out / "losses.jsonl")] == [1]


def test_losses_are_logged_exactly_once_across_kill_and_resume(tmp_path, data):
    args = data + ["--report-to", "none"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(args + ["--max-steps", "3", "--output-dir", str(straight)]) == 0
    assert main(args + ["--max-steps", "3", "--checkpoint-every", "2", "--output-dir", str(killed)]) == 0
    # a kill after step 3 was logged but before its checkpoint, mid-way through writing another row
    shutil.rmtree(killed / "checkpoints" / "step-00000003")
    with open(killed / "losses.jsonl", "a") as fh:
        fh.write('{"step": 4, "lo')
    assert main(args + ["--max-steps", "3", "--output-dir", str(killed), "--resume"]) == 0
    assert [r["step"] for r in read_jsonl(killed / "losses.jsonl")] == [1, 2, 3]
    assert _rows(killed) == _rows(straight)
    _assert_same(_files(killed), _files(straight))


def test_truncate_after_step(tmp_path):
    path = tmp_path / "losses.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in (1, 2, 3)) + '{"step": 4')
    assert truncate_after_step(path, 2) == 1
    assert [r["step"] for r in read_jsonl(path)] == [1, 2] and path.read_text().endswith("\n")
    assert truncate_after_step(path, 5) == 0 and truncate_after_step(tmp_path / "none.jsonl", 0) == 0


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_tracker_logs_the_step_metrics(tmp_path, data):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    assert main(data + ["--max-steps", "2", "--report-to", "tensorboard", "--output-dir", str(out)]) == 0
    scalars = _scalars(out / "logs" / "vm-train")
    for name in ("loss", "loss_video", "loss_reg", "lr", "grad_norm", "step_seconds", "samples_per_second",
                 "peak_memory_mb"):
        assert [s for s, _ in scalars[f"train/{name}"]] == [1, 2], name
    rows = list(read_jsonl(out / "losses.jsonl"))
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [r["loss"] for r in rows], rtol=1e-6)
    assert all(v > 0 for _, v in scalars["train/peak_memory_mb"])
    assert json.loads((out / "provenance.json").read_text())["tracker"] == "tensorboard"


def test_report_to_refusals_and_auto(tmp_path, data, monkeypatch, caplog):
    from vm_model.training import trackers

    real = trackers._importable
    monkeypatch.setattr(trackers, "_importable", lambda m: False if m in ("wandb", "tensorboard") else real(m))
    assert main(data + ["--max-steps", "1", "--report-to", "wandb", "--output-dir", str(tmp_path / "w")]) == 2
    assert "pip install wandb" in caplog.text and not (tmp_path / "w").exists()
    with caplog.at_level("INFO"):
        assert main(data + ["--max-steps", "1", "--output-dir", str(tmp_path / "auto")]) == 0
    assert "tensorboard is not installed, so no tracker" in caplog.text
    assert not (tmp_path / "auto" / "logs").exists()
    assert json.loads((tmp_path / "auto" / "provenance.json").read_text())["tracker"] is None


def test_validation_videos_are_written_scored_and_leave_training_unchanged(tmp_path, data, validation_manifest):
    pytest.importorskip("tensorboard")
    args = data + ["--max-steps", "2", "--ema-decay", "0.9"]
    with_validation, without = tmp_path / "val", tmp_path / "plain"
    assert main(args + ["--validation-every", "2", "--validation-manifest", str(validation_manifest),
                        "--report-to", "tensorboard", "--output-dir", str(with_validation)]) == 0
    assert main(args + ["--report-to", "none", "--output-dir", str(without)]) == 0
    _assert_same(_files(with_validation), _files(without))  # validation leaves every RNG as it was
    assert _rows(with_validation) == _rows(without)
    step_dir = with_validation / "validation" / "step-00000002"
    (gif,) = step_dir.glob("*.gif")
    from vm_common.media import read_video

    assert read_video(gif).shape == (4, 64, 64, 3)  # the tiny preset's frames and resolution
    scores = json.loads((step_dir / "scores.json").read_text())
    assert scores["step"] == 2 and scores["encoders"] == "tiny"
    (video,) = scores["videos"]
    assert set(video["metrics"]) == {"clip_t", "face_sim", "clip_i", "dino_i", "t_cons"}
    for name in ("clip_t", "clip_i", "dino_i", "t_cons"):
        assert video["metrics"][name]["status"] == "ok" and f"validation/{name}" in scores["means"]
    scalars = _scalars(with_validation / "logs" / "vm-train")
    assert scalars["validation/clip_i"] == [(2, pytest.approx(scores["means"]["validation/clip_i"], rel=1e-6))]
    assert not (without / "validation").exists()


def test_validation_needs_a_manifest(tmp_path, data, caplog):
    assert main(data + ["--validation-every", "2", "--output-dir", str(tmp_path / "x")]) == 2
    assert "--validation-manifest" in caplog.text


# -------------------------------------------------------------------------------------------------------- LoRA
def _tiny_unet():
    from vm_model.components import load_base_components
    from vm_model.pisa import install_pisa
    from vm_model.presets import TINY_SOURCES
    from vm_model.sources import ModelSources

    unet = load_base_components(ModelSources(**TINY_SOURCES))["unet"]
    install_pisa(unet)
    return unet.eval()


def _output(unet) -> torch.Tensor:
    from vm_model.unet_call import unet_with_reference

    g = torch.Generator().manual_seed(3)
    video, ref = torch.randn(1, 4, 4, 8, 8, generator=g), torch.randn(1, 4, 1, 8, 8, generator=g)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        return unet_with_reference(unet, video, ref, torch.tensor([500]), text)[0]


def test_lora_training_resumes_generates_from_the_run_and_exports_merged(tmp_path, data):
    from vm_model.checkpoint import load_videomaker_weights
    from vm_model.components import load_pipeline
    from vm_model.export_weights import release_state_dict
    from vm_model.sources import ModelSources
    from vm_model.training.lora import add_lora, load_lora_state, read_metadata

    # start weights: the tiny UNet's trainable set, perturbed (a LoRA run fine-tunes them; loading must apply them)
    start_unet = _tiny_unet()
    start = {k: v + 0.01 for k, v in release_state_dict(start_unet).items()}
    torch.save(start, tmp_path / "start.bin")
    args = data + ["--lora-rank", "4", "--lora-alpha", "8", "--learning-rate", "1e-2", "--report-to", "none",
                   "--weights", str(tmp_path / "start.bin")]
    run, split = tmp_path / "lora", tmp_path / "lora-1-1"
    assert main(args + ["--max-steps", "2", "--output-dir", str(run)]) == 0
    assert main(args + ["--max-steps", "1", "--output-dir", str(split)]) == 0
    assert main(args + ["--max-steps", "2", "--output-dir", str(split), "--resume"]) == 0
    lora = _files(run)
    _assert_same(lora, _files(split))
    assert lora and all(".lora_A." in k or ".lora_B." in k for k in lora)
    assert any(k.endswith("motion_modules.0.transformer_blocks.0.attn1.to_q.lora_A.weight") for k in lora)
    assert sum(v.numel() for v in lora.values()) < sum(v.numel() for v in start.values()) / 2
    meta = read_metadata(latest_checkpoint(run) / "trainable.safetensors")
    assert meta["lora"]["rank"] == 4 and meta["lora"]["alpha"] == 8.0
    assert meta["start_weights"] == str((tmp_path / "start.bin").resolve())

    # the LoRA model as trained: start weights, then adapters carrying the run's matrices (not merged)
    trained = _tiny_unet()
    load_videomaker_weights(trained, tmp_path / "start.bin")
    add_lora(trained, 4, 8.0)
    load_lora_state(trained, lora)
    expected = _output(trained)
    assert (expected - _output(start_unet)).abs().max() > 1e-4  # the start weights and LoRA both matter

    # merged export in the release layout: same output from a plain UNet
    merged_path = tmp_path / "merged.bin"
    assert vm_main(["export-weights", "--weights", str(run), "--out", str(merged_path)]) == 0
    merged = torch.load(merged_path, weights_only=True)
    assert merged.keys() == start.keys()  # attn1 + motion modules, no prefix, no LoRA keys
    fresh = _tiny_unet()
    load_videomaker_weights(fresh, merged_path)
    torch.testing.assert_close(_output(fresh), expected, atol=1e-5, rtol=1e-4)

    # load_pipeline / vm generate with the run folder apply start weights + LoRA
    pipe = load_pipeline(ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny",
                                      videomaker_weights=str(run)), device="cpu")
    torch.testing.assert_close(_output(pipe.unet.eval()), expected, atol=1e-5, rtol=1e-4)
    image = tmp_path / "ref.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
    assert vm_main(["generate", "--preset", "tiny", "--weights", str(run), "--image", str(image), "--prompt",
                    "A ball.", "--num-frames", "3", "--steps", "2", "--height", "64", "--width", "64", "--out",
                    str(tmp_path / "videos")]) == 0
    assert len(list((tmp_path / "videos").glob("*.gif"))) == 1


def test_8bit_adamw_is_refused_with_what_is_missing(tmp_path, data, caplog):
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes"):
        pytest.skip("bitsandbytes and a GPU are present")
    assert main(data + ["--optimizer", "adamw8bit", "--output-dir", str(tmp_path / "x")]) == 2
    assert "--optimizer adamw8bit needs" in caplog.text and not (tmp_path / "x").exists()
