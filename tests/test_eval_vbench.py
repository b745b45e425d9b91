"""VBench's dimensions (vm_eval.vbench): known answers on synthetic features and frames, suites, tables, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vm_common.io_utils import read_jsonl
from vm_common.media import write_gif
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.metrics import DEFAULT_SUITES, VBENCH_COLUMNS, metrics_for, parse_suites
from vm_eval.testing import shifting_video, smooth_texture
from vm_eval.vbench import (AESTHETIC, BACKGROUND, SUBJECT, aesthetic_score, clip_input, consistency_score,
                            dino_input, dino_position_embedding, frames_to_tensor)


@pytest.fixture(scope="module")
def encoders():
    return Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu", suites=("paper", "vbench")))


def test_consistency_matches_a_hand_computation():
    s = 1 / math.sqrt(2)
    feats = np.array([[1, 0], [0, 1], [s, s], [-1, 0]], dtype=np.float32)
    # i=1: prev 0, first 0 -> 0; i=2: prev cos(f1,f2)=s, first cos(f0,f2)=s -> s;
    # i=3: prev cos(f2,f3)=-s -> 0, first cos(f0,f3)=-1 -> 0; mean over 3 frames = s/3
    r = consistency_score(feats)
    assert r.value == pytest.approx(s / 3, abs=1e-9)
    assert r.detail == {"pair_sum": pytest.approx(s), "n_pairs": 3}


def test_consistency_of_identical_features_is_one_and_needs_two_frames():
    assert consistency_score(np.ones((5, 8))).value == pytest.approx(1.0)
    assert consistency_score(np.ones((1, 8))).status == "error"


def test_consistency_takes_unnormalised_features_and_weighs_first_and_previous_equally():
    feats = np.array([[2, 0], [0, 3], [0, 5]], dtype=np.float64)
    # i=1: (0 + 0)/2; i=2: prev cos=1, first cos=0 -> 0.5; mean over 2 frames = 0.25
    assert consistency_score(feats).value == pytest.approx(0.25)


def test_aesthetic_is_the_frame_mean_over_ten():
    r = aesthetic_score(torch.tensor([5.0, 7.0, 6.0]))
    assert r.value == pytest.approx(0.6) and r.detail == {"n_frames": 3}


def test_preprocessing_sizes_follow_vbench():
    t = frames_to_tensor(np.zeros((3, 96, 128, 3), dtype=np.uint8))
    assert t.dtype == torch.float32 and t.shape == (3, 3, 96, 128)
    assert dino_input(t).shape == (3, 3, 224, 298)  # shorter side to 224, aspect kept, no crop
    assert clip_input(t).shape == (3, 3, 224, 224)  # shorter side to 224, centre crop


def test_dino_position_embedding_follows_dinos_rule():
    pe = torch.randn(1, 1 + 14 * 14, 8)
    assert dino_position_embedding(pe, 224, 224, 16) is pe  # square, same grid: the stored table
    wide = dino_position_embedding(pe, 224, 298, 16)
    assert wide.shape == (1, 1 + 14 * 18, 8) and torch.equal(wide[:, 0], pe[:, 0])
    # same 14x14 grid but not square in pixels: DINO resamples anyway (scale factor 14.1/14), so not the table
    almost = dino_position_embedding(pe, 224, 230, 16)
    assert almost.shape == pe.shape and not torch.equal(almost, pe)


def test_identical_frames_score_one_on_the_tiny_models(encoders):
    frames = np.repeat(smooth_texture(96)[None], 4, axis=0)
    res = encoders.vbench.score(frames, VBENCH_COLUMNS)
    assert res[SUBJECT].value == pytest.approx(1.0, abs=1e-5)
    assert res[BACKGROUND].value == pytest.approx(1.0, abs=1e-5)
    assert res[AESTHETIC].status == "ok"


def test_scorer_uses_the_frame_features_and_the_hand_aggregation(encoders):
    frames = shifting_video(smooth_texture(80, seed=3)[:64], 9, 5)  # 64x80: non-square, DINO interpolates
    sc = encoders.vbench
    res = sc.score(frames, (SUBJECT, BACKGROUND))
    for name, feats in ((SUBJECT, sc.subject_features(frames_to_tensor(frames))),
                        (BACKGROUND, sc.clip_features(encoders.clip, frames_to_tensor(frames), 16))):
        f = feats.double().numpy()
        by_hand = np.mean([(max(0.0, f[i - 1] @ f[i]) + max(0.0, f[0] @ f[i])) / 2 for i in range(1, len(f))])
        assert res[name].value == pytest.approx(by_hand, abs=1e-6)
        assert res[name].detail["n_pairs"] == 4


def test_suites_select_metrics_and_keep_the_default():
    assert parse_suites("") == DEFAULT_SUITES == ("paper",)
    assert parse_suites("vbench, paper") == ("paper", "vbench")
    with pytest.raises(ValueError, match="unknown metric suite"):
        parse_suites("paper,nosuchsuite")
    assert metrics_for("human", "raft") == ("clip_t", "face_sim", "clip_i", "dino_i", "t_cons", "dd")
    assert metrics_for("object", "dis", ("vbench",)) == VBENCH_COLUMNS
    assert metrics_for("toy", "raft", ("vbench",)) == ("toy_fidelity", "toy_motion")


def test_tables_group_vbench_columns_in_their_own_labelled_block():
    from vm_eval.tables import table_blocks, to_markdown

    def m(v):
        return {"value": v, "n_valid": 1, "n_total": 1, "n_subjects": 1}
    group = {"kind": "object", "method": "A", "n_videos": 1, "n_subjects": 1, "categories": {},
             "metrics": {"clip_t": m(0.3), SUBJECT: m(0.9), AESTHETIC: m(0.5)}}
    summary = {"groups": [group], "random_weights": True}
    blocks = table_blocks(summary)
    assert [(b["suite"], b["columns"]) for b in blocks] == [("paper", ["clip_t"]), ("vbench", [SUBJECT, AESTHETIC])]
    assert "VBench" in blocks[1]["title"]
    md = to_markdown(summary)
    assert "VBench Subject Cons." in md and "VBench Aesthetic" in md


def test_score_command_with_the_vbench_suite(tmp_path):
    from PIL import Image
    from skimage import data

    from vm_eval.bench import main as bench_main

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    write_gif(tmp_path / "still.gif", np.repeat(smooth_texture(96)[None], 6, axis=0))
    write_gif(tmp_path / "moving.gif", shifting_video(smooth_texture(96, 1), 20, 6))
    rows = [{"video": f"{n}.gif", "prompt": "A cat.", "reference": "cat.png", "subject": "cat1", "method": "M",
             "category": "cat", "kind": "object"} for n in ("still", "moving")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert bench_main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                       "--suites", "vbench", "--no-progress"]) == 0
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert {r["metric"] for r in samples} == set(VBENCH_COLUMNS)
    by = {(r["video"].rsplit("/", 1)[-1], r["metric"]): r for r in samples}
    # the GIF writer stores identical frames as one: no pair to compare, an error with a reason (never a number)
    assert by[("still.gif", SUBJECT)]["status"] == "error" and "2 frames" in by[("still.gif", SUBJECT)]["reason"]
    assert by[("still.gif", AESTHETIC)]["status"] == "ok"
    assert all(by[("moving.gif", m)]["status"] == "ok" for m in VBENCH_COLUMNS)
    assert 0.0 < by[("moving.gif", SUBJECT)]["value"] <= 1.0 and by[("moving.gif", SUBJECT)]["detail"]["n_pairs"] == 5
    run = json.loads((out / "run.json").read_text())
    assert "vbench" in run["scoring_models"]
    table = (out / "table.md").read_text()
    assert "VBench" in table and "CLIP-T" not in table
    assert bench_main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o2"), "--preset",
                       "tiny", "--suites", "paper,nosuchsuite", "--no-progress"]) == 2  # a user error, before any work


# ------------------------------------------------------------------------------------------ copy-paste (issue 16 §3)
def _copy_paste_cases():
    import cv2
    from skimage import data

    ref = data.astronaut()[30:330, 100:350]
    bg = cv2.resize(data.coffee(), (256, 256))

    def paste(img, i):
        f = bg.copy()
        size = 150 + 3 * i
        t = cv2.resize(img, (size, int(size * img.shape[0] / img.shape[1])))
        f[10 + 2 * i:10 + 2 * i + t.shape[0], 20 + 4 * i:20 + 4 * i + t.shape[1]] = t
        return f

    def affine(img, angle, sx, shear):
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[0, 0] *= sx
        m[0, 1] += shear
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    rng = np.random.default_rng(0)
    params = zip(rng.uniform(-25, 25, 8), rng.uniform(0.8, 1.2, 8), rng.uniform(-0.2, 0.2, 8))
    pasted = np.stack([paste(ref, i) for i in range(8)])  # moved and rescaled, pose unchanged
    varied = np.stack([paste(affine(ref, *p), i) for i, p in enumerate(params)])  # same image, re-posed
    other = np.stack([paste(data.chelsea()[50:300, 100:350], i) for i in range(8)])  # another subject
    return ref, pasted, varied, other


def test_copy_paste_separates_a_pasted_reference_from_a_re_posed_one():
    from PIL import Image

    from vm_eval.copy_paste import copy_paste_score

    ref, pasted, varied, other = _copy_paste_cases()
    r = Image.fromarray(ref)
    p, v, o = (copy_paste_score(x, r) for x in (pasted, varied, other))
    assert p.value > 0.9 and p.detail["pasted_frames"] == 1.0
    assert v.value < p.value - 0.2 and v.detail["pasted_frames"] == 0.0
    assert o.value < p.value - 0.2
    assert copy_paste_score(np.repeat(ref[None], 2, axis=0), r).value > 0.98  # the reference itself as the video


def test_copy_paste_through_the_scorer_and_suites(encoders):
    from PIL import Image

    from vm_eval.scorer import Reference, VideoScorer

    ref, pasted, _, _ = _copy_paste_cases()
    scorer = VideoScorer(Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu", suites=("copy",))))
    assert scorer.metrics_for("human") == ("copy_paste",)
    res = scorer.score(pasted, prompt="a person", reference=Reference("astronaut", Image.fromarray(ref)))
    assert res["copy_paste"].status == "ok" and res["copy_paste"].value > 0.9
