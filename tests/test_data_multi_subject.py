"""`vm preprocess-dataset --subjects`: per-subject references and per-frame masks (manifest schema 2), with known
answers on synthetic two-subject clips (the test-only colour detector finds the subject its prompt's colour names)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vm_common.media import write_mp4
from vm_data.clip_manifest import SUBJECT_MASKS_KEY, read_manifest
from vm_data.detect import Detections
from vm_data.highlight import HighlightConfig
from vm_data.multi_subject import assign_subjects, interpolate_boxes, parse_subjects
from vm_data.preprocess import main
from vm_data.synthetic import PALETTE, SyntheticSubject, render_frames
from vm_data.testing import colour_mask

SIZE = 64
FRAMES = 16
FAST = ["--detector", "synthetic-color", "--segmenter", "synthetic-color", "--min-short-side", "32",
        "--min-frames", "8", "--output-size", "48", "--num-workers", "0", "--batch-clips", "2",
        "--num-references", "3", "--subject-mask-side", "0"]
RED = SyntheticSubject(color=PALETTE[0][1], color2=PALETTE[0][2], radius=0.16, start=(0.22, 0.25),
                       velocity=(0.01, 0.0))
BLUE = SyntheticSubject(color=PALETTE[1][1], color2=PALETTE[1][2], radius=0.16, start=(0.78, 0.75),
                        velocity=(-0.01, 0.0), shape="box")


def _write(folder: Path, name: str, subjects, num_frames: int = FRAMES) -> np.ndarray:
    frames, _ = render_frames(num_frames, SIZE, subjects, seed=1)
    write_mp4(folder / f"{name}.mp4", frames, fps=8.0)
    (folder / f"{name}.txt").write_text("two things\n")
    return frames


@pytest.fixture(scope="module")
def two_subject_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    src = root / "src"
    src.mkdir()
    _write(src, "both", [RED, BLUE])
    _write(src, "only_red", [RED])
    out = root / "out"
    code = main(["--input", str(src), "--output", str(out), "--subjects", "red.,blue.", *FAST])
    return src, out, code


def _rows(out: Path) -> dict:
    return {r.clip_id: r for r in read_manifest(out / "manifest.jsonl")}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_kept_clip_has_one_entry_per_subject_with_masks_for_every_frame(two_subject_run):
    _, out, code = two_subject_run
    assert code == 0
    row = _rows(out)["both"]
    assert row.status == "kept" and row.schema_version == 2
    assert [s.name for s in row.subjects] == ["red", "blue"]
    truth = {"red": [RED.mask(t, SIZE, SIZE) for t in range(FRAMES)],
             "blue": [BLUE.mask(t, SIZE, SIZE) for t in range(FRAMES)]}
    for entry in row.subjects:
        with np.load(out / entry.masks, allow_pickle=False) as npz:
            masks = npz[SUBJECT_MASKS_KEY]
        assert masks.dtype == np.uint8 and masks.shape == (FRAMES, SIZE, SIZE)
        other = "blue" if entry.name == "red" else "red"
        for t in range(FRAMES):
            m = masks[t] > 0
            assert _iou(m, truth[entry.name][t]) > 0.8, (entry.name, t)  # video compression blurs edges
            assert (m & truth[other][t]).sum() == 0  # never the other subject
    # row-level fields are the first subject's (a schema-1 reader trains on it)
    assert row.references == row.subjects[0].references and row.frame_indices == row.subjects[0].frame_indices


def test_references_crop_their_own_subject(two_subject_run):
    _, out, _ = two_subject_run
    row = _rows(out)["both"]
    for entry in row.subjects:
        assert len(entry.references) == 3 and entry.frame_indices == [2, 8, 13]
        own, other = ("red", "blue") if entry.name == "red" else ("blue", "red")
        for ref in entry.references:
            image = np.asarray(Image.open(out / ref).convert("RGB"))
            assert image.shape == (48, 48, 3)
            assert colour_mask(image, own).mean() > 0.2  # mostly the subject (white outside its mask)
            assert colour_mask(image, other).sum() == 0
            assert str(Path(ref).parent.name) == "both" and (out / ref).resolve().is_relative_to(out.resolve())


def test_a_missing_subject_rejects_the_clip_naming_it(two_subject_run):
    _, out, _ = two_subject_run
    row = _rows(out)["only_red"]
    assert row.status == "rejected" and row.reason == "no_detection:blue"
    assert "blue: 0 of 3 sampled frames usable" in row.detail and row.subjects == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected_reasons"] == {"no_detection:blue": 1}


def test_changing_subjects_is_a_config_change_on_resume(two_subject_run, caplog):
    src, out, _ = two_subject_run
    caplog.clear()
    code = main(["--input", str(src), "--output", str(out), "--subjects", "red.,green.", *FAST, "--resume"])
    assert code == 2 and "subjects: " in caplog.text and "green." in caplog.text
    assert main(["--input", str(src), "--output", str(out), "--subjects", "red., blue.", *FAST, "--resume"]) == 0


def test_single_subject_runs_are_unchanged_and_resume_from_older_run_records(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "both", [RED, BLUE])
    _write(src, "only_red", [RED])
    out = tmp_path / "out"
    assert main(["--input", str(src), "--output", str(out), *FAST]) == 0
    rows = _rows(out)
    assert rows["both"].status == "rejected" and rows["both"].reason == "multiple_subjects"
    assert rows["only_red"].status == "kept" and rows["only_red"].subjects == []
    assert all(Path(r).parent.parent.name == "references" for r in rows["only_red"].references)
    # a run.json written before --subjects existed still resumes
    run = json.loads((out / "run.json").read_text())
    for key in ("subjects", "subject_detect_every", "subject_mask_side"):
        run["config"].pop(key)
    (out / "run.json").write_text(json.dumps(run))
    assert main(["--input", str(src), "--output", str(out), *FAST, "--resume"]) == 0


def test_detecting_every_third_frame_interpolates_boxes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "both", [RED, BLUE])
    out = tmp_path / "out"
    assert main(["--input", str(src), "--output", str(out), "--subjects", "red.,blue.", "--subject-detect-every",
                 "3", *FAST]) == 0
    row = _rows(out)["both"]
    entry = row.subjects[0]
    with np.load(out / entry.masks, allow_pickle=False) as npz:
        masks = npz[SUBJECT_MASKS_KEY] > 0
    for t in range(FRAMES):
        assert _iou(masks[t], RED.mask(t, SIZE, SIZE)) > 0.7, t


def test_stored_masks_are_downscaled_to_the_mask_side(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "both", [RED, BLUE])
    out = tmp_path / "out"
    args = FAST[:-2]  # without --subject-mask-side 0
    assert main(["--input", str(src), "--output", str(out), "--subjects", "red.,blue.", *args,
                 "--subject-mask-side", "32"]) == 0
    entry = _rows(out)["both"].subjects[1]
    with np.load(out / entry.masks, allow_pickle=False) as npz:
        assert npz[SUBJECT_MASKS_KEY].shape == (FRAMES, 32, 32)


def test_one_object_answering_both_prompts_goes_to_one_subject():
    cfg = HighlightConfig()
    box = [10, 10, 30, 30]
    dog = Detections(np.array([box]), np.array([0.9]))
    cat = Detections(np.array([[11, 10, 30, 31], [40, 40, 60, 60]]), np.array([0.6, 0.5]))
    a = assign_subjects([dog, cat], 64, 64, cfg)
    assert a.statuses == ["ok", "ok"]
    assert list(a.boxes[0]) == box and list(a.boxes[1]) == [40, 40, 60, 60]
    only = assign_subjects([dog, Detections(np.array([[11, 10, 30, 31]]), np.array([0.6]))], 64, 64, cfg)
    assert only.statuses == ["ok", "no_detection"] and only.boxes[1] is None
    two_dogs = assign_subjects([Detections(np.array([box, [40, 40, 60, 60]]), np.array([0.9, 0.8])),
                                Detections.empty()], 64, 64, cfg)
    assert two_dogs.statuses[0] == "multiple_subjects"


def test_interpolation_and_subject_parsing():
    boxes = interpolate_boxes([0, 4], {0: np.array([0, 0, 10, 10.]), 4: np.array([4, 0, 14, 10.])}, 6)
    assert list(boxes[2]) == [2, 0, 12, 10] and boxes[5] is None
    assert parse_subjects(["Dog.,cat"]) == ["dog.", "cat."] and parse_subjects(["dog.", "cat."]) == ["dog.", "cat."]
    with pytest.raises(ValueError, match="twice"):
        parse_subjects(["dog.,Dog"])
    assert main(["--input", "x", "--output", "y", "--subjects", "dog.,dog."]) == 2


def test_tiny_preset_runs_the_real_models_per_subject(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "both", [RED, BLUE], num_frames=8)
    out = tmp_path / "out"
    assert main(["--input", str(src), "--output", str(out), "--preset", "tiny", "--subjects", "dog.,cat.",
                 "--min-short-side", "32", "--min-frames", "8", "--num-workers", "0", "--num-references", "2",
                 "--subject-detect-every", "4",
                 "--box-threshold", "0.0", "--multi-subject-threshold", "1.0", "--min-box-area", "0"]) == 0
    row = _rows(out)["both"]
    assert row.status in ("kept", "rejected")
    if row.status == "kept":
        assert [s.name for s in row.subjects] == ["dog", "cat"]
        for entry in row.subjects:
            with np.load(out / entry.masks, allow_pickle=False) as npz:
                assert npz[SUBJECT_MASKS_KEY].shape[0] == 8
    else:
        assert row.reason.endswith((":dog", ":cat"))


def test_the_training_dataset_reads_the_preprocessed_subjects(two_subject_run):
    """Hand-off to `vm train`: the kept multi-subject clip loads with one reference and one mask stack per subject,
    each mask on its own subject's pixels (red masks over red video pixels, blue over blue)."""
    from vm_data.dataset import VideoClipDataset

    _, out, _ = two_subject_run
    ds = VideoClipDataset(out / "manifest.jsonl", num_frames=4, frame_stride=2, resolution=32)
    assert len(ds) == 1
    item = ds[0]
    if "subject_masks" not in item:
        pytest.skip("this VideoClipDataset does not serve multi-subject items yet")
    masks = item["subject_masks"]
    assert masks.shape[:2] == (2, 4) and item["subject_names"] == ["red", "blue"]
    video = ((item["video"].permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    for s, colour in enumerate(("red", "blue")):
        for f in range(4):
            m = masks[s, f].numpy().reshape(video.shape[1:3]) > 0.5
            assert m.any()
            assert colour_mask(video[f], colour)[m].mean() > 0.6, (colour, f)


def test_a_subject_seen_twice_rejects_the_clip_as_multiple_subjects_naming_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    second_red = dataclasses.replace(RED, start=(0.25, 0.75), velocity=(0.0, 0.0))
    _write(src, "two_reds", [RED, BLUE, second_red])
    out = tmp_path / "out"
    assert main(["--input", str(src), "--output", str(out), "--subjects", "red.,blue.", *FAST]) == 0
    row = _rows(out)["two_reds"]
    assert row.status == "rejected" and row.reason == "multiple_subjects:red"
    assert "3 of 3 sampled frames show a second instance" in row.detail


def test_the_manifest_check_before_training_wants_every_subject_file(two_subject_run, tmp_path):
    import shutil

    from vm_data.manifest_check import ManifestError, check_manifest_files

    _, out, _ = two_subject_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert check_manifest_files(copy / "manifest.jsonl").kept == 1
    entry = _rows(copy)["both"].subjects[1]
    (copy / entry.masks).unlink()
    with pytest.raises(ManifestError, match=r"missing .*1-blue\.npz"):
        check_manifest_files(copy / "manifest.jsonl")
