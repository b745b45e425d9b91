"""Execution settings and the measurement of a whole generation of N videos under them.

A setting is how videos are made, never what they are: batch size, dtype, PISA computation (all exact), offload,
VAE slicing/tiling (``vm_model.execution``). :func:`measure_settings` loads one pipeline per distinct load
configuration and times each setting's generation of the same (prompt, seed) list, interleaved over repeats, with
the time spent in the UNet, the VAE decoder and the text encoder (forward hooks), the number of UNet calls, and the
peak memory of each run.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from benchmarks.harness.device import sync
from benchmarks.harness.memory import _reset_rss_peak, proc_status_kib
from benchmarks.harness.timing import repeat_order

logger = logging.getLogger(__name__)

PROMPTS = ("a person walking on a beach at sunset", "a person playing the guitar in a park",
           "a person reading a book in a library", "a person riding a bicycle in the city")


@dataclass(frozen=True)
class Setting:
    """One way of running the pipeline (every field is an execution option: the videos are the same)."""

    name: str
    batch_size: int = 1
    dtype: str = "auto"  # GenerationProtocol.dtype: auto (fp16 on GPU, fp32 on CPU), fp32, fp16, bf16
    pisa_mode: str = "auto"  # auto, concat, lse, official
    offload: str = "none"  # none, model, sequential
    vae_slicing: bool = False
    vae_tiling: bool = False
    description: str = ""

    def load_key(self) -> tuple:
        """Settings with the same key share one loaded pipeline (only the batch size differs)."""
        return (self.dtype, self.pisa_mode, self.offload, self.vae_slicing, self.vae_tiling)


# CPU: the batched vs unbatched comparison of issue 13 (same pipeline, batch size only)
CPU_SETTINGS = (
    Setting("batch4", batch_size=4, description="our default settings, 4 videos of one subject in one call"),
    Setting("batch1", batch_size=1, description="our default settings, one video per call"),
)
# GPU: the rows (each in its own process, so that memory peaks and offload hooks stay apart)
GPU_SETTINGS = (
    Setting("official", dtype="fp32", pisa_mode="official", batch_size=1,
            description="the official release's way: fp32, repeated-reference PISA layout, one video per call"),
    Setting("default", description="our default: fp16, pisa_mode auto (concat on GPU), one video per call"),
    Setting("fp16_concat_batch4", dtype="fp16", pisa_mode="concat", batch_size=4,
            description="fp16, PISA concat, 4 videos per call"),
    Setting("fp16_lse_batch4", dtype="fp16", pisa_mode="lse", batch_size=4,
            description="fp16, PISA lse, 4 videos per call"),
    Setting("offload_model", offload="model", vae_slicing=True,
            description="our default + model CPU offload + VAE slicing, one video per call"),
    Setting("offload_sequential", offload="sequential", vae_slicing=True, vae_tiling=True,
            description="our default + sequential CPU offload + VAE slicing and tiling, one video per call"),
)
SUITES = {"cpu": CPU_SETTINGS, "gpu": GPU_SETTINGS}


class ComponentClock:
    """Wall seconds spent inside the forward of each named module (forward pre/post hooks; CUDA synchronised)."""

    def __init__(self, modules: dict, device: str) -> None:
        self.device = device
        self.seconds = {name: 0.0 for name in modules}
        self.calls = {name: 0 for name in modules}
        self._start: dict[str, float] = {}
        self._handles = []
        for name, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, args):
            sync(self.device)
            self._start[name] = time.perf_counter()
        return hook

    def _post(self, name):
        def hook(module, args, output):
            sync(self.device)
            self.seconds[name] += time.perf_counter() - self._start.pop(name)
            self.calls[name] += 1
        return hook

    def reset(self) -> None:
        self.seconds = {n: 0.0 for n in self.seconds}
        self.calls = {n: 0 for n in self.calls}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class RunPeak:
    """Peak memory of one run: on CUDA ``max_memory_allocated`` / ``max_memory_reserved`` (absolute: weights on the
    GPU included); on CPU the resident set's high-water mark (``VmHWM``, reset via ``/proc/self/clear_refs``),
    absolute and above the level at the start."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.fields: dict = {}

    def __enter__(self) -> "RunPeak":
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = (proc_status_kib("VmRSS") or 0) * 1024
            self._hwm = _reset_rss_peak()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.fields = dict(gpu_allocated_at_start_bytes=self._start,
                               gpu_peak_allocated_bytes=torch.cuda.max_memory_allocated(self.device),
                               gpu_peak_reserved_bytes=torch.cuda.max_memory_reserved(self.device))
        elif self._hwm:
            peak = (proc_status_kib("VmHWM") or 0) * 1024
            self.fields = dict(rss_at_start_bytes=self._start, rss_peak_bytes=peak,
                               rss_peak_above_start_bytes=max(0, peak - self._start))


def generate_videos(pipe, protocol, prompts: list[str], seeds: list[int], reference, batch_size: int) -> list:
    """The videos of every (prompt, seed), ``batch_size`` per pipeline call, as ``vm generate`` makes them."""
    from vm_model.execution import batches
    from vm_model.protocol import render_videos

    videos = []
    for chunk in batches(list(zip(prompts, seeds)), batch_size):
        videos += render_videos(pipe, protocol, [p for p, _ in chunk], reference, [s for _, s in chunk])
    return videos


