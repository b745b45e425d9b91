"""Training data: synthetic dataset, VideoClipDataset (shapes, stride rule, determinism), augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vm_data.augment import AugmentConfig, AugmentParams, apply_params, augment_reference, pick_reference, sample_params
from vm_data.dataset import VideoClipDataset, effective_stride
from vm_data.clip_manifest import ManifestRow, append_manifest, read_manifest
from vm_data.synthetic import make_synthetic_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return make_synthetic_dataset(root / "d", num_clips=4, num_frames=24, size=64, seed=1, references_per_clip=4)


def test_synthetic_dataset_layout_and_determinism(synthetic, tmp_path):
    rows = list(read_manifest(synthetic))
    assert len(rows) == 4 and all(r.status == "kept" for r in rows)
    base = synthetic.parent
    for r in rows:
        assert r.resolve(r.video, base).exists() and len(r.references) == 4 and r.num_frames == 24
        ref = np.asarray(Image.open(r.resolve(r.references[0], base)))
        assert ref.shape == (64, 64, 3) and (ref[0, 0] == 255).all()  # white background, square
        mask = np.asarray(Image.open(r.resolve(r.masks[0], base)))
        assert mask.shape == (64, 64) and 0.02 < (mask > 0).mean() < 0.5
    again = make_synthetic_dataset(tmp_path / "d2", num_clips=4, num_frames=24, size=64, seed=1,
                                   references_per_clip=4)
    a, b = synthetic.read_text().splitlines(), again.read_text().splitlines()
    assert [json.loads(x)["caption"] for x in a] == [json.loads(x)["caption"] for x in b]
    assert [json.loads(x)["boxes"] for x in a] == [json.loads(x)["boxes"] for x in b]
    default = make_synthetic_dataset(tmp_path / "d3", num_clips=2)
    assert [len(r.references) for r in read_manifest(default)] == [1, 1]


def test_effective_stride_rule():
    assert effective_stride(200, 16, 8) == 8  # fits: 121 frames needed
    assert effective_stride(24, 8, 8) == 3  # 57 needed -> largest stride that fits: (24 - 1) // 7
    assert effective_stride(8, 8, 8) == 1
    assert effective_stride(7, 8, 8) is None  # too short for 8 frames at all
    assert effective_stride(5, 1, 4) == 4


def test_dataset_sample_shapes_ranges_and_content(synthetic):
    ds = VideoClipDataset(synthetic, num_frames=8, frame_stride=8, resolution=32, augment=None, seed=0)
    assert len(ds) == 4 and not ds.skipped
    s = ds[1]
    assert s["video"].shape == (8, 3, 32, 32) and s["reference"].shape == (3, 32, 32)
    assert s["video"].dtype == torch.float32 and s["reference"].dtype == torch.float32
    assert -1.0 <= float(s["video"].min()) and float(s["video"].max()) <= 1.0
    assert float(s["reference"][:, 0, 0].min()) == pytest.approx(1.0)  # white corner without augmentation
    assert s["clip_id"] == "synthetic_0001" and s["caption"].startswith("a ")
    idx = s["frame_indices"]
    assert len(idx) == 8 and np.all(np.diff(idx) == 3) and idx[-1] < 24  # stride 8 does not fit 24 frames
    batch = torch.utils.data.default_collate([ds[0], ds[2]])
    assert batch["video"].shape == (2, 8, 3, 32, 32) and batch["caption"][1] == ds[2]["caption"]


def test_dataset_is_deterministic_in_seed_index_and_epoch(synthetic):
    aug = AugmentConfig(hflip_p=0.5, degrees=20, translate=(0.1, 0.1), scale=(0.8, 1.2))
    make = lambda seed: VideoClipDataset(synthetic, num_frames=4, frame_stride=2, resolution=32,  # noqa: E731
                                         augment=aug, seed=seed)
    a, b = make(0), make(0)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert torch.equal(x["video"], y["video"]) and torch.equal(x["reference"], y["reference"])
        assert x["frame_indices"] == y["frame_indices"] and x["reference_path"] == y["reference_path"]
    first = [(a[i]["frame_indices"], a[i]["reference_path"], a[i]["reference"]) for i in range(len(a))]
    a.set_epoch(1)
    second = [(a[i]["frame_indices"], a[i]["reference_path"], a[i]["reference"]) for i in range(len(a))]
    assert any(f[0] != s[0] or f[1] != s[1] or not torch.equal(f[2], s[2]) for f, s in zip(first, second))
    c = make(1)
    assert any(not torch.equal(c[i]["reference"], make(0)[i]["reference"]) for i in range(len(c)))
    a.set_epoch(0)
    assert torch.equal(a[2]["reference"], b[2]["reference"])


def test_short_and_unusable_clips_are_reported(synthetic, tmp_path):
    rows = list(read_manifest(synthetic))
    manifest = tmp_path / "m.jsonl"
    base = synthetic.parent
    fixed = []
    for r in rows:
        r.video = str(r.resolve(r.video, base))
        r.references = [str(r.resolve(p, base)) for p in r.references]
        fixed.append(r)
    fixed[1].num_frames = 5  # shorter than the 8 frames asked for
    fixed[2].references = []
    extra = [ManifestRow(clip_id="rej", video="x.mp4", status="rejected", reason="no_detection")]
    append_manifest(manifest, fixed + extra)
    ds = VideoClipDataset(manifest, num_frames=8, frame_stride=2, resolution=32)
    assert [r.clip_id for r in ds.rows] == ["synthetic_0000", "synthetic_0003"]  # kept rows only
    reasons = dict(ds.skipped)
    assert "5 frames < 8" in reasons["synthetic_0001"] and "no reference" in reasons["synthetic_0002"]
    with pytest.raises(ValueError, match="no usable kept clips"):
        VideoClipDataset(manifest, num_frames=64, frame_stride=1, resolution=32)


def test_pick_reference_is_uniform_and_seeded():
    refs = ["a", "b", "c", "d"]
    rng = np.random.default_rng(0)
    picks = [pick_reference(refs, rng) for _ in range(400)]
    counts = {r: picks.count(r) for r in refs}
    assert all(60 < c < 140 for c in counts.values()), counts
    assert [pick_reference(refs, np.random.default_rng(5)) for _ in range(3)] == \
        [pick_reference(refs, np.random.default_rng(5)) for _ in range(3)]
    with pytest.raises(ValueError):
        pick_reference([], rng)


def test_augmentation_flip_affine_and_white_fill():
    img = torch.zeros(3, 16, 16)
    img[:, :, :4] = 1.0  # a white band on the left
    flipped = apply_params(img, AugmentParams(True, 0.0, (0, 0), 1.0, 0.0))
    assert torch.equal(flipped, img.flip(-1))
    shifted = apply_params(torch.zeros(3, 16, 16), AugmentParams(False, 0.0, (4, 0), 1.0, 0.0), fill=1.0)
    assert torch.all(shifted[:, :, :4] == 1.0) and torch.all(shifted[:, :, 4:] == 0.0)  # uncovered = white
    cfg = AugmentConfig(hflip_p=1.0, degrees=0.0, translate=(0.0, 0.0), scale=(1.0, 1.0))
    out = augment_reference(img, cfg, np.random.default_rng(0))
    assert torch.equal(out, img.flip(-1))
    assert augment_reference(img, None, np.random.default_rng(0)) is img
    assert augment_reference(img, AugmentConfig(enabled=False), np.random.default_rng(0)) is img
    p1 = sample_params(AugmentConfig(), np.random.default_rng(3), 64, 64)
    p2 = sample_params(AugmentConfig(), np.random.default_rng(3), 64, 64)
    assert p1 == p2 and abs(p1.angle) <= 15 and 0.9 <= p1.scale <= 1.1 and abs(p1.translate[0]) <= 3.2
    with pytest.raises(ValueError):
        AugmentConfig(scale=(1.2, 0.8))
