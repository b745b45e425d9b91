"""UNet forward calls of the PISA variants: interleaved timings, peak memory of one call, and their ratios to the
stock AnimateDiff call (time vs FLOPs)."""

from __future__ import annotations

import functools
import logging

import torch

from benchmarks.harness.device import sync
from benchmarks.harness.flops import AttentionRecorder, flop_counter
from benchmarks.harness.memory import PeakMemory, peak_fields
from benchmarks.harness.timing import median, side_by_side, timed
from benchmarks.pisa.model import apply_variant, make_inputs, unet_call

logger = logging.getLogger(__name__)


def time_forwards(unet, preset: str, variants: tuple[str, ...], frames: int, resolution: int, repeats: int,
                  device: str, dtype: torch.dtype, warmup: int = 1) -> dict:
    """Interleaved forward timings: per repeat every variant once (order rotated by one per repeat).

    ``warmup`` untimed calls per variant first; the first one also counts the FLOPs of the executed ops and the
    attention backends taken.
    """
    inputs = {v: make_inputs(preset, frames, 1 if v != "stock" else 0, resolution, device, dtype)
              for v in variants}
    calls = {v: functools.partial(unet_call, unet, inputs[v]) for v in variants}
    executed_flops: dict[str, int] = {}
    attention_calls: dict[str, dict[str, int]] = {}
    with torch.inference_mode():
        for i in range(warmup):
            for v in variants:
                apply_variant(unet, v)
                if i == 0:
                    counter, recorder = flop_counter(), AttentionRecorder()
                    with counter, recorder:
                        t = timed(calls[v], lambda: sync(device))
                    executed_flops[v] = int(counter.get_total_flops())
                    attention_calls[v] = recorder.sorted_counts()
                else:
                    t = timed(calls[v], lambda: sync(device))
                logger.info("warm-up %d %-11s %.2f s", i + 1, v, t.wall_s)
        runs = side_by_side(calls, repeats, order="rotate", before=lambda v: apply_variant(unet, v),
                            sync=lambda: sync(device))
    return dict(raw_s=runs.wall_s, cpu_s=runs.cpu_s, orders=runs.orders, warmup=warmup,
                executed_flops=executed_flops or None, attention_calls=attention_calls or None)


def forward_peak_memory(unet, preset: str, variant: str, frames: int, resolution: int, device: str,
                        dtype: torch.dtype) -> dict:
    """Peak memory of one forward call of ``variant`` (inference mode) above the loaded model."""
    refs = apply_variant(unet, variant)
    inputs = make_inputs(preset, frames, refs, resolution, device, dtype)
    recorder = AttentionRecorder()  # counts calls only, keeps no tensors
    with torch.inference_mode(), PeakMemory(device) as mem, recorder:
        t = timed(lambda: unet_call(unet, inputs), lambda: sync(device))
    return dict(variant=variant, **peak_fields(mem), time_s=t.wall_s, attention_calls=recorder.sorted_counts())


def summarize(raw: dict, flops: dict, stock: str = "stock", cpu: dict | None = None) -> dict:
    """Medians, time ratios (of medians, and the median of per-repeat ratios) and FLOP ratios vs ``stock``; with
    ``cpu`` (process CPU seconds per call) also the ratio of the median CPU times."""
    out = {}
    med = {v: median(t) for v, t in raw.items()}
    for v, times in raw.items():
        time_ratio = med[v] / med[stock]
        flop_ratio = flops[v] / flops[stock]
        per_repeat = [a / b for a, b in zip(times, raw[stock])]
        out[v] = dict(median_s=med[v], min_s=min(times), max_s=max(times), time_ratio=time_ratio,
                      time_ratio_per_repeat=per_repeat, time_ratio_median_per_repeat=median(per_repeat),
                      flops=flops[v], flop_ratio=flop_ratio, time_ratio_over_flop_ratio=time_ratio / flop_ratio)
        if cpu:
            out[v].update(median_cpu_s=median(cpu[v]), cpu_time_ratio=median(cpu[v]) / median(cpu[stock]))
    return out
