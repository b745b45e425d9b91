"""`vm generate` on the tiny preset: outputs, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from vm_common.cli import main as vm_main
from vm_common.media import read_video
from vm_model.generate import main, read_prompts, slugify

FAST = ["--preset", "tiny", "--num-frames", "3", "--steps", "2", "--height", "64", "--width", "64"]


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_generate_writes_videos_and_sidecars_and_resumes(tmp_path, astronaut, caplog):
    out = tmp_path / "out"
    argv = FAST + ["--image", str(astronaut), "--prompt", "A person reading a book.", "--seed", "1", "2",
                   "--out", str(out)]
    assert vm_main(["generate"] + argv) == 0
    stems = sorted(p.stem for p in out.glob("*.mp4"))
    assert stems == ["000-a-person-reading-a-book-s1", "000-a-person-reading-a-book-s2"]
    for stem in stems:
        assert read_video(out / f"{stem}.mp4").shape == (3, 64, 64, 3)
        assert read_video(out / f"{stem}.gif").shape == (3, 64, 64, 3)
        sidecar = json.loads((out / f"{stem}.json").read_text())
        assert sidecar["prompt"] == "A person reading a book."
        assert sidecar["random_weights"] is True and sidecar["config"]["generation"]["steps"] == 2
        assert sidecar["seed"] in (1, 2) and "versions" in sidecar and sidecar["sources"]["base_model"]
    a = read_video(out / f"{stems[0]}.mp4")
    b = read_video(out / f"{stems[1]}.mp4")
    assert np.abs(a.astype(int) - b).max() > 0  # different seeds, different videos
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == before
    assert "2 already present" in caplog.text


def test_same_seed_same_frames(tmp_path, astronaut):
    for name in ("a", "b"):
        assert main(FAST + ["--image", str(astronaut), "--prompt", "x y", "--out", str(tmp_path / name)]) == 0
    a = read_video(tmp_path / "a" / "000-x-y-s42.gif")  # GIF: lossless given the frames
    b = read_video(tmp_path / "b" / "000-x-y-s42.gif")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make_bad, match", [
    (lambda p: None, "not found"),
    (lambda p: p.write_bytes(b""), "cannot read image"),
    (lambda p: p.write_text("hello"), "cannot read image"),
])
def test_bad_image_is_a_clear_error(tmp_path, caplog, make_bad, match):
    bad = tmp_path / "bad.png"
    make_bad(bad)
    assert main(FAST + ["--image", str(bad), "--prompt", "x", "--out", str(tmp_path / "o")]) == 2
    assert match in caplog.text and "bad.png" in caplog.text
    assert not (tmp_path / "o").exists()  # nothing written, no model loaded


def test_empty_prompt_and_too_many_frames(tmp_path, astronaut, caplog):
    assert main(FAST + ["--image", str(astronaut), "--prompt", "  ", "--out", str(tmp_path / "o")]) == 2
    assert "empty" in caplog.text
    caplog.clear()
    assert main(["--preset", "tiny", "--num-frames", "40", "--steps", "1", "--image", str(astronaut),
                 "--prompt", "x", "--out", str(tmp_path / "o2")]) == 2
    assert "maximum sequence length 32" in caplog.text
    assert not (tmp_path / "o2" / "run.json").exists()  # refused before anything is written


def test_prompts_file(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# comment\nA cat.\n\nA dog running.\n")
    assert read_prompts(["first"], f) == ["first", "A cat.", "A dog running."]
    with pytest.raises(ValueError, match="no prompt"):
        read_prompts(None, None)
    assert slugify("A person, wearing: a hat!") == "a-person-wearing-a-hat"


def test_generate_with_a_trained_checkpoint(tmp_path, astronaut, caplog):
    from vm_model.train import main as train_main

    run = tmp_path / "run"
    assert train_main(["--preset", "tiny", "--data", "synthetic", "--synthetic-clips", "2", "--num-workers", "0",
                       "--max-steps", "1", "--output-dir", str(run)]) == 0
    with caplog.at_level("INFO"):
        assert main(FAST + ["--weights", str(run), "--image", str(astronaut), "--prompt", "x",
                            "--out", str(tmp_path / "o")]) == 0
    sidecar = json.loads((tmp_path / "o" / "000-x-s42.json").read_text())
    assert sidecar["sources"]["videomaker_weights"] == str(run)
    assert sidecar["weights_report"]["loaded"] > 0 and sidecar["weights_report"]["unexpected"] == []


def test_highlight_option_records_what_happened(tmp_path, astronaut):
    assert main(FAST + ["--highlight", "head", "--image", str(astronaut), "--prompt", "x",
                        "--out", str(tmp_path / "o")]) == 0
    note = json.loads((tmp_path / "o" / "000-x-s42.json").read_text())["highlight"][0]
    assert note["image"] == str(astronaut)
    assert note["highlight"] == "ok" or note["reason"]  # random tiny detector: either a box or a stated reason


def test_yaml_preset_and_nested_sections_are_honoured(tmp_path, astronaut):
    config = tmp_path / "c.yaml"
    config.write_text("preset: tiny\ngeneration:\n  num_frames: 2\n  steps: 1\n  height: 64\n  width: 64\n")
    assert main(["--config", str(config), "--image", str(astronaut), "--prompt", "x", "--out",
                 str(tmp_path / "o")]) == 0
    sidecar = json.loads((tmp_path / "o" / "000-x-s42.json").read_text())
    assert sidecar["preset"] == "tiny" and sidecar["random_weights"] is True
    assert sidecar["sources"]["base_model"] == "builtin:tiny" and sidecar["num_frames"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("generation:\n  frames: 3\n")
    assert main(["--config", str(bad), "--image", str(astronaut), "--prompt", "x", "--out",
                 str(tmp_path / "o2")]) == 2


def test_resume_refuses_a_changed_protocol_unless_overwrite(tmp_path, astronaut, caplog):
    """Issue 11 §5: a folder holding a video made with other settings is refused (exit 2, naming the changed key,
    nothing written); --overwrite regenerates it."""
    argv = FAST + ["--image", str(astronaut), "--prompt", "x", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    first = read_video(tmp_path / "o" / "000-x-s42.gif")
    run_json = (tmp_path / "o" / "run.json").read_text()
    with caplog.at_level("INFO"):
        assert main(argv + ["--guidance-scale", "2"]) == 2
    assert "guidance_scale: 8.0 -> 2.0" in caplog.text and "--overwrite" in caplog.text
    assert (tmp_path / "o" / "run.json").read_text() == run_json  # nothing rewritten
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(argv + ["--guidance-scale", "2", "--overwrite"]) == 0
    assert "1 video(s), 0 already present" in caplog.text
    assert json.loads((tmp_path / "o" / "000-x-s42.json").read_text())["generation"]["guidance_scale"] == 2.0
    assert np.abs(read_video(tmp_path / "o" / "000-x-s42.gif").astype(int) - first).max() > 0


def test_another_image_or_other_seeds_in_the_same_folder_are_refused(tmp_path, astronaut, caplog):
    """Issue 11 §5: another reference image (same prompt and seed, so the same file names) or other seeds (the old
    videos would stay beside the new run.json) are refused naming what changed; nothing is generated or rewritten."""
    other = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(other)
    out = tmp_path / "o"
    argv = FAST + ["--prompt", "x", "--out", str(out)]
    assert main(argv + ["--image", str(astronaut)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert main(argv + ["--image", str(other)]) == 2
    assert "references" in caplog.text and "Nothing was generated" in caplog.text
    caplog.clear()
    assert main(argv + ["--image", str(astronaut), "--seed", "7"]) == 2
    assert "000-x-s42: not part of this run" in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")} == before
    assert main(argv + ["--image", str(astronaut), "--seed", "7", "--overwrite"]) == 0
    assert sorted(p.name for p in out.glob("*.mp4")) == ["000-x-s7.mp4"]
