"""SDPA layout probe: the PISA concat attention call of the largest spatial layer on 5-D tensors
(B, F, heads, 2N, d), the layout ``vm_model/pisa.py`` passed to SDPA before commit c8edbe1, against the same
tensors flattened to 4-D (B*F, heads, 2N, d), its layout since; with the backend each call takes."""

from __future__ import annotations

import functools

import torch

from benchmarks.harness.device import sync
from benchmarks.harness.flops import AttentionRecorder
from benchmarks.harness.timing import side_by_side
from benchmarks.pisa.model import model_configs


def attention_calls_text(counts: dict[str, int]) -> str:
    """``sdpa_flash_attention x16, bmm x2`` (or ``none``)."""
    return ", ".join(f"{k} x{n}" for k, n in counts.items()) or "none"


def sdpa_layout_probe(preset: str, frames: int, resolution: int, device: str, dtype: torch.dtype,
                      repeats: int) -> dict:
    """Median time of each layout over ``repeats`` interleaved repeats, the backends taken, and the slowdown of
    5-D over 4-D."""
    unet_cfg, _, _ = model_configs(preset)
    channels = unet_cfg["block_out_channels"][0]
    heads = unet_cfg["attention_head_dim"]  # diffusers: num_attention_heads defaults to attention_head_dim
    tokens = (resolution // 8) ** 2
    g = torch.Generator().manual_seed(3)
    shape = (1, frames, heads, 2 * tokens, channels // heads)
    q, k, v = (torch.randn(shape, generator=g).to(device, dtype) for _ in range(3))
    layouts = {"5d_as_pisa": (q, k, v), "4d_flattened": (q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1))}
    calls = {name: functools.partial(torch.nn.functional.scaled_dot_product_attention, *args)
             for name, args in layouts.items()}
    ops: dict[str, dict[str, int]] = {}
    with torch.inference_mode():
        for name, call in calls.items():
            recorder = AttentionRecorder()
            with recorder:
                call()
            ops[name] = recorder.sorted_counts()
        runs = side_by_side(calls, repeats, sync=lambda: sync(device), label="sdpa probe")
    med = runs.medians()
    return dict(shape=list(shape), raw_s=runs.wall_s, median_s=med, ops=ops,
                slowdown_5d_vs_4d=med["5d_as_pisa"] / med["4d_flattened"])


def render_section(probe: dict) -> list[str]:
    """The markdown section of a probe result."""
    return ["## SDPA layout probe", "",
            f"The PISA concat attention call of the largest spatial layer, q/k/v of shape {tuple(probe['shape'])} "
            "(B, F, heads, 2N, d), the layout `vm_model/pisa.py` passed to SDPA before commit c8edbe1, vs the "
            "same tensors flattened to 4-D (B*F, heads, 2N, d), its layout since: median "
            f"{probe['median_s']['5d_as_pisa']:.3f} s vs "
            f"{probe['median_s']['4d_flattened']:.3f} s ({probe['slowdown_5d_vs_4d']:.1f}x). "
            f"Backends: 5-D {attention_calls_text(probe['ops']['5d_as_pisa'])}; "
            f"4-D {attention_calls_text(probe['ops']['4d_flattened'])}."]
