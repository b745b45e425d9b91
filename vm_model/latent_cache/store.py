"""The latent cache on disk: folder layout, per-clip safetensors files and ``index.json`` (format: see
:mod:`vm_model.latent_cache`).

Every file is written atomically (a temporary file renamed into place), so a clip file that exists is complete;
whether it is *current* is told by its metadata: the settings digest and the digest of the manifest row it was
made from (:func:`clip_digest`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from vm_common.io_utils import atomic_write_json
from vm_common.safe_names import path_inside, safe_component

from .settings import LatentCacheError

FORMAT = "vm-latent-cache"
VERSION = 1
INDEX = "index.json"
CLIPS_DIR = "clips"
EMPTY_TEXT = "empty_text.safetensors"
SHARD_KIND = "latents"  # shards/latents-NNNNN.jsonl
STATE_NAMES = (INDEX, EMPTY_TEXT, CLIPS_DIR, "shards")  # what --overwrite removes

# tensors of a clip file
FRAME_INDICES, FRAME_MEAN, FRAME_STD, REFERENCE_MEAN, TEXT = ("frame_indices", "frame_mean", "frame_std",
                                                              "reference_mean", "text")


def clip_relpath(clip_id: str) -> str:
    """Where a clip's file lives under the cache folder: ``clips/<hh>/<safe id>-<hash>.safetensors`` (the hash of
    the raw id keeps ids that sanitise alike apart; ``hh`` spreads files over 256 folders)."""
    h = hashlib.sha256(clip_id.encode("utf-8")).hexdigest()
    return f"{CLIPS_DIR}/{h[:2]}/{safe_component(clip_id, 'clip')[:80]}-{h[:12]}.safetensors"


def clip_path(root: str | Path, clip_id: str) -> Path:
    return path_inside(root, clip_relpath(clip_id))


def clip_digest(row, num_frames: int) -> str:
    """Digest of what a clip's latents are made from: the manifest row's video, references, caption and length."""
    from vm_common.fingerprint import digest

    return digest({"video": row.video, "references": list(row.references), "caption": row.caption,
                   "num_frames": int(num_frames)})


def sampleable_frames(num_available: int, num_frames: int, frame_stride: int) -> list[int]:
    """Every frame some training window can contain: the union over start frames of ``start + k * stride``, with
    the stride and start range of :class:`vm_data.dataset.VideoClipDataset` (all frames unless the clip is short)."""
    from vm_data.dataset import effective_stride

    stride = effective_stride(num_available, num_frames, frame_stride)
    if stride is None:
        return []
    starts = num_available - (num_frames - 1) * stride  # start frames 0 .. starts - 1
    if starts >= stride:  # every residue of the stride has a start: every frame can be sampled
        return list(range(num_available))
    return sorted({start + k * stride for start in range(starts) for k in range(num_frames)})


def write_clip(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """One clip's file, atomically (never half-written)."""
    from ..training.files import save_tensors

    return save_tensors(tensors, path, {"format": FORMAT, "version": VERSION, **metadata})


def read_clip_metadata(path: Path) -> dict[str, Any] | None:
    """A clip file's metadata (JSON values decoded), or None when the file is missing or unreadable."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
        return {k: json.loads(v) for k, v in raw.items()}
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a torn or foreign file: not current, encode it again
        return None


def is_current(path: Path, settings_digest: str, clip: str) -> bool:
    """True when ``path`` holds a complete clip file made with these settings from this manifest row."""
    meta = read_clip_metadata(path)
    return bool(meta) and meta.get("format") == FORMAT and meta.get("version") == VERSION \
        and meta.get("settings") == settings_digest and meta.get("clip") == clip


def write_index(root: Path, index: dict[str, Any]) -> Path:
    return atomic_write_json(root / INDEX, {"format": FORMAT, "version": VERSION, **index})


def read_index(root: str | Path, *, complete: bool = True) -> dict[str, Any]:
    """``root/index.json`` checked to be a latent cache of this version (and, with ``complete``, finished)."""
    path = Path(root) / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LatentCacheError(f"{root} is not a latent cache (no {INDEX}); make one with `vm cache-latents`") \
            from None
    except (OSError, ValueError) as exc:
        raise LatentCacheError(f"{path} is unreadable ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise LatentCacheError(f"{path} is not a latent-cache index (format {FORMAT!r} expected)")
    if index.get("version") != VERSION:
        raise LatentCacheError(f"{path} is format version {index.get('version')}; this toolkit reads version "
                               f"{VERSION}: make the cache again with `vm cache-latents`")
    if complete and not index.get("complete"):
        raise LatentCacheError(f"the latent cache {root} is incomplete (its run was interrupted or some clips "
                               f"failed); finish it with `vm cache-latents ... --resume`")
    return index


def open_for_training(root: str | Path, wanted: dict[str, Any]) -> dict[str, Any]:
    """The index of a finished cache at ``root`` whose settings equal ``wanted`` (the training run's, from
    :func:`~vm_model.latent_cache.settings.cache_settings`); :class:`LatentCacheError` /
    :class:`~vm_model.latent_cache.settings.LatentCacheMismatch` (one line naming each difference) otherwise."""
    from .settings import check_settings

    index = read_index(root, complete=True)
    check_settings(root, index.get("settings") or {}, wanted)
    return index
