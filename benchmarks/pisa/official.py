"""The official release's way of computing PISA, written from docs/model.md for cost comparison only.

The release repeats the reference tokens next to every generated frame, projects q/k/v of the repeated
``[frame i ; reference]`` sequence (2N tokens per frame, so the reference is projected F times), runs one attention
per frame over the 2N tokens, and returns for the reference the mean of its F copies. The result equals
``vm_model.pisa`` (concat) to float tolerance (tests/test_bench_pisa_official.py); only the cost differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class RepeatedReferencePISA:
    """Spatial ``attn1`` processor: the official release's layout (one reference frame, the last of each sample)."""

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, vm_num_frames: int | None = None, vm_num_references: int = 0) -> torch.Tensor:
        if not vm_num_references:
            return _plain(attn, hidden_states)
        if vm_num_references != 1:
            raise ValueError("the official layout supports exactly one reference frame")
        total = int(vm_num_frames)
        frames = total - 1
        rows, tokens, channels = hidden_states.shape
        x = hidden_states.view(rows // total, total, tokens, channels)
        video, ref = x[:, :frames], x[:, frames:]
        paired = torch.cat([video, ref.expand(-1, frames, -1, -1)], dim=2)  # (B, F, 2N, C)
        paired = paired.reshape(-1, 2 * tokens, channels)
        out = _plain(attn, paired).view(-1, frames, 2 * tokens, channels)
        video_out = out[:, :, :tokens]
        ref_out = out[:, :, tokens:].mean(dim=1, keepdim=True)
        return torch.cat([video_out, ref_out], dim=1).reshape(rows, tokens, channels)


class ReferenceKwargsCrossAttention:
    """Stock cross-attention that accepts (and ignores) the per-call reference kwargs."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 vm_num_frames: int | None = None, vm_num_references: int = 0):
        return _plain(attn, hidden_states, encoder_hidden_states)


def _plain(attn, hidden_states: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """diffusers' stock attention for (B, L, C) input without masks or norms (what SD1.5's spatial layers use)."""
    context = hidden_states if context is None else context
    batch = hidden_states.shape[0]
    heads = attn.heads
    q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
    d = q.shape[-1] // heads
    q, k, v = (t.view(batch, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    out = out.transpose(1, 2).reshape(batch, -1, heads * d).to(q.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    return out / attn.rescale_output_factor if attn.rescale_output_factor != 1.0 else out


def install_official_layout(unet) -> None:
    """Put the official layout on the spatial attention layers (motion modules unchanged)."""
    from vm_model.pisa import spatial_cross_attention_names, spatial_self_attention_names

    processors = dict(unet.attn_processors)
    for name in spatial_self_attention_names(unet):
        processors[name] = RepeatedReferencePISA()
    for name in spatial_cross_attention_names(unet):
        processors[name] = ReferenceKwargsCrossAttention()
    unet.set_attn_processor(processors)
