"""Loading VideoMaker weights (official-style state dicts, our checkpoints) and resolving pretrained sources."""

from __future__ import annotations

import pickle

import pytest
import torch

from model_helpers import tiny_motion_unet
from vm_common.weights import MissingWeightsError, resolve_source
from vm_model.checkpoint import load_videomaker_weights, save_trainable_weights
from vm_model.components import resolve_videomaker_weights
from vm_model.pisa import install_pisa
from vm_model.train import set_trainable


def _official_style_state(unet, scale=1.0):
    return {k: v.clone() * scale + 0.5 for k, v in unet.state_dict().items()
            if ("attn1" in k and ".attentions." in k) or "motion_modules" in k}


def test_official_bin_loads_with_report(tmp_path):
    source, target = tiny_motion_unet(seed=1), tiny_motion_unet(seed=2)
    state = _official_style_state(source)
    state["unet.conv_in.weight"] = source.state_dict()["conv_in.weight"]  # prefixed key: stripped
    state["not_a_unet_key"] = torch.zeros(3)
    path = tmp_path / "human_pytorch_model.bin"
    torch.save(state, path)
    install_pisa(target)  # the official loader installs PISA first; processors hold no weights
    report = load_videomaker_weights(target, path)
    assert report.unexpected == ["not_a_unet_key"]
    assert report.not_covered == {}
    assert report.loaded == len(state) - 1
    own = target.state_dict()
    for key, value in state.items():
        if key != "not_a_unet_key":
            torch.testing.assert_close(own[key.removeprefix("unet.")], value)


def test_official_bin_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.bin"
    with open(path, "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(ValueError, match="weights_only"):
        load_videomaker_weights(tiny_motion_unet(), path)


def test_partial_weights_report_what_they_miss(tmp_path):
    source, target = tiny_motion_unet(seed=1), tiny_motion_unet(seed=2)
    state = {k: v for k, v in source.state_dict().items() if "attn1" in k and ".attentions." in k
             and "motion_modules" not in k}
    torch.save(state, tmp_path / "attn_only.bin")
    report = load_videomaker_weights(target, tmp_path / "attn_only.bin")
    assert report.not_covered.get("motion_modules", 0) > 0
    assert "spatial_self_attention" not in report.not_covered


def test_shape_mismatch_is_an_error(tmp_path):
    key = next(k for k in tiny_motion_unet().state_dict() if "attn1.to_q.weight" in k)
    torch.save({key: torch.zeros(3, 3)}, tmp_path / "bad.bin")
    with pytest.raises(ValueError, match="do not match"):
        load_videomaker_weights(tiny_motion_unet(), tmp_path / "bad.bin")


def test_trainable_checkpoint_roundtrip(tmp_path):
    source, target = tiny_motion_unet(seed=3), tiny_motion_unet(seed=4)
    n = set_trainable(source, train_motion_modules=False)
    assert n > 0
    save_trainable_weights(source, tmp_path / "trainable.safetensors")
    report = load_videomaker_weights(target, tmp_path)  # a folder holding trainable.safetensors
    assert report.not_covered.get("motion_modules", 0) > 0
    for name, p in source.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(dict(target.named_parameters())[name], p)


def test_missing_local_weights_name_what_and_where(tmp_path):
    with pytest.raises(MissingWeightsError) as exc:
        resolve_videomaker_weights(str(tmp_path / "nothing.bin"))
    assert "nothing.bin" in str(exc.value) and "human" in str(exc.value)


def test_hub_id_offline_says_where_it_looked_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as exc:
        resolve_source("guoyww/animatediff-motion-adapter-v1-5-3", what="motion adapter")
    msg = str(exc.value)
    assert "motion adapter" in msg and "guoyww/animatediff-motion-adapter-v1-5-3" in msg
    assert "HF_HUB_OFFLINE" in msg and "hf download" in msg


def test_path_like_source_never_falls_back_to_the_hub(tmp_path):
    with pytest.raises(MissingWeightsError, match="check the path"):
        resolve_source(str(tmp_path / "no" / "such"), what="base model")
