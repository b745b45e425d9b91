"""Issue 12 §1: `vm cache-latents` and `vm train --latent-cache` on the tiny preset: the format, the first step's
loss equal to the on-the-fly one, the VAE / text encoder not loaded, refusals of other settings, and resume that
encodes each clip exactly once."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from vm_common.io_utils import read_jsonl
from vm_model import cache_latents
from vm_model import train as train_module
from vm_model.cache_latents import main as cache_main
from vm_model.latent_cache import store
from vm_model.latent_cache.settings import mismatches
from vm_model.train import main as train_main

TINY = ["--preset", "tiny"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """One dataset for every run: video encoding is not bit-reproducible, so compared runs must share files."""
    from vm_data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("data"), num_clips=3, num_frames=24, size=64)


@pytest.fixture(scope="module")
def cache(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("latents") / "cache"
    assert cache_main(TINY + ["--data", str(manifest), "--output", str(out)]) == 0
    return out


def _spy_parts(monkeypatch) -> list[tuple[str, ...]]:
    """Record which components each training run loads."""
    seen = []
    real = train_module.load_base_components

    def spy(sources, dtype=torch.float32, parts=("unet", "vae", "text_encoder", "tokenizer")):
        seen.append(tuple(parts))
        return real(sources, dtype=dtype, parts=parts)

    monkeypatch.setattr(train_module, "load_base_components", spy)
    return seen


def test_cache_holds_every_kept_clip_in_the_documented_format(cache, manifest):
    index = json.loads((cache / store.INDEX).read_text())
    assert index["format"] == "vm-latent-cache" and index["version"] == 1 and index["complete"] is True
    settings = index["settings"]
    assert {k: settings[k] for k in ("resolution", "num_frames", "frame_stride", "dtype")} == {
        "resolution": 64, "num_frames": 4, "frame_stride": 2, "dtype": "fp32"}  # the tiny preset of `vm train`
    assert settings["vae"]["source"] == "builtin:tiny" and settings["vae"]["subfolder"] == "vae"
    assert len(settings["vae"]["config"]) == 16 and settings["vae"]["scaling_factor"] == pytest.approx(0.18215)
    assert settings["text_encoder"]["source"] == "builtin:tiny"
    kept = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(index["clips"]) == sorted(row["clip_id"] for row in kept) and not index["failed"]
    for row in kept:
        with safe_open(str(cache / index["clips"][row["clip_id"]]["file"]), framework="pt") as fh:
            meta = {k: json.loads(v) for k, v in fh.metadata().items()}
            assert meta["clip_id"] == row["clip_id"] and meta["settings"] == index["settings_digest"]
            assert fh.get_tensor("frame_indices").tolist() == list(range(24))  # every frame a window can hold
            mean, std = fh.get_tensor("frame_mean"), fh.get_tensor("frame_std")
            assert mean.shape == std.shape == (24, 4, 8, 8) and mean.dtype == torch.float32 and (std > 0).all()
            assert fh.get_tensor("reference_mean").shape == (len(row["references"]), 4, 8, 8)
            assert fh.get_tensor("text").shape[0] == 77
    with safe_open(str(cache / store.EMPTY_TEXT), framework="pt") as fh:
        assert fh.get_tensor("text").shape[0] == 77
    assert [r["status"] for r in read_jsonl(cache / "shards" / "latents-00000.jsonl")] == ["ok"] * 3


def test_first_step_loss_from_the_cache_equals_the_on_the_fly_loss(tmp_path, manifest, cache, monkeypatch):
    """Augmentation off, batch 2, text dropout 0.5: sample 0's caption is dropped (the cached empty caption), sample
    1's is not; losses equal within float tolerance, and the cached run loads neither VAE nor text encoder."""
    u = torch.rand(2, generator=torch.Generator().manual_seed(0))  # the first draw of the step's generator (seed 0)
    assert u[0] < 0.5 <= u[1]
    seen = _spy_parts(monkeypatch)
    args = TINY + ["--data", str(manifest), "--num-workers", "0", "--no-augment", "--max-steps", "1",
                   "--batch-size", "2", "--text-dropout", "0.5", "--image-dropout", "0", "--joint-dropout", "0",
                   "--report-to", "none"]
    assert train_main(args + ["--output-dir", str(tmp_path / "fly")]) == 0
    assert train_main(args + ["--output-dir", str(tmp_path / "cached"), "--latent-cache", str(cache)]) == 0
    assert seen == [("unet", "vae", "text_encoder", "tokenizer"), ("unet",)]
    fly = next(read_jsonl(tmp_path / "fly" / "losses.jsonl"))
    cached = next(read_jsonl(tmp_path / "cached" / "losses.jsonl"))
    for key in ("loss", "loss_video", "loss_reg", "grad_norm"):
        assert cached[key] == pytest.approx(fly[key], rel=1e-5, abs=1e-7), key
    prov = json.loads((tmp_path / "cached" / "provenance.json").read_text())
    assert prov["latent_cache"]["loaded"] == [] and prov["latent_cache"]["settings_digest"]


