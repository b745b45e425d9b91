"""FLOP counting and a record of which attention kernels ran.

:func:`flop_counter` is ``torch.utils.flop_counter.FlopCounterMode`` plus a formula for PyTorch's CPU
flash-attention kernel, which its registry lacks (so CPU runs of executed ops count attention too; meta-device
runs do not need it). :class:`AttentionRecorder` counts the backend each ``F.scaled_dot_product_attention`` call
takes and the explicit ``bmm`` / ``baddbmm`` calls.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def _cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter():
    """A FlopCounterMode (no printed table) that also counts ``_scaled_dot_product_flash_attention_for_cpu``."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = _cpu_flash_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def sdpa_backend(args, kwargs) -> str:
    """The backend PyTorch picks for an SDPA call (``torch._fused_sdp_choice``; ``math`` is the unfused fallback)."""
    try:
        from torch.nn.attention import SDPBackend

        return SDPBackend(int(torch._fused_sdp_choice(*args, **kwargs))).name.lower()
    except Exception:  # private API; the name is informative only
        return "unknown"


class AttentionRecorder(TorchDispatchMode):
    """Context manager counting ``sdpa_<backend>`` per SDPA call and ``bmm`` / ``baddbmm`` calls in ``.counts``;
    keeps no tensors. Under ``torch.inference_mode()`` SDPA is seen as itself (``sdpa_<backend>``); otherwise (autograd
    on, or after another mode lowered it) as its kernel's op (``sdpa_kernel_<kernel>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket.__name__)
        key = None
        if name == "scaled_dot_product_attention":
            key = "sdpa_" + sdpa_backend(args, kwargs)
        elif name.startswith("_scaled_dot_product_") and "backward" not in name:
            key = "sdpa_kernel" + name[len("_scaled_dot_product"):]  # reached already lowered to its kernel
        elif name in ("bmm", "baddbmm"):
            key = name
        if key:
            self.counts[key] = self.counts.get(key, 0) + 1
        return func(*args, **kwargs)

    def sorted_counts(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
