"""The torch Dataset that vm_model's training reads: clips of a manifest with one augmented reference each.

Frame sampling rule: a clip needs ``span = (num_frames - 1) * frame_stride + 1`` frames. A clip with fewer frames
than that but at least ``num_frames`` uses the largest stride that fits, ``(n - 1) // (num_frames - 1)``. A clip
with fewer than ``num_frames`` frames cannot give a sample at all: it is left out when the dataset is built,
logged with a warning, and listed in :attr:`VideoClipDataset.skipped` with the reason. The start frame is drawn
uniformly among the positions where the span fits.

Determinism: everything random in a sample (start frame, which of the K references, the augmentation) comes from
one generator seeded with ``(seed, epoch, index)``; call :meth:`VideoClipDataset.set_epoch` each epoch.

Multi-subject manifests (schema 2, rows with ``subjects``): when a kept row has subjects, the dataset serves
multi-subject items. Every item then also has ``references`` (R, 3, H, W) in [-1, 1] (one reference per subject,
picked and augmented like the single reference, each with its own draw) and ``subject_masks`` (R, F, H, W) float in
[0, 1] (the subject's per-frame mask file, same frames, resized and cropped exactly like the video frames);
``reference`` is the first subject's. R is the subject count of the first such row; rows with another count (or
without subjects, or a subject without references or mask file) are left out and listed in ``skipped``, since a
batch needs one R.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from vm_common.config import ConfigError
from vm_common.media import VideoReadError, load_image, video_info
from vm_common.status import KEPT

from .augment import AugmentConfig, augment_reference, pick_reference
from .clip_manifest import SUBJECT_MASKS_KEY, ManifestError, ManifestRow, read_manifest
from .reference import pad_to_square
from .video import read_frames, strided_indices

logger = logging.getLogger(__name__)


def effective_stride(num_available: int, num_frames: int, frame_stride: int) -> int | None:
    """The stride used for a clip of ``num_available`` frames (None: the clip is too short for ``num_frames``)."""
    if num_available < num_frames:
        return None
    if num_frames <= 1:
        return max(1, frame_stride)
    return max(1, min(frame_stride, (num_available - 1) // (num_frames - 1)))


def _resize_cover(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize (N, 3, h, w) so that it covers height x width, then centre-crop."""
    import torch.nn.functional as F

    h, w = frames.shape[-2:]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    if (nh, nw) != (h, w):
        frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    return frames[..., top:top + height, left:left + width]