def test_augmentation_with_the_cache_loads_only_the_vae(tmp_path, manifest, cache, monkeypatch):
    seen = _spy_parts(monkeypatch)
    assert train_main(TINY + ["--data", str(manifest), "--num-workers", "0", "--max-steps", "1", "--report-to",
                              "none", "--output-dir", str(tmp_path / "run"), "--latent-cache", str(cache)]) == 0
    assert seen == [("unet", "vae")]
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["latent_cache"]["loaded"] == ["vae"]


@pytest.mark.parametrize("flags, named", [
    (["--resolution", "32"], "resolution: cache 64, this run 32"),
    (["--frame-stride", "1"], "frame stride: cache 2, this run 1"),
    (["--num-frames", "3"], "frames per clip: cache 4, this run 3"),
])
def test_a_cache_made_with_other_settings_is_refused(tmp_path, manifest, cache, caplog, flags, named):
    out = tmp_path / "run"
    assert train_main(TINY + ["--data", str(manifest), "--max-steps", "1", "--report-to", "none", "--output-dir",
                              str(out), "--latent-cache", str(cache)] + flags) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and named in errors[0]
    assert not out.exists() or not any(p.name != ".vm-lock" for p in out.iterdir())  # nothing written


def test_other_dtype_vae_and_stale_clips_are_refused(tmp_path, manifest, cache, caplog):
    from vm_model.latent_cache.settings import LatentCacheMismatch, cache_settings
    from vm_model.sources import ModelSources

    # the dtype `vm train --mixed-precision bf16` encodes in (one process cannot build a second Accelerator with
    # another mixed precision, so the check is called as train calls it)
    wanted = cache_settings(ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny"), resolution=64,
                            num_frames=4, frame_stride=2, dtype="bf16")
    with pytest.raises(LatentCacheMismatch, match="dtype: cache fp32, this run bf16.*--mixed-precision"):
        store.open_for_training(cache, wanted)
    index = json.loads((cache / store.INDEX).read_text())
    other = json.loads(json.dumps(index["settings"]))
    other["vae"].update(source="/models/other-vae", subfolder=None)
    assert mismatches(index["settings"], other) == ["VAE: cache builtin:tiny, this run /models/other-vae",
                                                    "VAE folder: cache vae, this run None"]
    # a manifest whose caption changed since the cache was made
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["caption"] = "another caption"
    edited = manifest.with_name("edited.jsonl")
    edited.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert train_main(TINY + ["--data", str(edited), "--max-steps", "1", "--report-to", "none", "--output-dir",
                              str(tmp_path / "run"), "--latent-cache", str(cache)]) == 2
    assert "1 of the 3 clip(s)" in caplog.text and rows[1]["clip_id"] in caplog.text
    assert train_main(TINY + ["--max-steps", "1", "--output-dir", str(tmp_path / "syn"), "--latent-cache",
                              str(cache)]) == 2  # --data synthetic cannot have a cache


class Killed(BaseException):
    """Stands for a kill: not an Exception, so nothing records it."""


