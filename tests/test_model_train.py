"""`vm train` on the tiny preset and synthetic data: outputs, exact resume, refusals, NaN stop, what trains."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from model_helpers import tiny_motion_unet
from vm_common.io_utils import read_jsonl
from vm_model import train as train_module
from vm_model.checkpoint import latest_checkpoint
from vm_model.losses import add_remind_noise, girl_timesteps, masked_mse, videomaker_loss
from vm_model.scheduler import training_scheduler
from vm_model.train import main, set_trainable

TINY = ["--preset", "tiny", "--data", "synthetic", "--synthetic-clips", "3", "--num-workers", "0"]


def _weights(run_dir):
    return load_file(str(latest_checkpoint(run_dir) / "trainable.safetensors"))


def test_tiny_training_writes_everything(tmp_path):
    out = tmp_path / "run"
    assert main(TINY + ["--max-steps", "2", "--output-dir", str(out)]) == 0
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and ckpt.name == "step-00000002"
    assert (ckpt / "state.pt").exists()
    rows = list(read_jsonl(out / "losses.jsonl"))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["loss_video"] > 0 and r["loss"] >= r["loss_video"] for r in rows)
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "tiny" and config["girl_alpha"] == 0.01 and config["girl_beta"] == 0.1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["random_weights"] is True and prov["seed"] == 0 and "torch" in prov["versions"]
    names = set(_weights(out))
    assert names and all((".attn1." in n and ".attentions." in n) or "motion_modules" in n for n in names)
    assert any("motion_modules" in n for n in names)


def test_resume_two_plus_two_equals_four(tmp_path):
    from vm_data.synthetic import make_synthetic_dataset

    # one dataset for both runs: video encoding is not bit-reproducible, so they must read the same files
    data = ["--preset", "tiny", "--num-workers", "0", "--data",
            str(make_synthetic_dataset(tmp_path / "data", num_clips=3, num_frames=24, size=64))]
    straight, resumed = tmp_path / "four", tmp_path / "two-two"
    assert main(data + ["--max-steps", "4", "--output-dir", str(straight)]) == 0
    assert main(data + ["--max-steps", "2", "--output-dir", str(resumed)]) == 0
    assert main(data + ["--max-steps", "4", "--output-dir", str(resumed), "--resume"]) == 0
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    losses_a = [r["loss"] for r in read_jsonl(straight / "losses.jsonl")]
    losses_b = [r["loss"] for r in read_jsonl(resumed / "losses.jsonl")]
    assert losses_a == losses_b


def test_existing_run_dir_is_refused(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(out)]) == 2  # a user error: one line, exit 2
    assert "--resume" in caplog.text and "--overwrite" in caplog.text
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(out), "--overwrite"]) == 0
    assert not (out / "something").exists()


def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(out)]) == 0
    before = _weights(out)
    real_loss = train_module.videomaker_loss

    def poisoned(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(train_module, "videomaker_loss", poisoned)
    assert main(TINY + ["--max-steps", "3", "--output-dir", str(out), "--resume"]) == 1
    assert "non-finite loss at step 2" in caplog.text
    assert latest_checkpoint(out).name == "step-00000001"
    after = _weights(out)
    for key in before:
        torch.testing.assert_close(after[key], before[key], atol=0, rtol=0)


def test_girl_off_has_no_reg_loss_and_frozen_motion_modules(tmp_path):
    out = tmp_path / "run"
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(out), "--no-girl", "--no-train-motion-modules"]) == 0
    rows = list(read_jsonl(out / "losses.jsonl"))
    assert rows[0]["loss_reg"] == 0.0 and rows[0]["loss"] == rows[0]["loss_video"]
    assert not any("motion_modules" in n for n in _weights(out))


def test_trainable_selection():
    unet = tiny_motion_unet()
    set_trainable(unet, train_motion_modules=True)
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert any("motion_modules" in n for n in trainable)
    assert not any(".attn2." in n and "motion_modules" not in n for n in trainable)
    assert not any(n.startswith(("conv_in", "time_embedding")) for n in trainable)
    assert not any(".resnets." in n for n in trainable)


def test_girl_noise_is_the_papers_formula():
    sched = training_scheduler()
    t = torch.tensor([0, 49, 51, 999])
    assert girl_timesteps(t, 0.01).tolist() == [0, 0, 1, 10]
    ref, eps = torch.randn(4, 4, 1, 2, 2), torch.randn(4, 4, 1, 2, 2)
    got = add_remind_noise(sched, ref, eps, t, 0.01)
    acp = sched.alphas_cumprod[torch.tensor([0, 0, 1, 10])].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(got, acp.sqrt() * ref + (1 - acp).sqrt() * eps)
    assert (1 - sched.alphas_cumprod[0]).sqrt().item() == pytest.approx(0.029, abs=1e-3)


def test_training_targets_follow_the_prediction_type():
    from vm_model.scheduler import training_target

    x, eps, t = torch.randn(3, 4, 2, 2, 2), torch.randn(3, 4, 2, 2, 2), torch.tensor([0, 500, 999])
    assert training_target(training_scheduler("epsilon"), x, eps, t) is eps
    v_sched = training_scheduler("v_prediction")
    acp = v_sched.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(training_target(v_sched, x, eps, t), acp.sqrt() * eps - (1 - acp).sqrt() * x)
    with pytest.raises(ValueError, match="sample"):
        training_scheduler("sample")


def test_base_prediction_type_is_read_from_the_scheduler_config(tmp_path):
    from vm_model.components import base_model_prediction_type
    from vm_model.scheduler import inference_scheduler

    inference_scheduler("v_prediction").save_pretrained(tmp_path / "base" / "scheduler")
    assert base_model_prediction_type(str(tmp_path / "base")) == "v_prediction"
    assert base_model_prediction_type(str(tmp_path)) == "epsilon"  # no config: SD 1.x folders, the official release
    (tmp_path / "base" / "scheduler" / "scheduler_config.json").write_text('{"beta_start": 0.001}')
    assert base_model_prediction_type(str(tmp_path / "base")) == "epsilon"  # diffusers' default when the key is absent
    (tmp_path / "base" / "scheduler" / "scheduler_config.json").write_text('{"prediction_type": "sample"}')
    with pytest.raises(ValueError, match="scheduler_config.json.*not supported"):
        base_model_prediction_type(str(tmp_path / "base"))
    (tmp_path / "base" / "scheduler" / "scheduler_config.json").write_text('{"prediction_type": ')  # truncated
    with pytest.raises(ValueError, match="scheduler_config.json"):
        base_model_prediction_type(str(tmp_path / "base"))


def test_v_prediction_training_uses_velocity_targets(tmp_path, monkeypatch):
    """--prediction-type v_prediction: the video target is the velocity at t and the GIRL target the reference's
    velocity at t' = round(alpha t), not the noises."""
    seen, calls = [], []
    real_loss = train_module.videomaker_loss
    real_step = train_module.training_step

    def spy_loss(pred_video, target_video, pred_ref, target_ref, *args, **kwargs):
        seen.append((target_video.detach().clone(), target_ref.detach().clone()))
        return real_loss(pred_video, target_video, pred_ref, target_ref, *args, **kwargs)

    def spy_target(scheduler, clean, noise, timesteps):
        out = scheduler.get_velocity(clean, noise, timesteps)
        acp = scheduler.alphas_cumprod[timesteps.cpu()].view(-1, *[1] * (clean.dim() - 1))
        torch.testing.assert_close(out, acp.sqrt() * noise - (1 - acp).sqrt() * clean)
        assert not torch.allclose(out, noise)
        calls.append(timesteps.clone())
        return out

    monkeypatch.setattr(train_module, "videomaker_loss", spy_loss)
    monkeypatch.setattr(train_module, "training_target", spy_target)
    out = tmp_path / "run"
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(out), "--prediction-type", "v_prediction"]) == 0
    assert len(seen) == 1 and real_step is train_module.training_step
    video_t, reference_t = calls  # one call for the video frames, one for the reference at the remind-noise level
    assert torch.equal(reference_t, girl_timesteps(video_t, 0.01))
    assert json.loads((out / "provenance.json").read_text())["prediction_type"] == "v_prediction"
    assert json.loads((out / "config.json").read_text())["prediction_type"] == "v_prediction"