class VideoClipDataset(torch.utils.data.Dataset):
    """``kept`` clips of a manifest -> dicts with ``video`` (F, 3, H, W), ``reference`` (3, H, W), both float in
    [-1, 1], ``caption`` (str), ``clip_id`` (str), plus ``frame_indices`` and ``reference_path``."""

    def __init__(self, manifest_path: str | Path, num_frames: int = 16, frame_stride: int = 8,
                 resolution: int | tuple[int, int] = 512, augment: AugmentConfig | None = None, seed: int = 0):
        if num_frames < 1 or frame_stride < 1:
            raise ConfigError(f"num_frames and frame_stride must be >= 1, got {num_frames}, {frame_stride}")
        self.manifest_path = Path(manifest_path)
        self.base = self.manifest_path.parent
        self.num_frames, self.frame_stride = int(num_frames), int(frame_stride)
        self.height, self.width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        self.augment, self.seed, self.epoch = augment, int(seed), 0
        self.rows: list[ManifestRow] = []
        self.lengths: list[int] = []
        self.skipped: list[tuple[str, str]] = []
        self.num_subjects: int | None = None  # R of a multi-subject dataset (module docstring), else None
        rows = list(read_manifest(self.manifest_path, status=KEPT))
        for row in rows:
            if row.subjects:
                self.num_subjects = len(row.subjects)
                break
        for row in rows:
            if self.num_subjects is not None:
                reason = self._multi_subject_problem(row)
                if reason:
                    self.skipped.append((row.clip_id, reason))
                    continue
            n = row.num_frames
            if n is None:
                try:
                    n = video_info(row.resolve(row.video, self.base)).num_frames
                except VideoReadError as exc:
                    self.skipped.append((row.clip_id, f"unreadable video: {exc}"))
                    continue
            if not row.references:
                self.skipped.append((row.clip_id, "no reference images"))
                continue
            if effective_stride(n, self.num_frames, self.frame_stride) is None:
                self.skipped.append((row.clip_id, f"{n} frames < {self.num_frames} needed"))
                continue
            self.rows.append(row)
            self.lengths.append(int(n))
        if self.skipped:
            logger.warning("%s: %d kept clip(s) left out (first: %s: %s)", self.manifest_path, len(self.skipped),
                           *self.skipped[0])
        if not self.rows:
            raise ManifestError(f"{self.manifest_path}: no usable kept clips for {self.num_frames} frames "
                             f"({len(self.skipped)} left out)")

    def _multi_subject_problem(self, row: ManifestRow) -> str | None:
        if len(row.subjects) != self.num_subjects:
            return f"{len(row.subjects)} subjects; this multi-subject dataset trains on {self.num_subjects}-subject clips"
        for subject in row.subjects:
            if not subject.references:
                return f"subject {subject.name!r} has no reference images"
            if not subject.masks:
                return f"subject {subject.name!r} has no mask file"
        return None

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def generator(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def frame_indices(self, index: int, rng: np.random.Generator) -> list[int]:
        n = self.lengths[index]
        stride = effective_stride(n, self.num_frames, self.frame_stride)
        assert stride is not None
        span = (self.num_frames - 1) * stride + 1
        start = int(rng.integers(0, n - span + 1))
        return strided_indices(n, self.num_frames, stride, start)

    def video_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """Decoded frames (N, H, W, 3) uint8 -> (N, 3, height, width) float in [-1, 1], as training sees them (also
        what `vm cache-latents` encodes)."""
        tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        return _resize_cover(tensor, self.height, self.width).clamp_(0, 1).mul_(2).sub_(1)

    def reference_tensor(self, path: str | Path) -> torch.Tensor:
        """The reference image at ``path``, padded to a square (square training) and resized to cover the training
        size: (3, height, width) float in [0, 1], not yet augmented."""
        ref = np.asarray(load_image(path))
        ref = pad_to_square(ref) if self.height == self.width else ref
        ref_t = torch.from_numpy(np.array(ref, copy=True)).permute(2, 0, 1).float().div_(255.0)
        return _resize_cover(ref_t[None], self.height, self.width)[0].clamp_(0, 1)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} clips")
        row = self.rows[index]
        rng = self.generator(index)
        indices = self.frame_indices(index, rng)
        video_path = row.resolve(row.video, self.base)
        decoded = read_frames(video_path, indices)
        if decoded.missing:
            raise VideoReadError(f"clip {row.clip_id} ({video_path}): frames {decoded.missing[:8]} could not be "
                                 f"decoded ({decoded.warning}); the manifest says it has {self.lengths[index]} frames")
        video = self.video_tensor(decoded.frames)

        if self.num_subjects is not None:
            return self._multi_subject_item(row, rng, video, indices)
        ref_rel = pick_reference(row.references, rng)
        ref_path = row.resolve(ref_rel, self.base)
        ref_t = augment_reference(self.reference_tensor(ref_path), self.augment, rng).clamp_(0, 1).mul_(2).sub_(1)
        return {"video": video.contiguous(), "reference": ref_t.contiguous(), "caption": row.caption,
                "clip_id": row.clip_id, "frame_indices": indices, "reference_path": str(ref_path)}

    def subject_masks_tensor(self, row: ManifestRow, path: Path, indices: list[int]) -> torch.Tensor:
        """A subject's mask file at the sampled frames -> (F, height, width) float in [0, 1], resized and cropped
        like the frames (:meth:`video_tensor`)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if SUBJECT_MASKS_KEY not in data.files:
                    raise ManifestError(f"clip {row.clip_id}: mask file {path} has no array {SUBJECT_MASKS_KEY!r} "
                                        f"(has {data.files})")
                masks = data[SUBJECT_MASKS_KEY]
        except (OSError, ValueError) as exc:
            raise ManifestError(f"clip {row.clip_id}: cannot read mask file {path}: {exc}") from None
        if masks.ndim != 3 or max(indices) >= masks.shape[0]:
            raise ManifestError(f"clip {row.clip_id}: mask file {path} holds shape {masks.shape}; expected "
                                f"(num_frames, H, W) covering frame {max(indices)}")
        picked = torch.from_numpy((masks[indices] > 0).astype(np.float32))[:, None]  # (F, 1, h, w)
        return _resize_cover(picked, self.height, self.width)[:, 0].clamp_(0, 1)

    def _multi_subject_item(self, row: ManifestRow, rng: np.random.Generator, video: torch.Tensor,
                            indices: list[int]) -> dict:
        refs, masks, paths = [], [], []
        for subject in row.subjects:
            ref_path = row.resolve(pick_reference(subject.references, rng), self.base)
            refs.append(augment_reference(self.reference_tensor(ref_path), self.augment, rng)
                        .clamp_(0, 1).mul_(2).sub_(1))
            masks.append(self.subject_masks_tensor(row, row.resolve(subject.masks, self.base), indices))
            paths.append(str(ref_path))
        references = torch.stack(refs).contiguous()
        return {"video": video.contiguous(), "reference": references[0], "references": references,
                "subject_masks": torch.stack(masks).contiguous(), "caption": row.caption, "clip_id": row.clip_id,
                "frame_indices": indices, "reference_path": paths[0], "reference_paths": paths,
                "subject_names": [s.name for s in row.subjects]}


__all__ = ["VideoClipDataset", "effective_stride", "AugmentConfig"]
