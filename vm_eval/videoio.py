"""Strict video reading for scoring: a file that does not decode completely is an error, never partly scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vm_common.media import VideoInfo, VideoReadError, video_info


def read_video_strict(path: str | Path) -> np.ndarray:
    """uint8 RGB frames (F, H, W, 3); VideoReadError (naming the file) if missing, empty, not a video, or truncated."""
    return read_video_with_info(path)[0]


def read_video_with_info(path: str | Path) -> tuple[np.ndarray, VideoInfo]:
    """As :func:`read_video_strict`, with the container's :class:`VideoInfo` (frame rate, declared frame count)."""
    import av

    path = Path(path)
    info = video_info(path)  # raises VideoReadError for missing / empty / directory / no video stream
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
    except Exception as exc:
        raise VideoReadError(f"truncated or corrupt video {path}: decoding failed after {len(frames)} frames "
                             f"({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise VideoReadError(f"video has no decodable frames: {path}")
    if info.num_frames and len(frames) < info.num_frames:
        raise VideoReadError(f"truncated video {path}: decoded {len(frames)} of the {info.num_frames} frames "
                             f"its header declares")
    return np.stack(frames), info
