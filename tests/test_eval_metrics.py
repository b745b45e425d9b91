"""Known-answer tests of the metric families on tiny encoders (offline, random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.face import ArcFaceEmbedder, FaceBox, FaceEncoder, GivenFaceDetector, face_metric
from vm_eval.flow import DisFlow, DynamicRule, RaftFlow, dynamic_degree, top_fraction_mean
from vm_eval.results import MetricResult
from vm_eval.scorer import Reference, VideoScorer
from vm_eval.testing import image_video, shifting_video, smooth_texture
from vm_eval.tiny import export_arcface_onnx, tiny_raft


@pytest.fixture(scope="module")
def encoders():
    return Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu"))


@pytest.fixture(scope="module")
def astronaut():
    return Image.fromarray(data.astronaut())


def test_metric_result_never_turns_failure_into_number():
    with pytest.raises(ValueError):
        MetricResult(0.0, "skipped", "no face")
    with pytest.raises(ValueError):
        MetricResult(None, "ok")
    with pytest.raises(ValueError):
        MetricResult(None, "error", "")


def test_identical_frames_give_tcons_one(encoders, astronaut):
    scorer = VideoScorer(encoders)
    frames = image_video(astronaut, 96, 5)
    res = scorer.score(frames, prompt="a person", reference=Reference("a", astronaut), metrics=["t_cons"])
    assert res["t_cons"].status == "ok"
    assert res["t_cons"].value == pytest.approx(1.0, abs=1e-5)
    moving = shifting_video(np.asarray(astronaut.resize((96, 96))), 20, 5)
    res2 = scorer.score(moving, prompt="a person", reference=Reference("a", astronaut), metrics=["t_cons"])
    assert res2["t_cons"].value < 0.9999  # the test can fail: different frames are not perfectly consistent


def test_video_of_the_reference_gives_clip_i_and_dino_i_one(encoders, astronaut):
    scorer = VideoScorer(encoders)
    frames = np.stack([np.asarray(astronaut)] * 3)  # the reference itself, at its size
    res = scorer.score(frames, prompt="a person", reference=Reference("a", astronaut), kind="object",
                       metrics=["clip_i", "dino_i", "clip_t"])
    assert res["clip_i"].value == pytest.approx(1.0, abs=1e-4)
    assert res["dino_i"].value == pytest.approx(1.0, abs=1e-4)
    cat = Image.fromarray(data.chelsea())
    other = scorer.score(np.stack([np.asarray(cat)] * 3), prompt="a person", reference=Reference("a", astronaut),
                         kind="object", metrics=["clip_i", "dino_i"])
    assert other["clip_i"].value < 0.999 and other["dino_i"].value < 0.999
    assert -1.0 <= res["clip_t"].value <= 1.0


def test_one_clip_forward_per_frame_and_cached_reference(encoders, astronaut, monkeypatch):
    scorer = VideoScorer(encoders)
    calls = []
    orig = encoders.clip.encode_images
    monkeypatch.setattr(encoders.clip, "encode_images", lambda ims: calls.append(len(ims)) or orig(ims))
    frames = image_video(astronaut, 64, 4)
    for _ in range(2):
        scorer.score(frames, prompt="p", reference=Reference("a", astronaut), metrics=["clip_t", "clip_i", "t_cons"])
    assert calls == [4, 1, 4]  # frames once per video, the reference once per subject


def test_static_video_is_not_dynamic():
    frames = np.stack([smooth_texture(256)] * 16)
    scores = DisFlow().pair_scores(frames)
    res = dynamic_degree(scores, 256, 256, 16, "dis")
    assert res.status == "ok" and res.value == 0.0
    assert max(scores) < 0.5


@pytest.mark.parametrize("size, slow, fast", [(256, 4, 8), (512, 8, 16)])
def test_known_motion_is_dynamic_exactly_above_threshold(size, slow, fast):
    rule = DynamicRule()
    thr = rule.threshold(size, size)
    assert thr == pytest.approx(6.0 * size / 256)
    assert slow < thr < fast
    tex = smooth_texture(size)
    flow = DisFlow()
    for shift, expected in ((slow, 0.0), (fast, 1.0)):
        frames = shifting_video(tex, shift, 16)
        scores = flow.pair_scores(frames)
        assert np.median(scores) == pytest.approx(shift, rel=0.15)
        assert dynamic_degree(scores, size, size, 16, "dis").value == expected


def test_dynamic_rule_pair_count_scales_with_frames():
    rule = DynamicRule()
    assert rule.min_pairs(16) == 4 and rule.min_pairs(8) == 2 and rule.min_pairs(24) == 6
    thr = rule.threshold(512, 512)
    assert thr == 12.0
    three = [thr + 1] * 3 + [0.0] * 12
    four = [thr + 1] * 4 + [0.0] * 11
    assert dynamic_degree(three, 512, 512, 16, "x").value == 0.0
    assert dynamic_degree(four, 512, 512, 16, "x").value == 1.0
    assert dynamic_degree([thr] * 15, 512, 512, 16, "x").value == 0.0  # strictly above the threshold
    assert dynamic_degree([], 512, 512, 1, "x").status == "error"


def test_top_fraction_mean():
    flow = np.zeros((20, 10, 2), np.float32)
    flow[0, :, 0] = 3.0  # 10 of 200 pixels = the top 5%
    assert top_fraction_mean(flow) == pytest.approx(3.0)


def test_raft_shared_feature_forward_equals_torchvision():
    raft = RaftFlow.load(tiny_raft(), arch="raft_small", iters=3, pair_batch=2)
    frames = shifting_video(smooth_texture(128), 3, 4)
    ours = raft.flows(frames)
    x = raft._prepare(frames)
    with torch.inference_mode():
        for i in range(3):
            ref = raft.model(x[i:i + 1], x[i + 1:i + 2], num_flow_updates=3)[-1][0].permute(1, 2, 0).numpy()
            np.testing.assert_allclose(ours[i], ref, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="at least 128"):
        raft.flows(np.zeros((2, 64, 64, 3), np.uint8))


# --------------------------------------------------------------------------------------------------------- face
def _face_box() -> FaceBox:
    kps = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], np.float32) + 200
    return FaceBox(np.array([220, 230, 290, 310], np.float32), kps, 0.9)


@pytest.fixture(scope="module")
def arcface(tmp_path_factory):
    path = export_arcface_onnx(tmp_path_factory.mktemp("face") / "arcface.onnx")
    return ArcFaceEmbedder(path)


def test_frame_without_face_is_skipped_not_zero(arcface, astronaut):
    # faces only in bright frames; the dark frames have none
    detector = GivenFaceDetector(lambda img: [_face_box()] if img.mean() > 50 else [])
    enc = FaceEncoder(detector, arcface)
    ref_emb, reason = enc.reference_embedding(astronaut)
    assert reason == ""
    bright = np.asarray(astronaut.resize((512, 512)))
    frames = np.stack([bright, np.zeros_like(bright), bright, np.zeros_like(bright)])
    res = face_metric(ref_emb, reason, enc.frame_embeddings(frames))
    assert res.status == "ok" and res.detail["frames_with_face"] == 2
    assert res.value == pytest.approx(1.0, abs=1e-5)  # the same face crop as the reference
    none = face_metric(ref_emb, reason, enc.frame_embeddings(np.zeros((3, 512, 512, 3), np.uint8)))
    assert none.status == "skipped" and none.value is None and "no face" in none.reason


def test_largest_face_is_used(arcface, astronaut):
    small = FaceBox(np.array([0, 0, 10, 10], np.float32), _face_box().kps - 150, 0.99)
    big = _face_box()
    enc = FaceEncoder(GivenFaceDetector(lambda img: [small, big]), arcface)
    img = np.asarray(astronaut.resize((512, 512)))
    ref = enc.embedder.embed([img], [big])[0]
    emb = enc.frame_embeddings(img[None])[0]
    assert float(emb @ ref) == pytest.approx(1.0, abs=1e-5)


def test_protocol_controls_channel_order(arcface):
    seen = []
    det = GivenFaceDetector(lambda img: seen.append(img[0, 0].copy()) or [])
    img = np.zeros((1, 512, 512, 3), np.uint8)
    img[..., 0] = 200  # red
    FaceEncoder(det, arcface, protocol="videomaker").frame_embeddings(img)
    FaceEncoder(det, arcface, protocol="corrected").frame_embeddings(img)
    assert list(seen[0]) == [200, 0, 0]  # the authors' quirk: RGB fed as is
    assert list(seen[1]) == [0, 0, 200]  # corrected: BGR
    with pytest.raises(ValueError):
        FaceEncoder(det, arcface, protocol="bgr?")


def test_tiny_face_pack_runs_through_insightface(astronaut):
    enc = Encoders(EncoderConfig(preset="tiny", device="cpu")).face
    emb = enc.frame_embeddings(np.stack([np.asarray(astronaut.resize((256, 256)))] * 2))
    assert len(emb) == 2
