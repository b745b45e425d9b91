"""The training dataset over a latent cache: the samples :class:`vm_data.dataset.VideoClipDataset` would give, read
from the cache instead of decoded and encoded.

It draws from the clip dataset's own per-sample generator in the same order (start frame, which of the K references,
the augmentation), so a cached run sees the same windows and references as an on-the-fly run with the same seed.
Augmentation off: the reference's cached latent mean. Augmentation on: the reference image, augmented as the clip
dataset augments it (the VAE encodes it during the step).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from vm_data.augment import augment_reference, pick_reference
from vm_data.dataset import VideoClipDataset

from .settings import LatentCacheError
from .store import EMPTY_TEXT, FRAME_INDICES, FRAME_MEAN, FRAME_STD, REFERENCE_MEAN, TEXT, clip_digest

logger = logging.getLogger(__name__)


class CachedClipDataset(torch.utils.data.Dataset):
    """``clips``' samples from the cache at ``root`` (its ``index``): dicts with ``frame_mean`` / ``frame_std``
    (F, C, h, w), ``text`` (L, D), ``caption``, ``clip_id``, ``frame_indices`` and ``reference_latent`` (C, h, w)
    or, with ``clips.augment`` on, ``reference`` (3, H, W) in [-1, 1]."""

    def __init__(self, clips: VideoClipDataset, root: str | Path, index: dict):
        self.clips, self.root = clips, Path(root)
        entries = index.get("clips") or {}
        self.files: list[Path] = []
        stale = []
        for row, length in zip(clips.rows, clips.lengths):
            entry = entries.get(row.clip_id)
            if not entry or entry.get("clip") != clip_digest(row, length):
                stale.append(row.clip_id)
                continue
            self.files.append(self.root / entry["file"])
        if stale:
            raise LatentCacheError(
                f"{len(stale)} of the {len(clips.rows)} clip(s) of {clips.manifest_path} are not in the latent cache "
                f"{root}, or changed since it was made (first: {stale[0]}); make the cache from this manifest "
                f"(`vm cache-latents --data {clips.manifest_path} ... --resume` adds and re-encodes them)")
        self.augment = clips.augment is not None and getattr(clips.augment, "enabled", True)

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.clips.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        from safetensors import safe_open

        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} clips")
        row, clips = self.clips.rows[index], self.clips
        rng = clips.generator(index)
        indices = clips.frame_indices(index, rng)
        choice = pick_reference(range(len(row.references)), rng)  # the draw VideoClipDataset makes
        sample = {"caption": row.caption, "clip_id": row.clip_id, "frame_indices": indices}
        with safe_open(str(self.files[index]), framework="pt") as fh:
            stored = {int(f): i for i, f in enumerate(fh.get_tensor(FRAME_INDICES).tolist())}
            missing = [f for f in indices if f not in stored]
            if missing:
                raise LatentCacheError(f"{self.files[index]}: frames {missing[:8]} of clip {row.clip_id} are not "
                                       f"cached (a cache made for other frame settings?)")
            for name in (FRAME_MEAN, FRAME_STD):
                rows = fh.get_slice(name)
                sample[name] = torch.cat([rows[stored[f]:stored[f] + 1] for f in indices])
            sample[TEXT] = fh.get_tensor(TEXT)
            if not self.augment:
                sample["reference_latent"] = fh.get_slice(REFERENCE_MEAN)[choice:choice + 1][0]
        if self.augment:
            image = clips.reference_tensor(row.resolve(row.references[choice], clips.base))
            sample["reference"] = augment_reference(image, clips.augment, rng).clamp_(0, 1).mul_(2).sub_(1)
        return sample

    @staticmethod
    def collate(items: list[dict]) -> dict:
        """Stack the tensors of a batch; captions, ids and frame indices as lists."""
        out = {}
        for key in items[0]:
            values = [it[key] for it in items]
            out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
        return out


def load_empty_text(root: str | Path) -> torch.Tensor:
    """The empty caption's embedding (L, D) stored with the cache (text dropout)."""
    from safetensors.torch import load_file

    path = Path(root) / EMPTY_TEXT
    if not path.is_file():
        raise LatentCacheError(f"{path} is missing; make the cache again with `vm cache-latents`")
    return load_file(str(path))[TEXT]
