"""Weights resolution against a Hugging Face cache laid out as the hub client writes it, and `vm weights`."""

from __future__ import annotations

import json

import pytest

from vm_common.weights import MissingWeightsError, resolve_source
from vm_common.weights_cmd import main as weights_main


def _fake_hub_repo(cache, repo_id: str, files: dict[str, str]) -> None:
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, content in files.items():
        path = folder / "snapshots" / commit / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_hub_ids_resolve_from_the_local_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    _fake_hub_repo(tmp_path, "SugerWu/VideoMaker", {"human_pytorch_model.bin": "x"})
    _fake_hub_repo(tmp_path, "guoyww/animatediff-motion-adapter-v1-5-3", {"config.json": "{}"})
    path = resolve_source("SugerWu/VideoMaker", what="weights", filename="human_pytorch_model.bin")
    assert path.name == "human_pytorch_model.bin" and path.read_text() == "x"
    folder = resolve_source("guoyww/animatediff-motion-adapter-v1-5-3", what="motion adapter")
    assert (folder / "config.json").exists()
    with pytest.raises(MissingWeightsError, match="object_pytorch_model.bin"):
        resolve_source("SugerWu/VideoMaker", what="weights", filename="object_pytorch_model.bin")


def test_vm_weights_lists_every_component(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert weights_main(["--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    for key in ("base_model", "motion_adapter", "videomaker_human", "videomaker_object", "grounding_dino", "sam",
                "eval_clip_vit_b32", "eval_dino_vits16", "eval_insightface_buffalo_l", "eval_raft_large"):
        assert key in rows and rows[key]["used_by"] and rows[key]["where"]
    assert weights_main(["--command", "train"]) == 0
    text = capsys.readouterr().out
    assert "base_model" in text and "eval_clip_vit_b32" not in text
