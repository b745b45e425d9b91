"""Decode only the frames we need from a video (PyAV seeking), and choose which frames those are.

Decoding a whole clip to look at four frames wastes most of the time. :func:`read_frames` first reads the packet
index (no decoding) to find the keyframes; for each wanted frame it seeks to the keyframe at or before it - unless
the decoder already stands between that keyframe and the frame, where decoding on is never more work - decodes
forward to it (not decoding frames that no other frame references while still far from it) and converts only the
wanted frames to RGB. The gain depends on the keyframe interval: with a
keyframe every second or two (web video) it is large; with one keyframe per clip it is only the RGB conversion
of the unwanted frames and the frames after the last wanted one (see benchmarks/results/data_preprocess.md).

Frame ``i`` means the ``i``-th frame in presentation order, located from its timestamp:
``round((pts - start_time) * time_base * fps)``. Streams without timestamps fall back to counting decoded frames.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from vm_common.media import VideoReadError, open_video_container

logger = logging.getLogger(__name__)


@dataclass
class DecodedFrames:
    """Frames decoded for the requested indices (uint8 RGB, (N, H, W, 3)); ``missing`` lists indices not reached."""

    frames: np.ndarray
    indices: list[int]
    missing: list[int] = field(default_factory=list)
    warning: str | None = None


def uniform_indices(num_frames: int, k: int) -> list[int]:
    """``k`` frame indices at the centres of ``k`` equal segments of a ``num_frames``-frame clip (sorted, unique)."""
    if num_frames <= 0 or k <= 0:
        return []
    k = min(k, num_frames)
    return sorted({min(num_frames - 1, int((i + 0.5) * num_frames / k)) for i in range(k)})


def strided_indices(num_frames: int, count: int, stride: int, start: int = 0) -> list[int]:
    """``count`` indices ``start, start+stride, ...``; raises when they do not fit in the clip."""
    last = start + (count - 1) * stride
    if count <= 0 or stride <= 0 or start < 0 or last >= num_frames:
        raise ValueError(f"{count} frames with stride {stride} from frame {start} do not fit in {num_frames} frames")
    return list(range(start, last + 1, stride))


def read_frames(path: str | os.PathLike, indices: Sequence[int], *, seek_gap: int | None = None,
                threads: int = 0) -> DecodedFrames:
    """Decode the frames at ``indices`` (any order, duplicates allowed) from ``path``.

    Returns them in the order asked. A file that ends early (truncated) yields the frames reached and lists the
    others in ``missing``; a file that yields none raises :class:`VideoReadError` naming the file.
    ``seek_gap``: when the packets show no keyframes, how many frames ahead of the current position a target must
    be to seek rather than decode forward (default: one second of video, at least 8 frames); it also bounds how far
    past a wanted frame (variable frame rate) the next decoded frame may stand in for it (a quarter of it).
    ``threads``: decoder threads (0 = library default).
    """
    path = Path(path)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise ValueError("read_frames: no frame indices given")
    if wanted[0] < 0:
        raise ValueError(f"read_frames: negative frame index {wanted[0]} for {path}")
    container = open_video_container(path)
    got: dict[int, np.ndarray] = {}
    warning = None
    try:
        stream = container.streams.video[0]
        if threads:
            stream.thread_count = threads
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        tb = float(stream.time_base) if stream.time_base else 0.0
        start = int(stream.start_time or 0)
        gap = seek_gap if seek_gap is not None else max(8, int(round(fps)))
        try:
            got = None
            if fps > 0 and tb > 0:
                try:
                    got = _read_by_seeking(container, stream, wanted, fps, tb, start, gap)
                except _NoTimestamps:
                    stream.codec_context.skip_frame = "DEFAULT"
                    container.seek(0)
            if got is None:
                got = _read_sequential(container, wanted)
        except Exception as exc:  # corrupt data part-way through: keep what was decoded
            if isinstance(exc, VideoReadError):
                raise
            warning = f"decoding stopped early ({type(exc).__name__}: {exc}); the file is truncated or corrupt"
            logger.warning("%s: %s", path, warning)
            got = getattr(exc, "partial", got)
    finally:
        container.close()
    if not got:
        raise VideoReadError(f"no decodable frame at indices {wanted[:8]} in {path}" + (f": {warning}" if warning else ""))
    missing = [i for i in wanted if i not in got]
    if missing and warning is None:
        warning = (f"frames {missing[:8]} could not be decoded: the stream ends early (truncated or corrupt file, "
                   f"or a frame count in the header that is too large); last frame decoded: {max(got)}")
    order = [int(i) for i in indices if int(i) in got]
    frames = np.stack([got[i] for i in order])
    return DecodedFrames(frames=frames, indices=order, missing=missing, warning=warning)


class _NoTimestamps(Exception):
    pass


class _PartialRead(Exception):
    def __init__(self, cause: BaseException, partial: dict[int, np.ndarray]):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.partial = partial


NONREF_MARGIN = 24  # frames before a wanted frame from which every frame is decoded again


def _keyframes(container, stream) -> list[int]:
    """Timestamps (pts) of the keyframes, from one pass over the packets (no decoding; milliseconds per clip)."""
    return sorted({p.pts for p in container.demux(stream) if p.is_keyframe and p.pts is not None})


def _read_by_seeking(container, stream, wanted: list[int], fps: float, tb: float, start: int,
                     gap: int) -> dict[int, np.ndarray]:
    """Decode ``wanted`` (sorted) frames. For each target, seek to the keyframe at or before it unless the decoder
    is already between that keyframe and the target (then decoding on is never more work than seeking)."""
    got: dict[int, np.ndarray] = {}
    pending = list(wanted)
    frame_iter = None
    position = -1  # index of the last decoded frame

    def index_of_pts(pts: int) -> int:
        return int(round((pts - start) * tb * fps))

    def ts_of(index: float) -> int:
        return start + int(math.floor(max(0.0, index / fps) / tb))

    try:
        key_pts = _keyframes(container, stream)
    except Exception:  # noqa: BLE001 - an unreadable packet index: fall back to seeking blindly
        key_pts = []
    keyframes = [(index_of_pts(p), p) for p in key_pts]
    context = stream.codec_context
    skipping = [False]
    # frame threading delays output by up to one frame per thread: keep the margin above that
    margin = NONREF_MARGIN + max(int(context.thread_count or 0), os.cpu_count() or 1)

    def skip_nonref(on: bool) -> None:
        # Frames no other frame depends on (most B-frames) need not be decoded until we come close to a wanted
        # frame; far enough ahead (``margin``) that decoder threads and frame reordering cannot reach it.
        if on != skipping[0]:
            try:
                context.skip_frame = "NONREF" if on else "DEFAULT"
                skipping[0] = on
            except Exception:  # noqa: BLE001 - a codec without skip support decodes everything
                pass

    try:
        while pending:
            target = pending[0]
            if keyframes:
                before = [k for k in keyframes if k[0] <= target]
                key, seek_to = before[-1] if before else keyframes[0]
                must_seek = frame_iter is None or position < key - 1 or position >= target
            else:
                must_seek = frame_iter is None or target > position + gap or position >= target
                seek_to = ts_of(target - 0.5)
            if must_seek:
                container.seek(seek_to, stream=stream, backward=True, any_frame=False)
                frame_iter = container.decode(stream)
                position = key - 1 if keyframes else position
            skip_nonref(target - position > margin)
            reached = False
            for frame in frame_iter:
                if frame.pts is None:
                    raise _NoTimestamps()
                idx = index_of_pts(frame.pts)
                position = idx
                if skipping[0] and idx >= target - margin:
                    skip_nonref(False)
                if idx >= target:
                    # the wanted frame, or the first one after it when timestamps skip (variable frame rate)
                    while pending and pending[0] <= idx:
                        if idx - pending[0] <= max(1, gap // 4):
                            got[pending[0]] = frame.to_ndarray(format="rgb24")
                        pending.pop(0)
                    reached = True
                    break
            if not reached:
                return got  # the stream ended: the remaining targets lie beyond its last frame
    except (_PartialRead, _NoTimestamps):
        raise
    except Exception as exc:
        raise _PartialRead(exc, got) from exc
    return got


def _read_sequential(container, wanted: list[int]) -> dict[int, np.ndarray]:
    got: dict[int, np.ndarray] = {}
    targets = set(wanted)
    last = wanted[-1]
    try:
        for i, frame in enumerate(container.decode(video=0)):
            if i in targets:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    except Exception as exc:
        raise _PartialRead(exc, got) from exc
    return got


def read_all_frames(path: str | os.PathLike) -> np.ndarray:
    """Decode every frame (the baseline the benchmark compares :func:`read_frames` with)."""
    from vm_common.media import read_video

    return read_video(path)
