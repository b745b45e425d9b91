"""benchmarks.model_train_step's bookkeeping (the measurement itself needs the full-size models: run the benchmark),
and the toy experiment's cached stage 2 (benchmarks.toy_customization --stage2-latent-cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import model_train_step as bench


def _row(variant: str, step_s: float, warmup: bool = False, encoders: tuple[float, float, float] = (0, 0, 0)):
    return dict(variant=variant, warmup=warmup, step_s=step_s, loss=1.0, forward_backward_s=step_s, update_s=0.0,
                frames=2 if warmup else 16, resolution=64 if warmup else 256, loadavg_1min_start=1.0,
                loadavg_1min_end=2.0, text_encoder_s=encoders[0], vae_video_s=encoders[1], vae_reference_s=encoders[2])


ROWS = [_row("on_the_fly", 50, True, (1, 1, 1)), _row("cached", 40, True),
        _row("on_the_fly", 100, encoders=(2, 15, 3)), _row("cached", 90),
        _row("cached", 70), _row("on_the_fly", 120, encoders=(2, 15, 3))]


def test_summary_excludes_warmup_and_adds_the_update_when_it_was_left_out():
    summary = bench.summarize_steps({"rows": ROWS, "optimizer_update": False},
                                    {"trainable": {"update_s": 10.0}})
    assert summary["median_step_s"] == {"on_the_fly": 110, "cached": 80}
    assert summary["speedup_cached"] == pytest.approx(110 / 80)
    assert summary["encoders_share"] == pytest.approx((20 / 100 + 20 / 120) / 2)
    assert summary["encoder_share_of_on_the_fly_step"]["vae_video_s"] == pytest.approx((15 / 100 + 15 / 120) / 2)
    assert summary["with_update"]["speedup_cached"] == pytest.approx(120 / 90)
    assert "with_update" not in bench.summarize_steps({"rows": ROWS, "optimizer_update": True},
                                                      {"trainable": {"update_s": 10.0}})


def test_assemble_writes_a_result_from_a_progress_file_and_refuses_an_incomplete_one(tmp_path):
    progress = tmp_path / "p.progress.jsonl"
    progress.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:3]))  # no timed cached step yet
    with pytest.raises(SystemExit, match="no timed step of each variant"):
        bench.main(["--assemble", str(progress), "--out", str(tmp_path), "--device", "cpu", "--threads", "1"])
    progress.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert bench.main(["--assemble", str(progress), "--out", str(tmp_path), "--device", "cpu", "--threads", "1"]) == 0
    (result,) = tmp_path.glob("model_train_step_cpu-*-1t-f16-r256.json")
    data = json.loads(result.read_text())
    assert data["assembled_from"] == progress.name and data["step_time"]["summary"]["median_step_s"]["cached"] == 80
    md = result.with_suffix(".md").read_text()
    assert "1.375x as fast" in md and "(warm-up)" in md


def test_toy_stage2_through_the_cache_caches_the_stage2_manifest_with_the_run_shapes(tmp_path):
    from benchmarks.toy_customization import ToyConfig, latent_cache_args, stage2_args

    cfg = ToyConfig(stage2_latent_cache=True)
    manifest = tmp_path / "manifest.jsonl"
    cache = latent_cache_args(cfg, tmp_path, manifest)
    train = stage2_args(cfg, tmp_path, manifest, "full")
    value = {flag: args[args.index(flag) + 1] for args in (cache,) for flag in
             ("--num-frames", "--frame-stride", "--resolution", "--base-model", "--data")}
    for flag, v in value.items():
        assert train[train.index(flag) + 1] == v, flag  # the cache is made with the training run's settings
    assert train[train.index("--latent-cache") + 1] == cache[cache.index("--output") + 1]
    assert "--latent-cache" not in stage2_args(ToyConfig(), tmp_path, manifest, "full")
    assert Path(cache[cache.index("--output") + 1]).parent == tmp_path
