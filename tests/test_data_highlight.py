"""Subject highlight: reference composition, filters, the single-image API, tiny real models, weights errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vm_common.weights import MissingWeightsError
from vm_data import filters
from vm_data.detect import Detections, normalize_prompt
from vm_data.highlight import HighlightConfig, SubjectHighlighter, load_highlighter
from vm_data.reference import make_reference, mask_box, pad_to_square
from vm_data.segment import SAM_ARCHS, build_sam, load_sam, sam_arch_of
from vm_data.synthetic import PALETTE, SyntheticSubject, render_frames
from vm_data.testing import SyntheticColorDetector, SyntheticColorSegmenter


def _frame(subjects, size=96, seed=0):
    frames, masks = render_frames(1, size, subjects, seed=seed)
    return frames[0], masks[0]


@pytest.fixture
def synthetic_highlighter():
    cfg = HighlightConfig(output_size=48)
    return SubjectHighlighter(SyntheticColorDetector(), SyntheticColorSegmenter(), cfg)


# ------------------------------------------------------------------------------------------------ reference
def test_make_reference_whites_out_crops_and_pads():
    image = np.zeros((40, 60, 3), np.uint8)
    image[:] = (10, 20, 30)
    mask = np.zeros((40, 60), bool)
    mask[10:20, 5:45] = True  # 40 wide, 10 high
    ref = np.asarray(make_reference(image, mask, margin=0.0, square=True, size=None))
    assert ref.shape == (40, 40, 3)  # cropped to 40x10, padded to a square
    assert (ref[15:25] == (10, 20, 30)).all()  # the subject, centred vertically
    assert (ref[:15] == 255).all() and (ref[25:] == 255).all()  # white padding
    ref2 = make_reference(image, mask, margin=0.1, square=False, size=None)
    assert ref2.size == (48, 18)  # 4 px (0.1 x 40) margin on each side, clipped to the frame
    assert make_reference(image, mask, size=64).size == (64, 64)
    with pytest.raises(ValueError, match="empty"):
        make_reference(image, np.zeros((40, 60), bool))
    assert mask_box(mask) == (5, 10, 45, 20) and mask_box(np.zeros((3, 3), bool)) is None
    assert pad_to_square(np.zeros((2, 5, 3), np.uint8)).shape == (5, 5, 3)


# -------------------------------------------------------------------------------------------------- filters
def test_check_video_reasons_and_scores():
    kw = dict(min_frames=16, min_duration=1.0, min_short_side=64, max_long_side=1024)
    assert filters.check_video(32, 8, 128, 128, **kw).keep
    r = filters.check_video(1, 8, 128, 128, **kw)
    assert (r.keep, r.reason, r.score) == (False, filters.TOO_FEW_FRAMES, 1.0)
    r = filters.check_video(16, 24, 128, 128, **kw)
    assert r.reason == filters.TOO_SHORT and r.score == pytest.approx(16 / 24)
    r = filters.check_video(32, 8, 48, 128, **kw)
    assert r.reason == filters.RESOLUTION_TOO_LOW and r.score == 48
    r = filters.check_video(32, 8, 2000, 128, **kw)
    assert r.reason == filters.RESOLUTION_TOO_HIGH and r.score == 2000


def test_check_detections_each_outcome():
    kw = dict(box_threshold=0.35, multi_subject_threshold=0.35, nms_iou=0.5, min_box_area=0.01)
    none = filters.check_detections(Detections(np.array([[0, 0, 50, 50]]), np.array([0.2])), 100, 100, **kw)
    assert none.reason == filters.NO_DETECTION and none.score == pytest.approx(0.2)
    assert filters.check_detections(Detections.empty(), 100, 100, **kw).reason == filters.NO_DETECTION
    # duplicates of one subject (high IoU, or a box inside a better one) are one subject
    dup = Detections(np.array([[10, 10, 60, 60], [12, 11, 61, 62], [20, 20, 40, 40]]), np.array([0.9, 0.8, 0.7]))
    ok = filters.check_detections(dup, 100, 100, **kw)
    assert ok.keep and ok.score == pytest.approx(0.9)
    two = Detections(np.array([[0, 0, 40, 40], [60, 60, 99, 99]]), np.array([0.9, 0.5]))
    multi = filters.check_detections(two, 100, 100, **kw)
    assert multi.reason == filters.MULTIPLE_SUBJECTS and multi.score == pytest.approx(0.5)
    # a second subject below the multi-subject threshold does not count
    assert filters.check_detections(two, 100, 100, **{**kw, "multi_subject_threshold": 0.6}).keep
    small = filters.check_detections(Detections(np.array([[0, 0, 5, 5]]), np.array([0.9])), 100, 100, **kw)
    assert small.reason == filters.SUBJECT_TOO_SMALL and small.score == pytest.approx(0.0025)
    assert filters.check_mask(np.zeros((4, 4), bool), 0.0).reason == filters.EMPTY_MASK


# ----------------------------------------------------------------------------------- single-image API
def test_highlight_ok_matches_the_known_subject(synthetic_highlighter):
    image, truth = _frame([SyntheticSubject(radius=0.2, start=(0.4, 0.5))])
    res = synthetic_highlighter.highlight(Image.fromarray(image), "Ball")
    assert res.status == "ok" and res.reason is None
    assert res.mask.dtype == np.bool_ and res.mask.shape == (96, 96)
    iou = (res.mask & truth).sum() / (res.mask | truth).sum()
    assert iou > 0.9
    assert res.image.mode == "RGB" and res.image.size == (48, 48)
    ref = np.asarray(res.image)
    assert (ref[0, 0] == 255).all() and (ref[-1, -1] == 255).all()  # white background
    x0, y0, x1, y1 = res.box
    ty, tx = np.nonzero(truth)
    assert abs(x0 - tx.min()) <= 2 and abs(x1 - tx.max() - 1) <= 2 and abs(y0 - ty.min()) <= 2
    assert 0 < res.score <= 1 and 0 < res.mask_area < 1


def test_highlight_statuses(synthetic_highlighter):
    bg, _ = _frame([])
    assert synthetic_highlighter.highlight(bg, "dog").status == "no_detection"
    two, _ = _frame([SyntheticSubject(radius=0.15, start=(0.25, 0.3)),
                     SyntheticSubject(color=PALETTE[1][1], color2=PALETTE[1][2], radius=0.15, start=(0.75, 0.7))])
    res = synthetic_highlighter.highlight(two, "dog")
    assert res.status == "multiple_subjects" and res.image is None and res.filter_score > 0.35
    small, _ = _frame([SyntheticSubject(radius=0.03, start=(0.5, 0.5))])
    res = synthetic_highlighter.highlight(small, "dog")
    assert res.status == "subject_too_small" and res.filter_score < 0.01


def test_bad_images_return_a_status_never_raise(synthetic_highlighter, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    gray = Image.fromarray(_frame([SyntheticSubject()])[0]).convert("L")
    rgba = Image.fromarray(_frame([SyntheticSubject()])[0]).convert("RGBA")
    inputs = [corrupt, tmp_path / "missing.jpg", np.zeros((4, 4, 3), np.uint8), gray, rgba, "not an image"]
    results = synthetic_highlighter.highlight_batch(inputs, ["dog"] * len(inputs))
    assert [r.status for r in results[:3]] == ["bad_image"] * 3
    assert "corrupt.png" in results[0].reason and "missing.jpg" in results[1].reason and "4x4" in results[2].reason
    assert results[3].status == "no_detection"  # grayscale: readable, but no saturated subject
    assert results[4].status == "ok"  # RGBA composited on white
    assert results[5].status == "bad_image"
    assert synthetic_highlighter.highlight(_frame([SyntheticSubject()])[0], "  ").status == "bad_image"


def test_a_failing_model_fails_only_its_image(synthetic_highlighter):
    class Flaky(SyntheticColorDetector):
        def detect(self, images, prompts):
            if any(im.shape[0] == 80 for im in images):
                raise RuntimeError("boom")
            return super().detect(images, prompts)

    hl = SubjectHighlighter(Flaky(), SyntheticColorSegmenter(), HighlightConfig(output_size=32))
    good, _ = _frame([SyntheticSubject()])
    bad, _ = _frame([SyntheticSubject()], size=80)
    results = hl.highlight_batch([good, bad, good], ["dog"] * 3)
    assert [r.status for r in results] == ["ok", "error", "ok"] and "boom" in results[1].reason


def test_normalize_prompt():
    assert normalize_prompt("  Dog ") == "dog." and normalize_prompt("head.") == "head."
    with pytest.raises(ValueError):
        normalize_prompt(" ")


# --------------------------------------------------------------------------------- tiny real models
def test_tiny_preset_runs_the_real_detector_and_segmenter():
    cfg = HighlightConfig(nms_iou=0.0, min_box_area=0.0, min_mask_area=0.0, output_size=32)
    hl = load_highlighter("tiny", device="cpu", config=cfg)
    from vm_data.detect import GroundingDinoDetector
    from vm_data.segment import SamSegmenter

    assert isinstance(hl.detector, GroundingDinoDetector) and isinstance(hl.segmenter, SamSegmenter)
    assert hl.random_weights
    frames, _ = render_frames(6, (72, 96), [SyntheticSubject()], seed=0)
    images = list(frames) + [np.zeros((3, 3, 3), np.uint8)]
    results = hl.highlight_batch(images, ["head"] * 3 + ["dog"] * 3 + ["cat"])
    again = hl.highlight_batch(images, ["head"] * 3 + ["dog"] * 3 + ["cat"])
    assert results[-1].status == "bad_image"
    ok = [r for r in results if r.status == "ok"]
    assert ok, [r.status for r in results]
    for r in ok:
        assert r.mask.shape == (72, 96) and r.image.size == (32, 32) and len(r.box) == 4
    for a, b in zip(results, again):  # deterministic
        assert a.status == b.status and a.box == b.box
        if a.mask is not None:
            np.testing.assert_array_equal(a.mask, b.mask)


def test_sam_checkpoint_architecture_is_recognised(tmp_path):
    fake = {"image_encoder.patch_embed.proj.weight": torch.empty(768, 3, 16, 16)}
    fake.update({f"image_encoder.blocks.{i}.norm1.weight": torch.empty(1) for i in range(12)})
    assert sam_arch_of(fake).name == "vit_b"
    fake["image_encoder.patch_embed.proj.weight"] = torch.empty(100, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown SAM architecture"):
        sam_arch_of(fake)
    other = tmp_path / "other.pth"
    torch.save({"foo": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a Segment Anything checkpoint"):
        load_sam(other)
    tiny = tmp_path / "tiny.pth"
    torch.manual_seed(0)
    torch.save(build_sam(SAM_ARCHS["vm_tiny"]).state_dict(), tiny)
    assert load_sam(tiny).image_encoder.img_size == 128


def test_missing_weights_name_what_where_and_how(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(MissingWeightsError) as exc:
        load_highlighter("full", device="cpu", detector="IDEA-Research/grounding-dino-tiny")
    msg = str(exc.value)
    assert "Grounding DINO" in msg and "IDEA-Research/grounding-dino-tiny" in msg and "hf download" in msg
    with pytest.raises(MissingWeightsError) as exc:
        load_highlighter("full", device="cpu", detector=str(tmp_path / "no-such-folder"))
    assert "no-such-folder" in str(exc.value)
    with pytest.raises(MissingWeightsError) as exc:  # the default SAM checkpoint, in the (empty) home folder
        load_highlighter("full", device="cpu", detector="synthetic-color")
    msg = str(exc.value)
    assert "Segment Anything" in msg and "sam_vit_h_4b8939.pth" in msg and "dl.fbaipublicfiles.com" in msg
    with pytest.raises(MissingWeightsError, match="some/repo"):
        load_highlighter("full", device="cpu", detector="synthetic-color", segmenter="some/repo/sam_vit_b.pth")
    with pytest.raises(ValueError, match="unknown preset"):
        load_highlighter("medium")


def test_cli_without_weights_exits_2_and_says_how_to_get_them(tmp_path, monkeypatch, caplog):
    import logging

    import huggingface_hub.constants as hf_constants

    from vm_data.preprocess import main
    from vm_data.synthetic import make_synthetic_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    manifest = make_synthetic_dataset(tmp_path / "syn", num_clips=1)
    with caplog.at_level(logging.ERROR):
        code = main(["--input", str(manifest.parent / "videos"), "--output", str(tmp_path / "out"),
                     "--num-workers", "0"])
    assert code == 2
    text = caplog.text
    assert "IDEA-Research/grounding-dino-tiny" in text and "How to get it" in text