def _protocol(spec: dict, setting: Setting, steps: int | None = None):
    from vm_model.protocol import GenerationProtocol

    return GenerationProtocol(num_frames=spec["frames"], height=spec["resolution"], width=spec["resolution"],
                              steps=steps or spec["steps"], guidance_scale=spec["guidance_scale"],
                              dtype=setting.dtype, pisa_mode="concat" if setting.pisa_mode == "official"
                              else setting.pisa_mode)


def _load(spec: dict, setting: Setting):
    from benchmarks.generation.components import load_generation_pipeline
    from vm_model.execution import ExecutionOptions

    device = spec["device"]
    protocol = _protocol(spec, setting)
    mode = "official" if setting.pisa_mode == "official" else protocol.attention_mode(device)
    options = ExecutionOptions(batch_size=setting.batch_size, offload=setting.offload,
                               vae_slicing=setting.vae_slicing, vae_tiling=setting.vae_tiling)
    t0 = time.perf_counter()
    pipe = load_generation_pipeline(spec["preset"], spec["model_dir"], device, protocol.torch_dtype(device), mode,
                                    options)
    return pipe, dict(load_s=time.perf_counter() - t0, pisa_mode_resolved=mode,
                      dtype_resolved=str(protocol.torch_dtype(device)).removeprefix("torch."))


def _reference(spec: dict, pipe) -> torch.Tensor:
    """A seeded random reference latent (1, 4, 1, h, w): the subject's VAE encoding is done once per subject, outside
    the measured generation, as in ``vm bench run``."""
    side = spec["resolution"] // pipe.vae_scale_factor
    g = torch.Generator().manual_seed(int(spec.get("reference_seed", 7)))
    return torch.randn(1, 4, 1, side, side, generator=g)


def measure_settings(spec: dict, progress=None) -> dict:
    """Time every setting of ``spec["settings"]`` (Setting dicts) generating ``spec["videos"]`` videos, interleaved
    over ``spec["repeats"]`` (order ``alternate``); settings whose pipelines differ are loaded in turn, so this
    interleaves only settings with one load key (use one call per setting otherwise). ``progress(partial)`` is
    called after every run with the results so far."""
    settings = [Setting(**s) for s in spec["settings"]]
    keys = {s.load_key() for s in settings}
    if len(keys) != 1:
        raise ValueError(f"settings interleaved in one process must share dtype/pisa/offload/VAE options; got {keys}")
    device, n = spec["device"], int(spec["videos"])
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    seeds = [int(spec.get("seed", 42)) + i for i in range(n)]
    pipe, load_info = _load(spec, settings[0])
    reference = _reference(spec, pipe).to(device=pipe._execution_device, dtype=pipe.unet.dtype)
    clock = ComponentClock({"unet": pipe.unet, "vae_decoder": pipe.vae.decoder, "text_encoder": pipe.text_encoder},
                           device)
    out = dict(load=load_info, settings={s.name: asdict(s) for s in settings},
               runs={s.name: [] for s in settings}, orders=[], warmup_s={})
    for s in settings[:1] if spec.get("warmup") else []:  # one short untimed call: kernels, allocator, caches
        t0 = time.perf_counter()
        generate_videos(pipe, _protocol(spec, s, steps=1), prompts[:s.batch_size], seeds[:s.batch_size], reference,
                        s.batch_size)
        out["warmup_s"][s.name] = time.perf_counter() - t0
    last_videos = {}
    names = [s.name for s in settings]
    by_name = {s.name: s for s in settings}
    for r in range(int(spec["repeats"])):
        order = repeat_order(names, r, "alternate")
        out["orders"].append(order)
        for name in order:
            s = by_name[name]
            protocol = _protocol(spec, s)
            clock.reset()
            load0 = os.getloadavg()
            with RunPeak(device) as peak:
                sync(device)
                c0, t0 = time.process_time(), time.perf_counter()
                videos = generate_videos(pipe, protocol, prompts, seeds, reference, s.batch_size)
                sync(device)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            last_videos[name] = np.stack(videos)
            run = dict(repeat=r, wall_s=wall, process_cpu_s=cpu, component_s=dict(clock.seconds),
                       component_calls=dict(clock.calls), load_average_start=load0, load_average_end=os.getloadavg(),
                       **peak.fields)
            out["runs"][name].append(run)
            logger.info("repeat %d %s: %.1f s wall (%.1f s CPU), unet %.1f s in %d calls, vae decoder %.1f s",
                        r + 1, name, wall, cpu, clock.seconds["unet"], clock.calls["unet"],
                        clock.seconds["vae_decoder"])
            if progress:
                progress(out)
    clock.remove()
    first = last_videos[names[0]]
    out["max_abs_diff_vs_first"] = {name: float(np.abs(v - first).max()) for name, v in last_videos.items()}
    out["video_shape"] = list(first.shape)
    return out
