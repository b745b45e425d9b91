"""vm_common: image conversions, video I/O errors, atomic JSONL, configuration layers."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vm_common.config import add_dataclass_arguments, build_config
from vm_common.io_utils import append_jsonl, read_jsonl, repair_jsonl
from vm_common.media import ImageLoadError, VideoReadError, load_image, read_video, video_info, write_gif, write_mp4


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    image = Image.fromarray(arr)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)
    loaded = np.asarray(load_image(path))
    assert loaded.shape == (40, 20, 3)  # displayed orientation
    assert loaded[:18].mean() > 200 and loaded[22:].mean() < 50  # the white half is now on top


def test_rgba_is_composited_on_white_and_16bit_scaled(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top opaque red, bottom transparent
    out = np.asarray(load_image(rgba))
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[3, 3]) == (255, 255, 255)
    deep = np.full((4, 4), 65535, np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert np.asarray(load_image(tmp_path / "deep.png")).min() == 255
    gray = np.asarray(load_image(np.full((3, 3), 7, np.uint8)))
    assert gray.shape == (3, 3, 3) and gray.max() == 7


@pytest.mark.parametrize("content, match", [(None, "not found"), (b"", "cannot read"), (b"garbage", "cannot read")])
def test_bad_images(tmp_path, content, match):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=match):
        load_image(path)


def test_video_roundtrip_and_bad_videos(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    write_mp4(tmp_path / "v.mp4", frames, fps=8)
    write_gif(tmp_path / "v.gif", frames, fps=8)
    for name in ("v.mp4", "v.gif"):
        back = read_video(tmp_path / name)
        assert back.shape == (6, 32, 48, 3)
    info = video_info(tmp_path / "v.mp4")
    assert (info.num_frames, info.width, info.height) == (6, 48, 32)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("hello")
    with pytest.raises(VideoReadError, match="text.mp4"):
        read_video(tmp_path / "text.mp4")
    with pytest.raises(VideoReadError, match="not found"):
        read_video(tmp_path / "missing.mp4")


def test_jsonl_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}, {"a": 2}])
    with open(path, "a") as fh:
        fh.write('{"a": 3, "b"')  # a writer killed mid-line
    assert [r["a"] for r in read_jsonl(path)] == [1, 2]
    assert repair_jsonl(path) == 2
    append_jsonl(path, [{"a": 4}])
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 4]


@dataclass
class _Cfg:
    steps: int = 10
    name: str = "a"
    flag: bool = True
    sizes: tuple[int, ...] = (1, 2)
    out: Path | None = field(default=None, metadata={"help": "where"})


def test_config_layers(tmp_path):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, _Cfg)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("steps: 20\nname: from-yaml\n")
    args = parser.parse_args(["--name", "from-flag", "--no-flag", "--sizes", "3", "4"])
    cfg = build_config(_Cfg, args, yaml_file, base={"steps": 15, "name": "base"})
    assert cfg == _Cfg(steps=20, name="from-flag", flag=False, sizes=(3, 4))
    yaml_file.write_text("stepz: 1\n")
    with pytest.raises(ValueError, match="stepz"):
        build_config(_Cfg, parser.parse_args([]), yaml_file)
