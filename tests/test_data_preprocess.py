"""`vm preprocess-dataset` end to end: every filter, every bad input, input layouts, outputs, resume rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vm_common.media import write_mp4
from vm_data.clip_manifest import read_manifest
from vm_data.preprocess import main
from vm_data.synthetic import PALETTE, SyntheticSubject, render_frames
from vm_data.testing import write_video

SIZE = 64
FAST = ["--detector", "synthetic-color", "--segmenter", "synthetic-color", "--min-short-side", "32",
        "--max-long-side", "1024", "--output-size", "48", "--num-workers", "0", "--batch-clips", "4"]
BALL = SyntheticSubject(radius=0.2, start=(0.35, 0.5), velocity=(0.01, 0.0))
OTHER = SyntheticSubject(color=PALETTE[1][1], color2=PALETTE[1][2], radius=0.16, start=(0.78, 0.25))

# clip name -> expected (status, reason or error kind)
EXPECTED = {
    "good": ("kept", None),
    "odd_size": ("kept", None),
    "two_subjects": ("rejected", "multiple_subjects"),
    "no_subject": ("rejected", "no_detection"),
    "tiny_subject": ("rejected", "subject_too_small"),
    "few_frames": ("rejected", "too_few_frames"),
    "one_frame": ("rejected", "too_few_frames"),
    "too_short": ("rejected", "too_short"),
    "low_res": ("rejected", "resolution_too_low"),
    "huge": ("rejected", "resolution_too_high"),
    "no_caption": ("rejected", "missing_caption"),
    "empty_caption": ("rejected", "missing_caption"),
    "grayscale": ("rejected", "no_detection"),
    "zero_bytes": ("error", "unreadable_video"),
    "not_a_video": ("error", "unreadable_video"),
    "truncated": ("error", "unreadable_video"),
    "truncated_faststart": ("error", "decode_failed"),
}


def _clip(folder: Path, name: str, frames: np.ndarray, caption: str | None = "a thing moving", fps: float = 8.0,
          **kw) -> Path:
    path = folder / f"{name}.mp4"
    if kw:
        write_video(path, frames, fps=fps, **kw)
    else:
        write_mp4(path, frames, fps=fps)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption + "\n")
    return path


def build_zoo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frames = lambda subjects, n=24, size=SIZE, seed=0: render_frames(n, size, subjects, seed=seed)[0]  # noqa: E731
    _clip(folder, "good", frames([BALL]))
    _clip(folder, "odd_size", frames([BALL], size=(47, 63)), pix_fmt="yuv444p")
    _clip(folder, "two_subjects", frames([BALL, OTHER]))
    _clip(folder, "no_subject", frames([]))
    _clip(folder, "tiny_subject", frames([SyntheticSubject(radius=0.05, start=(0.5, 0.5))], size=96))
    _clip(folder, "few_frames", frames([BALL], n=8))
    _clip(folder, "one_frame", frames([BALL], n=1))
    _clip(folder, "too_short", frames([BALL], n=16), fps=24)  # 0.67 s
    _clip(folder, "low_res", frames([BALL], size=24))
    _clip(folder, "huge", frames([BALL], size=(32, 1030)))
    _clip(folder, "no_caption", frames([BALL]), caption=None)
    _clip(folder, "empty_caption", frames([BALL]), caption="   ")
    gray = frames([BALL]).mean(axis=3, keepdims=True).repeat(3, axis=3).astype(np.uint8)
    _clip(folder, "grayscale", gray, pix_fmt="gray")
    (folder / "zero_bytes.mp4").write_bytes(b"")
    (folder / "zero_bytes.txt").write_text("caption")
    (folder / "not_a_video.mp4").write_text("definitely not a video\n" * 100)
    (folder / "not_a_video.txt").write_text("caption")
    whole = _clip(folder, "whole", frames([BALL], n=40))
    data = whole.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index (moov) at the end: unreadable
    (folder / "truncated.txt").write_text("caption")
    whole.unlink()
    whole.with_suffix(".txt").unlink()
    fs = _clip(folder, "fs", frames([BALL], n=40), pix_fmt="yuv420p", container_options={"movflags": "faststart"})
    data = fs.read_bytes()
    (folder / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])  # opens, ends early
    (folder / "truncated_faststart.txt").write_text("caption")
    fs.unlink()
    fs.with_suffix(".txt").unlink()
    (folder / "notes.md").write_text("not a video extension: ignored\n")
    return folder


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    src = build_zoo(root / "src")
    out = root / "out"
    code = main(["--input", str(src), "--output", str(out), *FAST])
    return src, out, code


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_every_clip_gets_exactly_one_row_with_the_right_decision(zoo_run):
    src, out, code = zoo_run
    assert code == 0
    rows = _rows(out)
    ids = [r["clip_id"] for r in rows]
    assert ids == sorted(EXPECTED) and len(set(ids)) == len(ids)  # input order (sorted paths), once each
    got = {}
    for r in rows:
        kind = r["extra"].get("error_kind") if r["status"] == "error" else r["reason"]
        got[r["clip_id"]] = (r["status"], kind)
    assert got == EXPECTED


def test_rows_carry_scores_details_and_messages(zoo_run):
    _, out, _ = zoo_run
    rows = {r["clip_id"]: r for r in _rows(out)}
    for cid, (status, _) in EXPECTED.items():
        row = rows[cid]
        if status == "rejected" and row["reason"] != "missing_caption":
            assert row["filter_score"] is not None and row["detail"], cid
        if status == "error":
            assert row["reason"] and cid in row["reason"], row["reason"]  # the message names the file
    assert rows["one_frame"]["filter_score"] == 1.0 and rows["low_res"]["filter_score"] == 24
    assert rows["too_short"]["filter_score"] == pytest.approx(16 / 24)
    assert rows["tiny_subject"]["filter_score"] < 0.01
    assert rows["two_subjects"]["filter_score"] > 0.35
    assert "empty" in rows["zero_bytes"]["reason"]
    # every row reads back through the schema vm_model's training uses
    assert len(list(read_manifest(out / "manifest.jsonl"))) == len(EXPECTED)


def test_kept_clips_have_references_masks_and_boxes(zoo_run):
    _, out, _ = zoo_run
    rows = {r["clip_id"]: r for r in _rows(out)}
    for cid, (w, h) in (("good", (SIZE, SIZE)), ("odd_size", (63, 47))):
        row = rows[cid]
        assert len(row["references"]) == 4 and len(row["masks"]) == 4 and len(row["boxes"]) == 4
        assert len(row["scores"]) == len(row["mask_area"]) == len(row["frame_indices"]) == 4
        assert (row["width"], row["height"], row["num_frames"]) == (w, h, 24)
        for ref, mask, box in zip(row["references"], row["masks"], row["boxes"]):
            im = Image.open(out / ref)
            assert im.size == (48, 48) and im.mode == "RGB"
            arr = np.asarray(im)
            assert (arr[0, 0] >= 250).all() and (arr[-1, -1] >= 250).all()
            m = np.asarray(Image.open(out / mask))
            assert m.shape == (h, w) and set(np.unique(m)) <= {0, 255} and m.any()
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
    assert rows["good"]["caption"] == "a thing moving"


def test_summary_run_record_and_no_temporaries(zoo_run):
    _, out, _ = zoo_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == summary["rows"] == len(EXPECTED) and summary["missing"] == 0
    assert summary["status"] == {"kept": 2, "rejected": 11, "error": 4}
    assert summary["rejected_reasons"]["too_few_frames"] == 2
    assert summary["rejected_reasons"]["missing_caption"] == 2
    assert summary["error_kinds"] == {"unreadable_video": 3, "decode_failed": 1}
    assert summary["throughput"]["clips_this_run"] == len(EXPECTED) and summary["throughput"]["clips_per_second"] > 0
    assert summary["random_weights"] is False
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["min_short_side"] == 32 and run["highlight"]["output_size"] == 48
    assert run["provenance"]["versions"]["torch"] and run["backends"]["detector"] == "synthetic-color"
    assert not list(out.rglob(".*.tmp*"))


def test_existing_output_needs_resume_or_overwrite(zoo_run, tmp_path):
    src, out, _ = zoo_run
    copy = tmp_path / "out"
    import shutil

    shutil.copytree(out, copy)
    before = (copy / "manifest.jsonl").read_text()
    assert main(["--input", str(src), "--output", str(copy), *FAST]) == 2
    assert main(["--input", str(src), "--output", str(copy), "--resume", *FAST]) == 0
    assert (copy / "manifest.jsonl").read_text() == before  # nothing redone, no duplicates
    assert json.loads((copy / "summary.json").read_text())["throughput"]["clips_this_run"] == 0
    assert main(["--input", str(src), "--output", str(copy), "--overwrite", "--limit", "3", *FAST]) == 0
    assert len(_rows(copy)) == 3
    assert main(["--input", str(src), "--output", str(copy), "--resume", "--overwrite", *FAST]) == 2



def test_resume_reads_row_shards_named_by_earlier_versions(zoo_run, tmp_path):
    """An interrupted run of an earlier version left shards/rank-00000.jsonl: --resume keeps its rows and merges."""
    import shutil

    src, out, _ = zoo_run
    old = tmp_path / "out"
    shutil.copytree(out, old)
    (old / "manifest.jsonl").unlink()
    new_shard = old / "shards" / "clips-00000.jsonl"
    lines = new_shard.read_text().splitlines(keepends=True)
    (old / "shards" / "rank-00000.jsonl").write_text("".join(lines[:-3]))  # the last 3 clips never finished
    new_shard.unlink()
    assert main(["--input", str(src), "--output", str(old), "--resume", *FAST]) == 0
    strip = lambda r: {k: v for k, v in r.items() if k != "extra"}  # noqa: E731
    assert [strip(r) for r in _rows(old)] == [strip(r) for r in _rows(out)]  # every clip once, same decisions
    assert json.loads((old / "summary.json").read_text())["throughput"]["clips_this_run"] == 3
    assert len(new_shard.read_text().splitlines()) == 3  # only the missing clips were processed

def test_tiny_preset_end_to_end(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        _clip(src, f"c{i}", render_frames(24, SIZE, [BALL], seed=i)[0])
    out = tmp_path / "out"
    args = ["--input", str(src), "--output", str(out), "--preset", "tiny", "--min-short-side", "32",
            "--output-size", "32", "--num-workers", "1", "--nms-iou", "0", "--min-box-area", "0",
            "--min-mask-area", "0", "--num-references", "2"]
    assert main(args) == 0
    rows = _rows(out)
    assert [r["clip_id"] for r in rows] == ["c0", "c1", "c2"]
    kept = [r for r in rows if r["status"] == "kept"]
    assert kept, rows  # the tiny random Grounding DINO + SAM went all the way to references
    assert all((out / p).exists() for r in kept for p in r["references"] + r["masks"])
    assert json.loads((out / "summary.json").read_text())["random_weights"] is True
    assert json.loads((out / "run.json").read_text())["random_weights"] is True


def test_yaml_config_and_flag_precedence(tmp_path):
    from vm_data.preprocess import resolve_configs

    cfg_file = tmp_path / "pre.yaml"
    cfg_file.write_text("min_frames: 3\nhighlight:\n  box_threshold: 0.5\n  output_size: 99\n")
    pre, hl = resolve_configs(["--config", str(cfg_file), "--input", "a", "--output", "b", "--output-size", "77"])
    assert pre.min_frames == 3 and hl.box_threshold == 0.5 and hl.output_size == 77
    cfg_file.write_text("min_framez: 3\n")
    with pytest.raises(ValueError, match="min_framez"):
        resolve_configs(["--config", str(cfg_file), "--input", "a", "--output", "b"])
    cfg_file.write_text("highlight:\n  box_treshold: 0.5\n")
    with pytest.raises(ValueError, match="highlight.box_treshold"):
        resolve_configs(["--config", str(cfg_file), "--input", "a", "--output", "b"])
    assert main(["--input", str(tmp_path / "absent"), "--output", str(tmp_path / "o"), *FAST]) == 2


# ------------------------------------------------------------------------------------------- input layouts
def test_csv_and_jsonl_manifests_with_class_words(tmp_path):
    vids = tmp_path / "data" / "clips"
    vids.mkdir(parents=True)
    _clip(vids, "a", render_frames(24, SIZE, [BALL])[0], caption=None)
    _clip(vids, "b", render_frames(24, SIZE, [BALL, OTHER])[0], caption=None)
    table = tmp_path / "data" / "list.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "caption", "class_word", "source"])
        w.writerow(["clips/a.mp4", "a dog runs", "dog", "web"])
        w.writerow(["clips/b.mp4", "two dogs", "dog", "web"])
        w.writerow(["clips/missing.mp4", "gone", "", ""])
    out = tmp_path / "out_csv"
    assert main(["--input", str(table), "--output", str(out), *FAST]) == 0
    rows = {r["clip_id"]: r for r in _rows(out)}
    assert rows["clips__a"]["status"] == "kept" and rows["clips__a"]["class_word"] == "dog"
    assert rows["clips__a"]["caption"] == "a dog runs" and rows["clips__a"]["extra"]["source"] == "web"
    assert rows["clips__b"]["reason"] == "multiple_subjects"
    assert rows["clips__missing"]["status"] == "error" and "missing.mp4" in rows["clips__missing"]["reason"]

    jl = tmp_path / "data" / "list.jsonl"
    jl.write_text(json.dumps({"id": "x1", "path": str(vids / "a.mp4"), "text": "a dog", "class": "dog"}) + "\n")
    out2 = tmp_path / "out_jsonl"
    assert main(["--input", str(jl), "--output", str(out2), *FAST]) == 0
    (row,) = _rows(out2)
    assert (row["clip_id"], row["status"], row["caption"]) == ("x1", "kept", "a dog")


def test_provided_reference_images_are_used_as_they_are(tmp_path):
    src = tmp_path / "d"
    src.mkdir()
    _clip(src, "a", render_frames(24, SIZE, [BALL, OTHER])[0], caption=None)  # two subjects: no detector runs
    ref = np.zeros((30, 20, 3), np.uint8)
    ref[..., 2] = 200
    Image.fromarray(ref).save(src / "a_ref.jpg", quality=100)
    table = src / "list.jsonl"
    table.write_text(json.dumps({"video": "a.mp4", "caption": "c", "reference": ["a_ref.jpg"]}) + "\n"
                     + json.dumps({"video": "a.mp4", "caption": "c", "id": "bad", "reference": "nope.png"}) + "\n")
    out = tmp_path / "out"
    assert main(["--input", str(table), "--output", str(out), *FAST]) == 0
    rows = {r["clip_id"]: r for r in _rows(out)}
    row = rows["a"]
    assert row["status"] == "kept" and row["extra"]["reference_source"] == "provided"
    saved = np.asarray(Image.open(out / row["references"][0]))
    assert saved.shape == (30, 20, 3)  # not cropped, padded or resized
    assert rows["bad"]["status"] == "error" and "nope.png" in rows["bad"]["reason"]


def test_celebvtext_layout(tmp_path):
    root = tmp_path / "CelebV-Text"
    (root / "celebvtext_6").mkdir(parents=True)
    for field_name in ("face40_details_new", "action_dur", "emotion"):
        (root / "texts" / field_name).mkdir(parents=True)
    _clip(root / "celebvtext_6", "-abc_1", render_frames(24, SIZE, [BALL])[0], caption=None)
    _clip(root / "celebvtext_6", "xyz_2", render_frames(24, SIZE, [BALL])[0], caption=None)
    (root / "texts" / "face40_details_new" / "-abc_1.txt").write_text("A young woman with long hair.\nignored\n")
    (root / "texts" / "action_dur" / "-abc_1.txt").write_text("She talks and smiles.\n")
    (root / "texts" / "emotion" / "-abc_1.txt").write_text("happy\n")
    out = tmp_path / "out"
    assert main(["--input", str(root), "--output", str(out), *FAST]) == 0
    rows = {r["clip_id"]: r for r in _rows(out)}
    assert rows["-abc_1"]["caption"] == "A young woman with long hair. She talks and smiles."
    assert rows["-abc_1"]["status"] == "kept" and rows["-abc_1"]["class_word"] is None  # prompt "head."
    assert rows["xyz_2"]["reason"] == "missing_caption"
    assert json.loads((out / "run.json").read_text())["config"]["input_format"] == "auto"


def test_videobooth_layout_uses_the_provided_masks(tmp_path):
    root = tmp_path / "vb"
    frames, masks = render_frames(24, SIZE, [BALL, OTHER])  # two subjects, but the mask picks one
    (root / "videos" / "p1").mkdir(parents=True)
    write_mp4(root / "videos" / "p1" / "111.mp4", frames)
    with open(root / "dog.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["videoid", "name", "page_dir"])
        w.writerow(["111", "a dog on a lawn", "p1"])
        w.writerow(["222", "a missing dog", "p1"])
    mask_dir = root / "dog" / "111"
    mask_dir.mkdir(parents=True)
    one = BALL.mask(0, SIZE, SIZE)
    Image.fromarray(one.astype(np.uint8) * 255).save(mask_dir / "mask_1.png")
    (mask_dir / "mask.json").write_text(json.dumps([{"value": 1, "label": "dog", "box": [1, 2, 30, 40]}]))
    out = tmp_path / "out"
    assert main(["--input", str(root), "--output", str(out), *FAST]) == 0
    rows = {r["clip_id"]: r for r in _rows(out)}
    row = rows["dog__111"]
    assert row["status"] == "kept" and row["extra"]["reference_source"] == "provided"
    assert row["caption"] == "a dog on a lawn" and row["boxes"] == [[1.0, 2.0, 30.0, 40.0]] and row["frame_indices"] == [0]
    saved = np.asarray(Image.open(out / row["masks"][0])) > 127
    np.testing.assert_array_equal(saved, one)
    assert rows["dog__222"]["status"] == "error"
