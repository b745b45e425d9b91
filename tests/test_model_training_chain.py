"""Issue 12, done-when: one tiny-preset run goes the whole way a lab's would - `vm cache-latents` -> `vm train` from
the cache with gradient accumulation, a tracker, validation videos, EMA and LoRA -> `vm generate --weights RUN`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vm_common.cli import main as vm_main
from vm_common.io_utils import read_jsonl
from vm_model.checkpoint import latest_checkpoint


@pytest.mark.slow
def test_cache_train_with_everything_then_generate_from_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    from vm_data.synthetic import make_synthetic_dataset

    manifest = make_synthetic_dataset(tmp_path / "data", num_clips=3, num_frames=24, size=64)
    cache, run = tmp_path / "cache", tmp_path / "run"
    assert vm_main(["cache-latents", "--preset", "tiny", "--data", str(manifest), "--output", str(cache)]) == 0

    folder = tmp_path / "validation"
    folder.mkdir()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(folder / "s.png")
    (folder / "validation.jsonl").write_text(json.dumps(
        {"name": "s", "reference": "s.png", "prompts": ["A red ball rolling."], "kind": "object"}) + "\n")

    assert vm_main(["train", "--preset", "tiny", "--data", str(manifest), "--num-workers", "0",
                    "--latent-cache", str(cache), "--gradient-accumulation-steps", "2", "--report-to", "tensorboard",
                    "--validation-every", "2", "--validation-manifest", str(folder / "validation.jsonl"),
                    "--ema-decay", "0.9", "--lora-rank", "4", "--max-steps", "2", "--output-dir", str(run)]) == 0

    prov = json.loads((run / "provenance.json").read_text())
    assert prov["effective_batch_size"] == 2 and prov["latent_cache"]["settings_digest"]
    assert [r["step"] for r in read_jsonl(run / "losses.jsonl")] == [1, 2]
    checkpoint = latest_checkpoint(run)
    assert (checkpoint / "trainable.safetensors").is_file() and (checkpoint / "ema.safetensors").is_file()
    assert any((run / "logs").rglob("events.out.tfevents.*"))
    assert json.loads((run / "validation" / "step-00000002" / "scores.json").read_text())["step"] == 2

    image = tmp_path / "ref.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
    assert vm_main(["generate", "--preset", "tiny", "--weights", str(run), "--image", str(image), "--prompt",
                    "A ball.", "--num-frames", "3", "--steps", "2", "--height", "64", "--width", "64",
                    "--out", str(tmp_path / "videos")]) == 0
    assert len(list((tmp_path / "videos").glob("*.gif"))) == 1
