"""Sampled-frame decoding (vm_data.video): exact frames, order, clips that end early, unreadable files."""

from __future__ import annotations

import numpy as np
import pytest

from vm_common.media import VideoReadError, read_video
from vm_data.synthetic import SyntheticSubject, render_frames
from vm_data.testing import write_video
from vm_data.video import read_frames, strided_indices, uniform_indices


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, _ = render_frames(60, 64, [SyntheticSubject(velocity=(0.02, 0.01))], seed=3)
    path = tmp_path_factory.mktemp("video") / "gop8.mp4"
    write_video(path, frames, fps=8, pix_fmt="yuv420p", gop=8)
    return path


def test_uniform_indices_are_segment_centres():
    assert uniform_indices(100, 4) == [12, 37, 62, 87]
    assert uniform_indices(3, 4) == [0, 1, 2]
    assert uniform_indices(0, 4) == []
    idx = uniform_indices(1000, 7)
    assert len(idx) == 7 and idx == sorted(idx) and idx[0] > 0 and idx[-1] < 999


def test_strided_indices_fit_or_raise():
    assert strided_indices(20, 4, 3, start=2) == [2, 5, 8, 11]
    with pytest.raises(ValueError, match="do not fit"):
        strided_indices(10, 4, 4)


def test_sampled_frames_equal_full_decode(clip):
    full = read_video(clip)
    wanted = [45, 3, 20, 3, 59, 21]  # any order, duplicates, neighbours and far jumps
    got = read_frames(clip, wanted)
    assert got.indices == wanted and not got.missing and got.warning is None
    for i, frame in zip(wanted, got.frames):
        np.testing.assert_array_equal(frame, full[i])


def test_sampled_frames_exact_with_one_keyframe_and_b_frames(tmp_path):
    # x264 defaults: one keyframe for the whole clip, B-frames (skipped while far from a wanted frame)
    frames, _ = render_frames(90, 64, [SyntheticSubject(velocity=(0.015, 0.0))], seed=4, noise=1.0)
    path = tmp_path / "long_gop.mp4"
    write_video(path, frames, fps=25, pix_fmt="yuv420p", options={"bf": "3"})
    full = read_video(path)
    wanted = [2, 40, 41, 70, 89]
    got = read_frames(path, wanted)
    assert got.indices == wanted and not got.missing
    for i, frame in zip(wanted, got.frames):
        np.testing.assert_array_equal(frame, full[i])


def test_frames_past_the_end_are_reported_missing(clip):
    got = read_frames(clip, [10, 200])
    assert got.indices == [10] and got.missing == [200]
    assert "could not be decoded" in got.warning


def test_unreadable_files_raise_naming_the_file(tmp_path):
    empty = tmp_path / "zero.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 50)
    for path in (empty, text, tmp_path / "absent.mp4"):
        with pytest.raises(VideoReadError, match=path.name):
            read_frames(path, [0])


def test_truncated_file_yields_what_it_can(tmp_path):
    frames, _ = render_frames(40, 64, [SyntheticSubject()], seed=1)
    whole = tmp_path / "whole.mp4"
    write_video(whole, frames, pix_fmt="yuv420p", container_options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    got = read_frames(cut, [0, 39])
    assert got.indices == [0] and got.missing == [39]
