"""What a latent cache was made with, and the check that a training run may use it.

The settings are computed from the model folders (their ``config.json``), never by loading a model, so that
`vm train --latent-cache` can compare them before it loads anything. They name the VAE (source, folder, config
digest, scaling factor), the text encoder (source, config digest, tokenizer config digest), the training
resolution, frames per clip, frame stride and the dtype the encoders ran in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vm_common.errors import UserError
from vm_common.fingerprint import digest

from ..sources import ModelSources, builtin_name

# --dtype of `vm cache-latents` <-> the dtype `vm train` encodes in (its --mixed-precision)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MIXED_PRECISION_DTYPE = {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}
# config keys that say which library version wrote the file, not what the model is
_VERSION_KEYS = ("_name_or_path", "_diffusers_version", "transformers_version", "_commit_hash")
DEFAULT_SCALING_FACTOR = 0.18215  # diffusers' AutoencoderKL default (SD 1.x)


class LatentCacheError(UserError, ValueError):
    """A latent cache cannot be used (missing, incomplete, not a cache, clips missing); the message says why."""


class LatentCacheMismatch(LatentCacheError):
    """The cache was made with other settings than the training run's; the message names each difference."""


def dtype_name(dtype: torch.dtype) -> str:
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"no latent-cache dtype for {dtype}; use one of {sorted(DTYPES)}")


def normalized_source(source: str | None) -> str | None:
    """A source as recorded: built-ins and hub ids as given, an existing local path absolute."""
    if not source or builtin_name(source):
        return source
    path = Path(source).expanduser()
    return os.path.abspath(path) if path.exists() else source


def _config_digest(path: Path) -> str:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as exc:
        raise LatentCacheError(f"{path} is unreadable ({exc})") from None
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k not in _VERSION_KEYS}
    return digest(config)


def _scaling_factor(vae_dir: Path) -> float:
    try:
        config = json.loads((vae_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_SCALING_FACTOR
    return float(config.get("scaling_factor", DEFAULT_SCALING_FACTOR)) if isinstance(config, dict) \
        else DEFAULT_SCALING_FACTOR


def cache_settings(sources: ModelSources, *, resolution: int, num_frames: int, frame_stride: int,
                   dtype: str) -> dict[str, Any]:
    """The settings a cache made (or used) with these sources and shapes records, as JSON-ready data."""
    from ..components import component_path, vae_folder

    if dtype not in DTYPES:
        raise ValueError(f"latent-cache dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    vae_dir = vae_folder(sources)
    text_dir = component_path(sources.base_model, "base_model", "base text encoder", subfolder="text_encoder")
    tok_dir = component_path(sources.base_model, "base_model", "base tokenizer", subfolder="tokenizer")
    return {
        "resolution": int(resolution), "num_frames": int(num_frames), "frame_stride": int(frame_stride),
        "dtype": dtype,
        "vae": {"source": normalized_source(sources.vae or sources.base_model),
                "subfolder": None if sources.vae else "vae", "config": _config_digest(vae_dir / "config.json"),
                "scaling_factor": _scaling_factor(vae_dir)},
        "text_encoder": {"source": normalized_source(sources.base_model), "subfolder": "text_encoder",
                         "config": _config_digest(text_dir / "config.json"),
                         "tokenizer_config": _config_digest(tok_dir / "tokenizer_config.json")},
    }


def settings_digest(settings: dict[str, Any]) -> str:
    return digest(settings)


# what each setting is called in a message, and the flag that changes it in `vm train`
_LABELS = {
    "resolution": ("resolution", "--resolution"), "num_frames": ("frames per clip", "--num-frames"),
    "frame_stride": ("frame stride", "--frame-stride"), "dtype": ("dtype", "--mixed-precision"),
    "vae.source": ("VAE", "--vae / --base-model"), "vae.subfolder": ("VAE folder", "--vae"),
    "vae.config": ("VAE config", "--vae / --base-model"), "vae.scaling_factor": ("VAE scaling factor", "--vae"),
    "text_encoder.source": ("text encoder", "--base-model"),
    "text_encoder.config": ("text encoder config", "--base-model"),
    "text_encoder.tokenizer_config": ("tokenizer config", "--base-model"),
}


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def mismatches(cached: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``what: cache X, this run Y`` for each setting that differs (every key of either side)."""
    a, b = _flat(cached or {}), _flat(wanted)
    out = []
    for key in [k for k in _LABELS if k in a or k in b] + sorted((set(a) | set(b)) - set(_LABELS)):
        if a.get(key) != b.get(key):
            label = _LABELS.get(key, (key, None))[0]
            out.append(f"{label}: cache {a.get(key)}, this run {b.get(key)}")
    return out


def check_settings(cache_dir: str | Path, cached: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse (:class:`LatentCacheMismatch`, one line) a cache whose settings differ from the run's."""
    diffs = mismatches(cached, wanted)
    if diffs:
        flags = sorted({_LABELS[k][1] for k in _LABELS if _flat(cached or {}).get(k) != _flat(wanted).get(k)})
        raise LatentCacheMismatch(
            f"--latent-cache {cache_dir} was made with other settings ({'; '.join(diffs)}): train with the cache's "
            f"settings ({', '.join(flags)}) or make a cache with this run's (`vm cache-latents` with the same "
            f"--preset/--base-model/--vae, --resolution, --num-frames, --frame-stride and --dtype)")
