"""Cached latents: every kept clip of a manifest encoded once, so that `vm train --latent-cache` needs neither the
VAE nor the text encoder (issue 12 §1).

`vm cache-latents` (:mod:`vm_model.cache_latents`) writes the cache; ``vm train --latent-cache DIR`` reads it.
The parts, one job each:

- :mod:`.settings`: what a cache was made with (resolution, frames, stride, dtype, VAE and text encoder with their
  config digests), computed from the model folders without loading a model, and the one-line refusal naming what
  differs from a training run's settings.
- :mod:`.store`: the folder layout, the per-clip safetensors files and ``index.json``.
- :mod:`.encoder`: the VAE and text encoder that fill a clip's file.
- :mod:`.dataset`: the training dataset over a cache; it draws exactly what :class:`vm_data.dataset.VideoClipDataset`
  draws (window, reference, augmentation), so a cached run trains on the same samples as an on-the-fly one.

Format (version 1), ``DIR/``::

    index.json                   format, version, complete, settings (+ digest), manifest, clips, failed, config
    empty_text.safetensors       "text": the empty caption's embedding (L, D) (text dropout)
    clips/<hh>/<id>-<hash>.safetensors   one file per kept clip
    shards/latents-NNNNN.jsonl   per-process log of the clips each run encoded

A clip file holds ``frame_indices`` (N,) int64: the clip's frames that any training window can contain (every
frame, unless the clip is so short that some frames are never sampled), ``frame_mean`` and ``frame_std``
(N, C, h, w): the VAE's latent distribution per frame, unscaled (training samples ``(mean + std * eps) *
scaling_factor`` with its own generator, exactly as the on-the-fly path does), ``reference_mean`` (K, C, h, w):
the latent mean of each of the clip's K unaugmented references (training uses the mean), and ``text`` (L, D): the
caption's text-encoder output; all in the cache's dtype. Its metadata (JSON values) names the format, the clip id,
the settings digest and a digest of the manifest row it was made from (video, references, caption, frame count).
"""

from .settings import LatentCacheError, LatentCacheMismatch

__all__ = ["LatentCacheError", "LatentCacheMismatch"]
