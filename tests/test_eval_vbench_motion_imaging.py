"""VBench motion smoothness (AMT-S) and imaging quality (MUSIQ): the networks' state-dict layouts against the
released checkpoints' (listed from the reference source), loaders, VBench's preprocessing rules and aggregation on
known answers, and the scorer (tiny stand-ins; skipped with the reason when weights are missing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vm_eval.amt import AMT_S, AMTS, AMTConfig, load_amt_s, read_state_dict
from vm_eval.musiq import MUSIQ, MUSIQConfig, hashed_positions, load_musiq, multiscale_patches
from vm_eval.vbench_motion_imaging import (IMAGING, MOTION, amt_scale, coarsest_correlation_side, imaging_input,
                                           imaging_quality_score, interpolate_middles, motion_smoothness,
                                           motion_smoothness_score, pad_amounts, to_uint8)

ASSETS = Path(__file__).parent / "assets"
TINY_AMT = AMTConfig(channels=(8, 8, 12, 12), skip_channels=4, feat_channels=(8, 8, 16), feat_dim=16, hidden_dim=16,
                     flow_dim=4, corr_dim=8, fc_dim=8, corr_radius=1, corr_levels=2, num_flows=2)
TINY_MUSIQ = MUSIQConfig(hidden_size=32, mlp_dim=64, num_heads=2, num_layers=2, token_dim=32)


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _listing(name: str) -> dict[str, list[int]]:
    return json.loads((ASSETS / name).read_text())["shapes"]


# ------------------------------------------------------------------------------------------ state-dict layouts
def test_amt_s_has_the_released_checkpoints_keys_and_shapes():
    assert _shapes(AMTS(AMT_S)) == _listing("vbench_amt_s_state_dict_shapes.json")


def test_musiq_has_the_released_spaq_checkpoints_keys_and_shapes():
    assert _shapes(MUSIQ()) == _listing("vbench_musiq_spaq_state_dict_shapes.json")


def test_amt_loader_reads_the_released_file_layout_and_is_strict(tmp_path):
    torch.manual_seed(0)
    model = AMTS(TINY_AMT)
    (tmp_path / "amt_config.json").write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in TINY_AMT.__dict__.items()}))
    # amt-s.pth: {"state_dict": ...}; a DataParallel "module." prefix is dropped
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "amt-s.pth")
    loaded = load_amt_s(tmp_path / "amt-s.pth", device=torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    state = read_state_dict(tmp_path / "amt-s.pth")
    state.pop("comb_block.0.bias")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "amt_config.json").write_text((tmp_path / "amt_config.json").read_text())
    torch.save(state, tmp_path / "b" / "amt-s.pth")
    with pytest.raises(RuntimeError, match="comb_block.0.bias"):
        load_amt_s(tmp_path / "b" / "amt-s.pth", device=torch.device("cpu"))


def test_musiq_loader_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    model = MUSIQ(TINY_MUSIQ)
    save_file(model.state_dict(), str(tmp_path / "m.safetensors"))
    (tmp_path / "musiq_config.json").write_text(json.dumps(TINY_MUSIQ.__dict__))
    loaded = load_musiq(tmp_path / "m.safetensors", device=torch.device("cpu"))
    x = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_missing_weights_name_what_where_and_how(monkeypatch, tmp_path):
    from vm_common.weights import MissingWeightsError
    from vm_eval.registry import AMT_S_WEIGHTS, MUSIQ_SPAQ_WEIGHTS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match="amt-s.pth") as e:
        AMT_S_WEIGHTS.resolve(str(tmp_path / "nope" / "amt-s.pth"))
    assert "--amt-weights" in str(e.value)
    with pytest.raises(MissingWeightsError, match="musiq_spaq_ckpt-358bb6af.pth") as e:
        MUSIQ_SPAQ_WEIGHTS.resolve(None)
    assert "hf download chaofengc/IQA-PyTorch-Weights" in str(e.value)
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "vbench"))
    (tmp_path / "vbench" / "amt_model").mkdir(parents=True)
    (tmp_path / "vbench" / "amt_model" / "amt-s.pth").write_bytes(b"")
    assert AMT_S_WEIGHTS.resolve(None) == tmp_path / "vbench" / "amt_model" / "amt-s.pth"  # VBench's own download


# ------------------------------------------------------------------------------------ motion smoothness rules
def test_amt_scale_follows_vbench():
    assert amt_scale(1080, 1920) == 1.0  # the CPU branch (and any torch.device): full resolution
    # the CUDA branch on an 8 GiB GPU and a 4K frame: 512*1024/(2160*3840) * sqrt((8-2.44)/1.46) = 0.1235..
    s = 512 * 1024 / (2160 * 3840) * np.sqrt((8 * 1024 ** 3 - 2500 * 1024 ** 2) / (1500 * 1024 ** 2))
    assert amt_scale(2160, 3840, 8 * 1024 ** 3) == pytest.approx(16 / np.floor(16 / np.sqrt(s)))
    assert amt_scale(2160, 3840, 8 * 1024 ** 3) < 1


def test_padding_and_the_smallest_usable_size():
    assert pad_amounts(100, 96, 16) == (0, 0, 6, 6)
    assert pad_amounts(101, 90, 16) == (3, 3, 5, 6)
    assert coarsest_correlation_side(128, 200, 1.0, 4) == 2
    assert coarsest_correlation_side(112, 200, 1.0, 4) == 1  # VBench's own code divides by zero here


def test_to_uint8_truncates_like_tensor2img():
    x = torch.tensor([0.0, 0.5, 1.0, 1.2, -0.1, 29.999 / 255]).view(1, 1, 2, 3).repeat(1, 3, 1, 1)
    assert to_uint8(x)[0, ..., 0].reshape(-1).tolist() == [0, 127, 255, 255, 0, 29]


def test_score_compares_odd_frames_with_the_predictions_and_drops_an_unpaired_last_one():
    frames = np.zeros((6, 4, 4, 3), np.uint8)
    frames[1], frames[3], frames[5] = 10, 20, 200  # frame 5 has no prediction (only 3 even frames -> 2 middles)
    middles = np.zeros((2, 4, 4, 3), np.uint8)
    middles[1] = 26
    r = motion_smoothness_score(frames, middles)
    assert r.detail["n_pairs"] == 2 and r.detail["mean_abs_diff"] == pytest.approx(8.0)  # (10 + 6) / 2
    assert r.value == pytest.approx((255 - 8) / 255)


class _CopyFirst(torch.nn.Module):
    """An 'interpolator' that returns its first frame: the known answer is |odd frame - previous even frame|."""

    cfg = TINY_AMT

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, img0, img1, embt, scale_factor=1.0):
        self.shapes.append((tuple(img0.shape), float(embt.reshape(-1)[0]), scale_factor))
        return img0


def test_motion_smoothness_known_answer_with_padding_and_batching():
    rng = np.random.default_rng(0)
    frames = (rng.random((7, 37, 50, 3)) > 0.5).astype(np.uint8) * 255  # 0/255 survive x/255*255 exactly
    model = _CopyFirst()
    r = motion_smoothness(model, frames, torch.device("cpu"), pair_batch=2)
    by_hand = np.mean([np.abs(frames[2 * k + 1].astype(int) - frames[2 * k].astype(int)).mean() for k in range(3)])
    assert r.status == "ok" and r.value == pytest.approx((255 - by_hand) / 255, abs=1e-12)
    assert model.shapes == [((2, 3, 48, 64), 0.5, 1.0), ((1, 3, 48, 64), 0.5, 1.0)]  # padded to 16, 3 pairs


def test_motion_smoothness_needs_three_frames_and_a_large_enough_frame():
    model = _CopyFirst()
    assert motion_smoothness(model, np.zeros((2, 64, 64, 3), np.uint8), torch.device("cpu")).status == "error"
    big = type("M", (), {"cfg": AMT_S})()
    r = motion_smoothness(big, np.zeros((5, 96, 96, 3), np.uint8), torch.device("cpu"))
    assert r.status == "error" and "too small" in r.reason


def test_tiny_amt_predicts_a_frame_in_range_and_batching_does_not_change_it():
    torch.manual_seed(0)
    model = AMTS(TINY_AMT).eval()
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (5, 64, 80, 3), dtype=np.uint8)
    a = interpolate_middles(model, frames, torch.device("cpu"), pair_batch=1)
    b = interpolate_middles(model, frames, torch.device("cpu"), pair_batch=4)
    assert a.shape == (2, 64, 80, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


# --------------------------------------------------------------------------------------- imaging quality rules
def test_imaging_preprocessing_modes():
    t = torch.full((2, 3, 600, 800), 255.0)
    assert imaging_input(t).shape == (2, 3, 384, 512)  # longer side to 512, sizes truncated
    assert imaging_input(t, "shorter").shape == (2, 3, 512, 682)
    assert imaging_input(t, "shorter_centercrop").shape == (2, 3, 512, 512)
    assert imaging_input(t, "None").shape == (2, 3, 600, 800)
    small = torch.full((1, 3, 300, 400), 51.0)
    assert torch.equal(imaging_input(small), small / 255.0)  # not resized below 512
    with pytest.raises(ValueError, match="preprocessing mode"):
        imaging_input(small, "crop")


def test_imaging_score_is_the_frame_mean_over_100():
    r = imaging_quality_score(torch.tensor([40.0, 60.0, 50.0]))
    assert r.value == pytest.approx(0.5) and r.detail == {"musiq_mean": pytest.approx(50.0), "n_frames": 3}


def test_hashed_positions_and_the_multiscale_sequence():
    assert hashed_positions(10, 2, 3).tolist() == [0, 3, 6, 50, 53, 56]
    seq = multiscale_patches(torch.zeros(1, 3, 96, 160))
    # 224: 134x224 -> 5x7 = 35 patches, padded to 49; 384: 230x384 -> 8x12 = 96, padded to 144; original: 3x5 = 15
    assert seq.shape == (1, 49 + 144 + 15, 32 * 32 * 3 + 3)
    mask, scale = seq[0, :, -1], seq[0, :, -2]
    assert mask.sum() == 35 + 96 + 15
    assert mask[:35].all() and not mask[35:49].any()
    assert set(scale[:35].tolist()) == {0.0} and set(scale[49:49 + 96].tolist()) == {1.0}
    assert set(scale[-15:].tolist()) == {2.0}


def test_padding_tokens_do_not_reach_the_class_token():
    torch.manual_seed(0)
    model = MUSIQ(TINY_MUSIQ).eval()
    enc = model.transformer_encoder
    x = torch.randn(1, 5, 32)
    spatial, scale = torch.tensor([[0, 3, 6, 50, 53]]), torch.zeros(1, 5)
    with torch.no_grad():
        alone = enc(x, spatial, scale, torch.ones(1, 5, dtype=torch.bool))[:, 0]
        padded = enc(torch.cat([x, torch.randn(1, 4, 32)], 1), torch.cat([spatial, torch.zeros(1, 4)], 1),
                     torch.zeros(1, 9), torch.tensor([[True] * 5 + [False] * 4]))[:, 0]
    assert torch.allclose(alone, padded, atol=1e-5)


# ----------------------------------------------------------------------------------------------------- scorer
def test_scorer_scores_both_with_the_tiny_models_and_skips_without_weights(monkeypatch, tmp_path):
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.metrics import VBENCH_COLUMNS, get_metric
    from vm_eval.testing import shifting_video, smooth_texture

    assert MOTION in VBENCH_COLUMNS and IMAGING in VBENCH_COLUMNS and get_metric(MOTION).family == "vbench"
    frames = shifting_video(smooth_texture(160, 2)[:128], 4, 5)
    tiny = Encoders(EncoderConfig(preset="tiny", device="cpu", suites=("vbench",))).vbench
    res = tiny.score(frames, (MOTION, IMAGING))
    assert res[MOTION].status == "ok" and 0.0 <= res[MOTION].value <= 1.0 and res[MOTION].detail["n_pairs"] == 2
    assert res[IMAGING].status == "ok" and res[IMAGING].detail["n_frames"] == 5
    assert res[IMAGING].value == pytest.approx(res[IMAGING].detail["musiq_mean"] / 100)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    full = Encoders(EncoderConfig(preset="full", device="cpu", suites=("vbench",),
                                  amt_weights=str(tmp_path / "amt-s.pth"),
                                  musiq_weights=str(tmp_path / "musiq.pth"))).vbench
    res = full.score(frames, (MOTION, IMAGING))
    assert res[MOTION].status == "skipped" and "amt-s.pth" in res[MOTION].reason
    assert res[IMAGING].status == "skipped" and "musiq.pth" in res[IMAGING].reason