def test_loss_masks_dropped_references():
    pred_v, noise_v = torch.zeros(2, 4, 3, 2, 2), torch.ones(2, 4, 3, 2, 2)
    pred_r, noise_r = torch.zeros(2, 4, 1, 2, 2), torch.stack([torch.full((4, 1, 2, 2), 2.0),
                                                               torch.full((4, 1, 2, 2), 10.0)])
    terms = videomaker_loss(pred_v, noise_v, pred_r, noise_r, torch.tensor([True, False]), beta=0.1)
    assert terms.video.item() == pytest.approx(1.0)
    assert terms.reg.item() == pytest.approx(4.0)  # only the kept reference counts
    assert terms.total.item() == pytest.approx(1.4)
    none_kept = masked_mse(pred_r, noise_r, torch.tensor([False, False]))
    assert none_kept.item() == 0.0


@pytest.mark.slow
def test_two_process_training_with_accelerate_launch(tmp_path):
    """A real 2-process DDP run on CPU (gloo) with gradient accumulation: both processes train, rank 0 writes one
    log and checkpoints, the effective batch is 2 processes x 1 x 2."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vm_model.train"] + TINY + [
           "--max-steps", "2", "--gradient-accumulation-steps", "2", "--output-dir", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["num_processes"] == 2 and prov["effective_batch_size"] == 4
    assert [r["step"] for r in read_jsonl(out / "losses.jsonl")] == [1, 2]
    assert latest_checkpoint(out).name == "step-00000002"


def test_resume_with_other_settings_is_refused_naming_them(tmp_path, caplog):
    out = tmp_path / "run"
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(out)]) == 0
    caplog.clear()
    assert main(TINY + ["--max-steps", "2", "--learning-rate", "0.5", "--output-dir", str(out), "--resume"]) == 2
    assert "learning_rate: 1e-05 -> 0.5" in caplog.text
    assert main(TINY + ["--max-steps", "2", "--output-dir", str(out), "--resume"]) == 0  # max_steps may change


@pytest.mark.parametrize("bad, option", [(["--seed", "-1"], "seed"), (["--learning-rate", "nan"], "learning"),
                                         (["--batch-size", "0"], "batch"), (["--resolution", "60"], "resolution"),
                                         (["--data", "/nonexistent/manifest.jsonl"], "manifest")])
def test_nonsense_training_options_are_one_line_errors(tmp_path, caplog, bad, option):
    assert main(TINY + ["--max-steps", "1", "--output-dir", str(tmp_path / "r")] + bad) == 2
    assert option in caplog.text.lower()
    assert not (tmp_path / "r").exists()  # nothing written before validation
