"""The two-subject toy (vm_model.toy.multi) and its experiment (benchmarks/toy_multi_subject.py, docs/multi_subject.md):
the pair metric is calibrated on rendered clips (no training), and a smoke-sized run writes everything through the
real `vm train` / VideoMakerPipeline paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vm_model.toy.multi import heldout_pairs, pair_references, render_pair, score_pair


def test_pair_metric_calibrated_on_rendered_clips_and_detects_a_blend():
    pairs = heldout_pairs(8, 32, 4, seed=0)
    swaps, own, other, blended_swaps = [], [], [], []
    for i, pair in enumerate(pairs):
        frames, masks = render_pair(pair, 4, 32)
        assert masks.shape == (2, 4, 32, 32) and not (masks[0] & masks[1]).any()
        refs = pair_references(pair, 4, 32)
        rows = score_pair(frames.astype(np.float32) / 255.0, pair, refs, seed=i)
        swaps += [r["swap"] for r in rows]
        own += [r["own_error"] for r in rows]
        other += [r["other_error"] for r in rows]
        # both subjects painted in the first subject's colours: one of them must be a swap
        clone = frames.copy()
        mean0 = frames[masks[0]].reshape(-1, 3)
        clone[masks[1]] = mean0[np.random.default_rng(i).integers(0, len(mean0), masks[1].sum())]
        blended_swaps.append(any(r["swap"] for r in score_pair(clone.astype(np.float32) / 255.0, pair, refs, i)))
    assert not any(swaps)
    assert np.mean(own) < 0.4 * np.mean(other)
    assert np.mean(blended_swaps) >= 0.75


@pytest.mark.slow
def test_quick_run_writes_results_and_gifs(tmp_path):
    from benchmarks.toy_multi_subject import main

    assert main(["--out", str(tmp_path), "--quick"]) == 0
    result = json.loads((tmp_path / "toy_multi_subject.json").read_text())
    assert set(result["metrics"]) == {"unrouted", "routed", "routed_no_loss", "routed_hard", "routed_after"}
    for variant, m in result["metrics"].items():
        assert 0 <= m["swap_rate"] <= 0.5 and m["subjects"] == 8 and m["own_error"] <= m["other_error"]
        assert (tmp_path / f"toy_multi_subject_{variant}.gif").stat().st_size > 0
    assert "router_accuracy" in result["metrics"]["routed"] and "router_accuracy" not in result["metrics"]["unrouted"]
    assert result["losses"]["routed"]["steps"] == 2
    assert (tmp_path / "toy_multi_subject.md").read_text().startswith("# Toy multi-subject")
