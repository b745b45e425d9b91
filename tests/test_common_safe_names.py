"""Issue 11 §4: names taken from input files never become paths outside the output folder, and built-in media come
from an allow-list. Benchmark definitions (subject ids, classes, skimage names), the runner's file names, VideoBooth
ids and mask values, and the shared guard (vm_common.safe_names)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vm_eval.bench_defs import BenchmarkError, load_benchmark


def _definition(tmp_path: Path, subject_id: str, image: str = "skimage:astronaut", **subjects) -> Path:
    data = {"name": "evil", "prompts": {"items": [{"index": 0, "prompt": "a person", "category": "x",
                                                   "kind": "human"}]},
            "subjects": {"source": "builtin", "items": [{"id": subject_id, "kind": "human", "image": image}],
                         **subjects}}
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("subject_id", ["../../escape", "../escape", "..", "a/b", ".hidden"])
def test_a_subject_id_that_climbs_out_is_refused_and_nothing_is_written(tmp_path, subject_id):
    out = tmp_path / "deep" / "out"
    with pytest.raises(BenchmarkError, match="subject id"):
        load_benchmark(str(_definition(tmp_path, subject_id))).resolve_subjects(None, out)
    written = sorted(p for p in tmp_path.rglob("*.png"))
    assert written == [], written


def test_builtin_images_come_from_an_allow_list(tmp_path):
    # binary_blobs is a callable of skimage.data, but not a subject image we ship: refused at load time
    with pytest.raises(BenchmarkError, match="allowed"):
        load_benchmark(str(_definition(tmp_path, "blobs", image="skimage:binary_blobs"))).resolve_subjects(
            None, tmp_path / "out")
    with pytest.raises(BenchmarkError, match="unknown built-in image"):
        load_benchmark(str(_definition(tmp_path, "x", image="python:os.system")))
    # the packaged benchmarks (skimage and toy sources) still load
    for name in ("demo", "toy"):
        assert load_benchmark(name).subjects_spec["items"]


def test_class_names_and_prompt_files_of_a_definition_are_plain_names(tmp_path):
    with pytest.raises(BenchmarkError, match="class"):
        load_benchmark(str(_definition(tmp_path, "ok", classes=["../../etc"])))
    data = json.loads(_definition(tmp_path, "ok").read_text())
    data["prompts"] = {"file": "../../../etc/passwd"}
    (tmp_path / "evil.json").write_text(json.dumps(data))
    with pytest.raises(BenchmarkError, match="prompts file"):
        load_benchmark(str(tmp_path / "evil.json"))


@pytest.mark.parametrize("text", ["..", ".", "../..", ".hidden", "a/../../b", "/etc/passwd", "", "  "])
def test_runner_file_names_never_climb(text, tmp_path):
    from vm_common.safe_names import path_inside
    from vm_eval.runner import slug

    name = slug(text)
    assert name not in (".", "..") and not name.startswith(".") and "/" not in name and name
    path_inside(tmp_path, "videos", slug(text), slug(text), "x.gif")  # never raises for a slug


def test_path_inside_refuses_escapes(tmp_path):
    from vm_common.safe_names import UnsafeNameError, path_inside, safe_component

    assert path_inside(tmp_path, "a", "b.png") == tmp_path / "a" / "b.png"
    for parts in (("..", "x"), ("a", "..", "..", "x"), ("/etc/passwd",), (".",)):
        with pytest.raises(UnsafeNameError):
            path_inside(tmp_path, *parts)
    assert safe_component("../../x") == "x" and safe_component("..") == "item"


def test_videobooth_ids_and_mask_values_that_climb_out_become_error_rows(tmp_path):
    from vm_data.sources import discover

    root = tmp_path / "vb"
    (root / "dog" / "good").mkdir(parents=True)
    (root / "dog" / "good" / "mask.json").write_text(json.dumps([
        {"value": 1, "label": "dog", "box": [0, 0, 1, 1]},
        {"value": "../../../../secret", "label": "dog"}]))
    (root / "dog.csv").write_text("videoid,name,page_dir\n"
                                  "good,a dog running,\n"
                                  "../../../outside,a dog,\n"
                                  "fine,a dog,../../up\n")
    specs = {s.clip_id: s for s in discover(root)}
    good = specs["dog__good"]
    assert [Path(m.mask).name for m in good.provided_masks] == ["mask_1.png"]  # the climbing value is ignored
    bad = [s for s in specs.values() if s.input_error]
    assert len(bad) == 2 and all("line" in s.input_error for s in bad)
    assert all(str(root) in s.video or not s.video for s in specs.values())
