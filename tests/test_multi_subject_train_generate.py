"""Multi-subject data -> `vm train --router` -> `vm generate --image a --image b` on the tiny preset, and the
multi-subject dataset items (vm_data.dataset) on the two-subject toy clips (vm_model.toy.multi)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vm_model.toy.multi import make_multi_subject_dataset


@pytest.fixture(scope="module")
def multi_manifest(tmp_path_factory):
    return make_multi_subject_dataset(tmp_path_factory.mktemp("multi"), 4, num_frames=4, size=32, seed=0)


def test_multi_subject_items_carry_references_and_masks_cropped_like_the_frames(multi_manifest):
    from vm_data.dataset import VideoClipDataset

    ds = VideoClipDataset(multi_manifest, num_frames=3, frame_stride=1, resolution=16, seed=0)
    assert ds.num_subjects == 2 and len(ds) == 4
    item = ds[0]
    assert item["references"].shape == (2, 3, 16, 16) and item["subject_masks"].shape == (2, 3, 16, 16)
    assert item["references"].min() >= -1 and item["references"].max() <= 1
    torch.testing.assert_close(item["reference"], item["references"][0])
    # the masks sit where the frames show a subject (frames resized exactly like the masks)
    video = (item["video"] + 1) / 2  # (F, 3, H, W)
    subject_pixels = (video - torch.tensor([16 / 255] * 3)[:, None, None]).abs().amax(dim=1) > 0.3
    covered = item["subject_masks"].amax(dim=0) > 0.5
    agree = (subject_pixels == covered).float().mean()
    assert agree > 0.9, agree


def test_multi_subject_manifest_rows_with_another_subject_count_are_left_out(multi_manifest, tmp_path):
    from vm_data.clip_manifest import read_manifest
    from vm_data.dataset import VideoClipDataset

    rows = list(read_manifest(multi_manifest))
    rows[1].subjects = rows[1].subjects[:1]
    rows[2].subjects[0].masks = None
    base = multi_manifest.parent
    for row in rows:  # absolute paths, so the edited manifest can live elsewhere
        row.video = str(base / row.video)
        for s in row.subjects:
            s.references = [str(base / r) for r in s.references]
            s.masks = str(base / s.masks) if s.masks else None
    edited = tmp_path / "manifest.jsonl"
    edited.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    ds = VideoClipDataset(edited, num_frames=3, frame_stride=1, resolution=16)
    assert len(ds) == 2
    reasons = dict(ds.skipped)
    assert "1 subjects" in reasons["pair_00001"] and "no mask file" in reasons["pair_00002"]


def test_mask_file_without_the_masks_array_is_a_clear_error(multi_manifest, tmp_path):
    from vm_data.clip_manifest import ManifestError, read_manifest
    from vm_data.dataset import VideoClipDataset

    ds = VideoClipDataset(multi_manifest, num_frames=3, frame_stride=1, resolution=16)
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros((4, 8, 8), np.uint8))
    row = next(iter(read_manifest(multi_manifest)))
    with pytest.raises(ManifestError, match="has no array 'masks'"):
        ds.subject_masks_tensor(row, bad, [0, 1, 2])


@pytest.mark.slow
def test_train_with_router_then_generate_with_two_images(multi_manifest, tmp_path, caplog):
    from safetensors.torch import load_file

    from vm_model.checkpoint import weights_file
    from vm_model.generate import main as generate_main
    from vm_model.train import main as train_main

    run = tmp_path / "run"
    assert train_main(["--preset", "tiny", "--data", str(multi_manifest), "--router", "--max-steps", "1",
                       "--batch-size", "2", "--num-frames", "3", "--frame-stride", "1", "--output-dir",
                       str(run)]) == 0
    row = json.loads((run / "losses.jsonl").read_text().splitlines()[0])
    assert row["loss_routing"] > 0 and np.isfinite(row["loss"])
    state = load_file(str(weights_file(run)))
    assert sum(".vm_router." in k for k in state) > 0

    images = sorted((multi_manifest.parent / "references").glob("pair_00000_*.png"))
    with caplog.at_level("INFO"):
        assert generate_main(["--preset", "tiny", "--num-frames", "3", "--steps", "2", "--height", "64", "--width",
                              "64", "--weights", str(run), "--image", str(images[0]), "--image", str(images[1]),
                              "--prompt", "two shapes", "--out", str(tmp_path / "out")]) == 0
    assert "routing on" in caplog.text
    sidecar = json.loads((tmp_path / "out" / "000-two-shapes-s42.json").read_text())
    assert len(sidecar["references"]) == 2


@pytest.mark.slow
def test_router_only_training_keeps_the_start_weights(multi_manifest, tmp_path):
    from safetensors.torch import load_file

    from vm_model.checkpoint import weights_file
    from vm_model.train import main as train_main

    args = ["--preset", "tiny", "--data", str(multi_manifest), "--max-steps", "1", "--batch-size", "2",
            "--num-frames", "3", "--frame-stride", "1"]
    assert train_main(args + ["--output-dir", str(tmp_path / "a")]) == 0
    assert train_main(args + ["--router", "--train-router-only", "--weights", str(tmp_path / "a"),
                              "--output-dir", str(tmp_path / "b")]) == 0
    state = load_file(str(weights_file(tmp_path / "b")))
    assert state and all(".vm_router." in k for k in state)


@pytest.mark.slow
def test_continued_training_records_the_routers_own_neighbourhood(multi_manifest, tmp_path):
    """Weights with pooled routers, trained on without --router-neighbourhood: the routers keep pooling, and the new
    checkpoint says so (it is loaded with pooling), not the flag's 0."""
    from vm_model.checkpoint import weights_file
    from vm_model.routing import router_neighbourhood_in_metadata
    from vm_model.train import main as train_main

    args = ["--preset", "tiny", "--data", str(multi_manifest), "--router", "--max-steps", "1", "--batch-size", "2",
            "--num-frames", "3", "--frame-stride", "1"]
    assert train_main(args + ["--router-neighbourhood", "3", "--output-dir", str(tmp_path / "a")]) == 0
    assert router_neighbourhood_in_metadata(weights_file(tmp_path / "a")) == 3
    assert train_main(args + ["--weights", str(tmp_path / "a"), "--output-dir", str(tmp_path / "b")]) == 0
    assert router_neighbourhood_in_metadata(weights_file(tmp_path / "b")) == 3