def test_cache_resume_encodes_each_clip_exactly_once(tmp_path, manifest, monkeypatch, caplog):
    out = tmp_path / "cache"
    args = TINY + ["--data", str(manifest), "--output", str(out)]
    encoded: list[str] = []
    real = cache_latents.encode_clip
    kill_at = {"n": 2}

    def counting(clips, i, encoder):
        if len(encoded) + 1 == kill_at["n"]:
            raise Killed()
        encoded.append(clips.rows[i].clip_id)
        return real(clips, i, encoder)

    monkeypatch.setattr(cache_latents, "encode_clip", counting)
    with pytest.raises(Killed):
        cache_main(args)
    assert len(encoded) == 1 and not json.loads((out / store.INDEX).read_text())["complete"]
    first = store.clip_path(out, encoded[0])
    stamp = first.stat().st_mtime_ns
    assert train_main(TINY + ["--data", str(manifest), "--output-dir", str(tmp_path / "run"), "--latent-cache",
                              str(out)]) == 2 and "incomplete" in caplog.text  # training refuses half a cache

    assert cache_main(args) == 2 and "--resume" in caplog.text  # neither --resume nor --overwrite
    kill_at["n"] = 0
    assert cache_main(args + ["--resume"]) == 0
    assert sorted(encoded) == sorted(json.loads(line)["clip_id"] for line in manifest.read_text().splitlines())
    assert first.stat().st_mtime_ns == stamp  # not written again
    index = json.loads((out / store.INDEX).read_text())
    assert index["complete"] and len(index["clips"]) == 3

    encoded.clear()
    assert cache_main(args + ["--resume"]) == 0 and encoded == []  # nothing left to do
    caplog.clear()
    assert cache_main(args + ["--resume", "--resolution", "32"]) == 2
    assert "resolution: cache 64, this run 32" in caplog.text

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[2]["caption"] = "a changed caption"
    edited = manifest.with_name("edited-resume.jsonl")
    edited.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cache_main(TINY + ["--data", str(edited), "--output", str(out), "--resume"]) == 0
    assert encoded == [rows[2]["clip_id"]]  # only the clip whose row changed



def test_an_undecodable_clip_is_listed_as_failed(tmp_path, manifest, caplog):
    rows = [json.loads(line) for line in manifest.read_text().splitlines()][:1]
    broken = dict(rows[0], clip_id="broken", video="videos/broken.mp4")
    (manifest.parent / "videos" / "broken.mp4").write_bytes(b"not a video")
    edited = manifest.with_name("with-broken.jsonl")
    edited.write_text("".join(json.dumps(r) + "\n" for r in rows + [broken]))
    out = tmp_path / "cache"
    assert cache_main(TINY + ["--data", str(edited), "--output", str(out)]) == 1
    index = json.loads((out / store.INDEX).read_text())
    assert not index["complete"] and list(index["failed"]) == ["broken"]
    assert list(index["clips"]) == [rows[0]["clip_id"]]
    assert "1 clip(s) could not be cached (first: broken" in caplog.text

@pytest.mark.slow
def test_two_process_cache_with_accelerate_launch(tmp_path, manifest, cache):
    """2 processes (gloo, CPU): clips split round robin, one index, the same latents as one process."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "cache"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vm_model.cache_latents"] + TINY + [
           "--data", str(manifest), "--output", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    index = json.loads((out / store.INDEX).read_text())
    assert index["complete"] and index["num_processes"] == 2 and len(index["clips"]) == 3
    shards = {p.name: [r["clip_id"] for r in read_jsonl(p)] for p in (out / "shards").glob("latents-*.jsonl")}
    assert sorted(shards) == ["latents-00000.jsonl", "latents-00001.jsonl"]
    assert sorted(sum(shards.values(), [])) == sorted(index["clips"])  # each clip encoded once, by one process
    for clip_id, entry in index["clips"].items():
        with safe_open(str(out / entry["file"]), framework="pt") as a, \
                safe_open(str(cache / entry["file"]), framework="pt") as b:
            for name in ("frame_mean", "frame_std", "reference_mean", "text"):
                torch.testing.assert_close(a.get_tensor(name), b.get_tensor(name), msg=f"{clip_id} {name}")
