"""The encoders that fill a latent cache: the VAE (frames: latent mean and std; references: latent mean) and the
text encoder (captions), run in the cache's dtype exactly as `vm train` runs them on the fly."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClipEncoder:
    """Frozen VAE + text encoder + tokenizer on ``device`` in ``dtype``; ``batch_frames`` frames per VAE call."""

    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    device: torch.device | str
    dtype: torch.dtype
    batch_frames: int = 16

    def __post_init__(self) -> None:
        for module in (self.vae, self.text_encoder):
            module.requires_grad_(False).eval().to(self.device)  # loaded in self.dtype

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @torch.no_grad()
    def frames(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (N, 3, H, W) in [-1, 1] -> the VAE latent distribution's mean and std, (N, C, h, w) each, on the
        CPU in the cache's dtype (unscaled: training multiplies by the scaling factor after sampling)."""
        means, stds = [], []
        for chunk in pixels.split(max(1, self.batch_frames)):
            dist = self.vae.encode(chunk.to(self.device, dtype=self.dtype)).latent_dist
            means.append(dist.mean.cpu())
            stds.append(dist.std.cpu())
        return torch.cat(means), torch.cat(stds)

    @torch.no_grad()
    def references(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unaugmented references (K, 3, H, W) in [-1, 1] -> their latent means (K, C, h, w), unscaled (training
        encodes references without noise: :func:`vm_model.pipeline.encode_reference_images`)."""
        return torch.cat([self.vae.encode(chunk.to(self.device, dtype=self.dtype)).latent_dist.mean.cpu()
                          for chunk in pixels.split(max(1, self.batch_frames))])

    @torch.no_grad()
    def text(self, captions: list[str]) -> torch.Tensor:
        """Captions -> text-encoder outputs (B, L, D), tokenized as training tokenizes them."""
        from ..training.conditioning import encode_captions

        return encode_captions(self.tokenizer, self.text_encoder, captions, self.device).cpu()
