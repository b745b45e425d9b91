"""What a training step's batch becomes before the UNet: text embeddings, video latents, reference latents.

Two sources, the same numbers:

- :class:`OnTheFlyConditioning` encodes each batch (the text encoder for the captions, the VAE for the frames and
  the reference): the default.
- :class:`CachedConditioning` reads them from a batch of :class:`vm_model.latent_cache.dataset.CachedClipDataset`
  (`vm train --latent-cache`): the frames' latent mean and std, the reference's latent mean and the caption's
  embedding were encoded once by `vm cache-latents`. With reference augmentation on, the batch carries the
  augmented reference image instead and the VAE encodes it here.

Both sample the video latents with :func:`sample_video_latents` (one draw from the step's generator, the same shape
in both) and scale the reference mean the same way, so with the same generator they give the same latents.
"""

from __future__ import annotations

import torch


def encode_captions(tokenizer, text_encoder, captions: list[str], device) -> torch.Tensor:
    """Captions -> text-encoder outputs (B, L, D) (padded to the tokenizer's maximum length, truncated)."""
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


def sample_video_latents(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator,
                         scaling_factor: float) -> torch.Tensor:
    """``(mean + std * eps) * scaling_factor`` with ``eps`` drawn on the CPU from ``generator`` (shape of ``mean``)."""
    eps = torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)
    return (mean + std * eps) * scaling_factor


def _to_video_layout(latents: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """(B*F, C, h, w) -> (B, C, F, h, w) float32."""
    return latents.unflatten(0, (batch, frames)).permute(0, 2, 1, 3, 4).float()


class OnTheFlyConditioning:
    """Encode every batch of :class:`vm_data.dataset.VideoClipDataset` (``video``, ``reference``, ``caption``)."""

    def __init__(self, vae, text_encoder, tokenizer, device, dtype: torch.dtype):
        self.vae, self.text_encoder, self.tokenizer, self.device, self.dtype = vae, text_encoder, tokenizer, device, \
            dtype

    def text(self, batch: dict, drop_text: torch.Tensor) -> torch.Tensor:
        captions = ["" if d else c for c, d in zip(batch["caption"], drop_text.tolist())]
        return encode_captions(self.tokenizer, self.text_encoder, captions, self.device)

    def video_latents(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        video = batch["video"]  # (B, F, 3, H, W) in [-1, 1]
        bsz, frames = video.shape[:2]
        dist = self.vae.encode(video.flatten(0, 1).to(self.device, dtype=self.dtype)).latent_dist
        latents = sample_video_latents(dist.mean, dist.std, generator, self.vae.config.scaling_factor)
        return _to_video_layout(latents, bsz, frames)

    def reference_latents(self, batch: dict) -> torch.Tensor:
        """(B, C, 1, h, w); a multi-subject batch (``references`` (B, R, 3, H, W)): (B, C, R, h, w)."""
        from ..pipeline import encode_reference_images

        if "references" in batch:
            refs = batch["references"]
            latents = encode_reference_images(self.vae, refs.flatten(0, 1).to(self.device)).float()
            return _to_video_layout(latents, refs.shape[0], refs.shape[1])
        return encode_reference_images(self.vae, batch["reference"].to(self.device)).float().unsqueeze(2)


class CachedConditioning:
    """Batches of a latent cache: ``frame_mean`` / ``frame_std`` (B, F, C, h, w), ``text`` (B, L, D) and either
    ``reference_latent`` (B, C, h, w; augmentation off) or ``reference`` (B, 3, H, W image; augmentation on, encoded
    here by ``vae``). ``empty_text`` (L, D): the empty caption's embedding, for text dropout."""

    def __init__(self, empty_text: torch.Tensor, scaling_factor: float, device, vae=None):
        self.empty_text, self.scaling_factor, self.device, self.vae = empty_text, float(scaling_factor), device, vae

    def text(self, batch: dict, drop_text: torch.Tensor) -> torch.Tensor:
        rows = [self.empty_text if d else t for t, d in zip(batch["text"], drop_text.tolist())]
        return torch.stack(rows).to(self.device)

    def video_latents(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        mean, std = batch["frame_mean"], batch["frame_std"]
        bsz, frames = mean.shape[:2]
        latents = sample_video_latents(mean.flatten(0, 1).to(self.device), std.flatten(0, 1).to(self.device),
                                       generator, self.scaling_factor)
        return _to_video_layout(latents, bsz, frames)

    def reference_latents(self, batch: dict) -> torch.Tensor:
        if "reference_latent" in batch:
            return (batch["reference_latent"].to(self.device) * self.scaling_factor).float().unsqueeze(2)
        if self.vae is None:
            raise RuntimeError("an augmented reference image needs the VAE (augmentation on); none was loaded")
        from ..pipeline import encode_reference_images

        return encode_reference_images(self.vae, batch["reference"].to(self.device)).float().unsqueeze(2)
