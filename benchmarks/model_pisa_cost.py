"""PISA cost benchmark (issue 2, section 5): UNet forward time / peak memory / FLOPs, and training-step peak memory.

Full SD1.5 UNet + v1-5 motion adapter (``MotionAdapter()`` defaults, ``motion_max_seq_length`` 32) with random
weights, built offline. Forward variants, measured side by side in one process, interleaved per repeat:

* ``stock``        stock AnimateDiff, F frames, no reference (stock attention processors)
* ``no_pisa``      F + 1 frames, ``PISAConfig(enabled=False)`` (the reference is only an extra frame)
* ``pisa_concat``  F + 1 frames, PISA ``mode="concat"`` (the method as trained)
* ``pisa_lse``     F + 1 frames, PISA ``mode="lse"`` (inference-only exact merge)

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (as in the model notes) and,
when there is a warm-up call, again on the executed ops (a flop formula for PyTorch's CPU flash-attention kernel is
added; PyTorch has none). Peak memory of each variant and of a training step (forward + backward, PISA concat,
trainable = spatial ``attn1`` + motion modules as ``vm_model.train.set_trainable``, the rest frozen; with and without
``enable_full_gradient_checkpointing``) is measured in a fresh subprocess per measurement: on CPU as the
resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident set once the
model is loaded; on CUDA as ``torch.cuda.max_memory_allocated`` above ``memory_allocated`` after
``reset_peak_memory_stats``. On CPU every measurement process is aborted if its resident set passes ``--max-rss-gb``
(the machine is shared). A probe also times the largest PISA attention call on 5-D tensors (the layout ``pisa.py``
used before commit c8edbe1) against the same call on 4-D tensors (its layout since).

    python benchmarks/model_pisa_cost.py                      # CPU: 256x256, 16 (+1) frames; training 2 (+1) frames
    python benchmarks/model_pisa_cost.py --threads 1 --repeats 3
    python benchmarks/model_pisa_cost.py --device cuda        # GPU: 512x512, fp16, 16 (+1) frames everywhere
    python benchmarks/model_pisa_cost.py --quick --out /tmp/bench   # tiny configs (vm_model/tiny.py), seconds

Results: ``<out>/model_pisa_cost_<device-tag>.json`` and ``.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

logger = logging.getLogger("benchmarks.model_pisa_cost")

SCHEMA_VERSION = 1
SD15_UNET_CONFIG = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                        layers_per_block=2, sample_size=64)
TEXT_TOKENS = 77
REFERENCE_RESOLUTION = 512  # the shape the model notes quote FLOPs for
FORWARD_VARIANTS = ("stock", "no_pisa", "pisa_concat", "pisa_lse")
VARIANT_DESCRIPTIONS = {
    "stock": "stock AnimateDiff, F frames, no reference",
    "no_pisa": "F + 1 frames, PISAConfig(enabled=False)",
    "pisa_concat": "F + 1 frames, PISA concat",
    "pisa_lse": "F + 1 frames, PISA lse (inference)",
}
TIME_TARGET_TOLERANCE = 0.10  # PISA/stock time within 10% of the FLOP ratio
MEMORY_TARGET_REDUCTION = 0.40  # checkpointing cuts training peak memory by >= 40%


# ------------------------------------------------------------------------------------------------------ model
def model_configs(preset: str) -> tuple[dict, dict, int]:
    """(UNet2DConditionModel kwargs, MotionAdapter kwargs, text embedding width) of a preset."""
    if preset == "full":
        return dict(SD15_UNET_CONFIG), {}, SD15_UNET_CONFIG["cross_attention_dim"]
    if preset == "tiny":
        from vm_model.tiny import TINY_TEXT_DIM, tiny_motion_adapter_config, tiny_unet_config

        return tiny_unet_config(), tiny_motion_adapter_config(), TINY_TEXT_DIM
    raise ValueError(f"unknown preset {preset!r}")


def meta_unet(preset: str):
    """The UNetMotionModel of a preset on the meta device (no memory, no weights)."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    unet_cfg, adapter_cfg, _ = model_configs(preset)
    with torch.device("meta"):
        return UNetMotionModel.from_unet2d(UNet2DConditionModel(**unet_cfg), MotionAdapter(**adapter_cfg),
                                           load_weights=False)


def _adapter_state_dict(adapter, unet) -> dict[str, torch.Tensor]:
    """The motion adapter's weights under the UNetMotionModel's parameter names (what ``load_motion_modules`` loads)."""
    out: dict[str, torch.Tensor] = {}
    groups = [(f"down_blocks.{i}", b) for i, b in enumerate(adapter.down_blocks)]
    groups += [(f"up_blocks.{i}", b) for i, b in enumerate(adapter.up_blocks)]
    if hasattr(unet.mid_block, "motion_modules") and getattr(adapter, "mid_block", None) is not None:
        groups.append(("mid_block", adapter.mid_block))
    for prefix, block in groups:
        for key, value in block.motion_modules.state_dict().items():
            out[f"{prefix}.motion_modules.{key}"] = value
    return out


def build_unet(preset: str, seed: int = 0):
    """Random-weight UNetMotionModel with the same weights as
    ``torch.manual_seed(seed); UNetMotionModel.from_unet2d(UNet2DConditionModel(**cfg), MotionAdapter(**cfg))``.

    The tensors of the 2-D UNet and of the adapter are assigned into a meta-device skeleton instead of being copied,
    so building the full model peaks at one copy of the weights (~5.3 GB) instead of two.
    """
    from diffusers import MotionAdapter, UNet2DConditionModel

    unet_cfg, adapter_cfg, _ = model_configs(preset)
    model = meta_unet(preset)
    wanted = set(model.state_dict())
    torch.manual_seed(seed)
    unet2d = UNet2DConditionModel(**unet_cfg)
    res = model.load_state_dict(unet2d.state_dict(), strict=False, assign=True)
    if res.unexpected_keys:
        raise RuntimeError(f"UNet2D weights with no place in the motion UNet: {res.unexpected_keys[:5]}")
    del unet2d
    adapter = MotionAdapter(**adapter_cfg)
    motion = _adapter_state_dict(adapter, model)
    if set(res.missing_keys) != set(motion):
        raise RuntimeError("motion adapter weights do not cover the motion UNet's remaining weights")
    model.load_state_dict(motion, strict=False, assign=True)
    del adapter, motion
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover or set(model.state_dict()) != wanted:
        raise RuntimeError(f"weights left unset: {leftover[:5]}")
    return model.eval()


def load_unet(preset: str, weights: str, device: str, dtype: torch.dtype):
    """The model saved by :func:`job_build`, loaded without an intermediate copy."""
    model = meta_unet(preset)
    state = torch.load(weights, map_location=device, weights_only=True)
    model.load_state_dict(state, strict=True, assign=True)
    del state
    if dtype != torch.float32:
        model = model.to(dtype=dtype)
    return model.eval()


def make_inputs(preset: str, frames: int, refs: int, resolution: int, device: str, dtype: torch.dtype,
                seed: int = 1) -> dict:
    """Batch-1 inputs of one UNet call: noisy video (1, 4, F, h, w), reference (1, 4, R, h, w) or None, text."""
    _, _, text_dim = model_configs(preset)
    side = resolution // 8
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(1, 4, frames, side, side, generator=g)
    ref = torch.randn(1, 4, refs, side, side, generator=g) if refs else None
    text = torch.randn(1, TEXT_TOKENS, text_dim, generator=g)
    to = dict(device=device, dtype=dtype)
    return dict(noisy_video=video.to(**to), reference=None if ref is None else ref.to(**to),
                text_embeds=text.to(**to), timestep=torch.tensor([500], device=device))


def apply_variant(unet, variant: str) -> int:
    """Install the attention processors of a forward variant; returns its number of reference frames."""
    from vm_model.pisa import PISAConfig, install_pisa, uninstall_pisa

    if variant == "stock":
        uninstall_pisa(unet)
        return 0
    configs = {"no_pisa": PISAConfig(enabled=False), "pisa_concat": PISAConfig(mode="concat"),
               "pisa_lse": PISAConfig(mode="lse")}
    if variant not in configs:
        raise ValueError(f"unknown variant {variant!r}")
    install_pisa(unet, configs[variant])
    return 1


def unet_call(unet, inputs: dict):
    from vm_model.unet_call import unet_with_reference

    return unet_with_reference(unet, inputs["noisy_video"], inputs["reference"], inputs["timestep"],
                               inputs["text_embeds"])


# --------------------------------------------------------------------------------------------- measurement
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory above the level at entry, in bytes.

    ``.peak_bytes``: on CUDA ``max_memory_allocated``; on CPU the peak of the bytes held by tensors (torch's
    allocator, from the profiler's memory events), the same definition. ``.rss_peak_bytes`` (CPU): the peak of the
    process's resident set, which also counts memory outside tensors (library scratch, malloc caching).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.rss_peak_bytes: int | None = None
        self.method = ""
        self.rss_method = ""

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated - memory_allocated at start"
            return self
        rss = _proc_status_kib("VmRSS")
        self._hwm = rss is not None and _reset_rss_peak()
        if self._hwm:
            self.baseline_bytes = rss * 1024
            self.rss_method = "VmHWM (reset via /proc/self/clear_refs) - VmRSS at start"
        else:  # ru_maxrss cannot be reset: the baseline is the high-water mark so far (may under-report)
            self.baseline_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.rss_method = "ru_maxrss - ru_maxrss at start"
        self.method = "peak of tensor bytes allocated (torch.profiler memory events) - level at start"
        self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.peak_bytes = max(0, torch.cuda.max_memory_allocated(self.device) - self.baseline_bytes)
            return
        if self._hwm:
            rss_peak = _proc_status_kib("VmHWM") * 1024
        else:
            rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.rss_peak_bytes = max(0, rss_peak - self.baseline_bytes)
        self._prof.__exit__(*exc)
        events = [e for e in self._prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        level = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            level += e.nbytes()
            peak = max(peak, level)
        self.peak_bytes = peak


def _cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter():
    """FlopCounterMode that also counts PyTorch's CPU flash-attention kernel (missing from its registry)."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = _cpu_flash_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _sdpa_backend(args, kwargs) -> str:
    try:
        from torch.nn.attention import SDPBackend

        return SDPBackend(int(torch._fused_sdp_choice(*args, **kwargs))).name.lower()
    except Exception:  # private API; the name is informative only
        return "unknown"


class _AttentionRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the backends ``F.scaled_dot_product_attention`` calls take (``torch._fused_sdp_choice``: ``math`` is the
    unfused fallback) and explicit ``bmm`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket.__name__)
        key = None
        if name == "scaled_dot_product_attention":
            key = "sdpa_" + _sdpa_backend(args, kwargs)
        elif name in ("bmm", "baddbmm"):
            key = name
        if key:
            self.counts[key] = self.counts.get(key, 0) + 1
        return func(*args, **kwargs)


def count_forward_flops(preset: str, variant: str, frames: int, resolution: int) -> int:
    """FLOPs of one UNet call of ``variant`` at batch 1, counted on the meta device."""
    unet = meta_unet(preset)
    refs = apply_variant(unet, variant)
    inputs = make_inputs(preset, frames, refs, resolution, "meta", torch.float32)
    counter = flop_counter()
    with torch.inference_mode(), counter:
        unet_call(unet, inputs)
    return int(counter.get_total_flops())


def time_forwards(unet, preset: str, variants: tuple[str, ...], frames: int, resolution: int, repeats: int,
                  device: str, dtype: torch.dtype, warmup: int = 1) -> dict:
    """Interleaved forward timings: per repeat every variant once (order rotated by one per repeat).

    ``warmup`` untimed calls per variant first; the first one also counts the FLOPs of the executed ops and the
    attention backends taken.
    """
    inputs = {v: make_inputs(preset, frames, 1 if v != "stock" else 0, resolution, device, dtype)
              for v in variants}
    raw: dict[str, list[float]] = {v: [] for v in variants}
    executed_flops: dict[str, int] = {}
    attention_calls: dict[str, dict[str, int]] = {}
    cpu_s: dict[str, list[float]] = {v: [] for v in variants}
    orders = []
    with torch.inference_mode():
        for i in range(warmup):
            for v in variants:
                apply_variant(unet, v)
                t0 = time.perf_counter()
                if i == 0:
                    counter, recorder = flop_counter(), _AttentionRecorder()
                    with counter, recorder:
                        unet_call(unet, inputs[v])
                    executed_flops[v] = int(counter.get_total_flops())
                    attention_calls[v] = dict(sorted(recorder.counts.items()))
                else:
                    unet_call(unet, inputs[v])
                _sync(device)
                logger.info("warm-up %d %-11s %.2f s", i + 1, v, time.perf_counter() - t0)
        for r in range(repeats):
            order = list(variants[r % len(variants):]) + list(variants[:r % len(variants)])
            orders.append(order)
            for v in order:
                apply_variant(unet, v)
                _sync(device)
                c0, t0 = time.process_time(), time.perf_counter()
                unet_call(unet, inputs[v])
                _sync(device)
                raw[v].append(time.perf_counter() - t0)
                cpu_s[v].append(time.process_time() - c0)
                logger.info("repeat %d/%d %-11s %.3f s (process CPU time %.1f s)", r + 1, repeats, v, raw[v][-1],
                            cpu_s[v][-1])
    return dict(raw_s=raw, cpu_s=cpu_s, orders=orders, warmup=warmup, executed_flops=executed_flops or None,
                attention_calls=attention_calls or None)


def forward_peak_memory(unet, preset: str, variant: str, frames: int, resolution: int, device: str,
                        dtype: torch.dtype) -> dict:
    """Peak memory of one forward call of ``variant`` (inference mode) above the loaded model."""
    refs = apply_variant(unet, variant)
    inputs = make_inputs(preset, frames, refs, resolution, device, dtype)
    recorder = _AttentionRecorder()  # counts calls only, keeps no tensors
    with torch.inference_mode(), PeakMemory(device) as mem, recorder:
        t0 = time.perf_counter()
        unet_call(unet, inputs)
        _sync(device)
        seconds = time.perf_counter() - t0
    return dict(variant=variant, peak_bytes=mem.peak_bytes, rss_peak_bytes=mem.rss_peak_bytes,
                baseline_bytes=mem.baseline_bytes, method=mem.method, rss_method=mem.rss_method, time_s=seconds,
                attention_calls=dict(sorted(recorder.counts.items())))


def training_step_memory(unet, preset: str, frames: int, resolution: int, checkpointing: bool, device: str,
                         dtype: torch.dtype) -> dict:
    """Peak memory (and time) of one training step: forward + backward with PISA concat, trainable = spatial attn1 +
    motion modules (``set_trainable``), the rest frozen, as in ``vm_model.train``."""
    from vm_model.grad_checkpointing import disable_full_gradient_checkpointing, enable_full_gradient_checkpointing
    from vm_model.losses import videomaker_loss
    from vm_model.pisa import PISAConfig, install_pisa
    from vm_model.train import set_trainable
    from vm_model.unet_call import unet_with_reference

    install_pisa(unet, PISAConfig())
    n_trainable = set_trainable(unet, train_motion_modules=True)
    if checkpointing:
        enable_full_gradient_checkpointing(unet)
    else:
        disable_full_gradient_checkpointing(unet)
    mixed = dtype != torch.float32
    for p in unet.parameters():  # as vm_model.train: trainable weights fp32, frozen ones in the weight dtype
        p.data = p.data.to(dtype if (mixed and not p.requires_grad) else torch.float32)
        p.grad = None
    unet.train()
    inputs = make_inputs(preset, frames, 1, resolution, device, torch.float32)
    g = torch.Generator().manual_seed(2)
    noise_video = torch.randn(inputs["noisy_video"].shape, generator=g).to(device)
    noise_ref = torch.randn(inputs["reference"].shape, generator=g).to(device)
    kept = torch.ones(1, dtype=torch.bool, device=device)
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=dtype) if mixed else nullcontext()
    with PeakMemory(device) as mem:
        t0 = time.perf_counter()
        with autocast:
            pred_video, pred_ref = unet_with_reference(unet, inputs["noisy_video"], inputs["reference"],
                                                       inputs["timestep"], inputs["text_embeds"])
        loss = videomaker_loss(pred_video, noise_video, pred_ref, noise_ref, kept, beta=0.1).total
        loss.backward()
        _sync(device)
        seconds = time.perf_counter() - t0
    trainable = [p for p in unet.parameters() if p.requires_grad]
    with_grad = sum(1 for p in trainable if p.grad is not None)
    grad_bytes = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
    return dict(checkpointing=checkpointing, peak_bytes=mem.peak_bytes, rss_peak_bytes=mem.rss_peak_bytes,
                baseline_bytes=mem.baseline_bytes, method=mem.method, rss_method=mem.rss_method, time_s=seconds,
                loss=float(loss.detach()), trainable_params=n_trainable,
                trainable_tensors=len(trainable), trainable_tensors_with_grad=with_grad, grad_bytes=grad_bytes)


def sdpa_layout_probe(preset: str, frames: int, resolution: int, device: str, dtype: torch.dtype,
                      repeats: int) -> dict:
    """Time the PISA concat attention call of the largest spatial layer on 5-D tensors (B, F, heads, 2N, d), the
    layout ``pisa.py`` passed to SDPA before commit c8edbe1, and on the same tensors flattened to 4-D
    (B*F, heads, 2N, d), the layout it passes since; record the backend each takes."""
    unet_cfg, _, _ = model_configs(preset)
    channels = unet_cfg["block_out_channels"][0]
    heads = unet_cfg["attention_head_dim"]  # diffusers: num_attention_heads defaults to attention_head_dim
    tokens = (resolution // 8) ** 2
    g = torch.Generator().manual_seed(3)
    shape = (1, frames, heads, 2 * tokens, channels // heads)
    q, k, v = (torch.randn(shape, generator=g).to(device, dtype) for _ in range(3))
    calls = {"5d_as_pisa": (q, k, v), "4d_flattened": (q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1))}
    raw: dict[str, list[float]] = {name: [] for name in calls}
    ops: dict[str, dict[str, int]] = {}
    with torch.inference_mode():
        for name, args in calls.items():
            recorder = _AttentionRecorder()
            with recorder:
                torch.nn.functional.scaled_dot_product_attention(*args)
            ops[name] = dict(sorted(recorder.counts.items()))
        for _ in range(repeats):
            for name, args in calls.items():
                _sync(device)
                t0 = time.perf_counter()
                torch.nn.functional.scaled_dot_product_attention(*args)
                _sync(device)
                raw[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in raw.items()}
    return dict(shape=list(shape), raw_s=raw, median_s=med, ops=ops,
                slowdown_5d_vs_4d=med["5d_as_pisa"] / med["4d_flattened"])


# ---------------------------------------------------------------------------------------------------- jobs
def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def job_build(spec: dict) -> dict:
    t0 = time.perf_counter()
    unet = build_unet(spec["preset"], seed=spec.get("seed", 0))
    built = time.perf_counter() - t0
    torch.save(unet.state_dict(), spec["weights"])
    return dict(build_s=built, parameters=sum(p.numel() for p in unet.parameters()),
                motion_module_parameters=sum(p.numel() for n, p in unet.named_parameters() if "motion_modules" in n))


def job_timing(spec: dict) -> dict:
    unet = load_unet(spec["preset"], spec["weights"], spec["device"], _dtype(spec["dtype"]))
    return time_forwards(unet, spec["preset"], tuple(spec["variants"]), spec["frames"], spec["resolution"],
                         spec["repeats"], spec["device"], _dtype(spec["dtype"]), warmup=spec["warmup"])


def job_forward_memory(spec: dict) -> dict:
    unet = load_unet(spec["preset"], spec["weights"], spec["device"], _dtype(spec["dtype"]))
    return forward_peak_memory(unet, spec["preset"], spec["variant"], spec["frames"], spec["resolution"],
                               spec["device"], _dtype(spec["dtype"]))


def job_train_memory(spec: dict) -> dict:
    unet = load_unet(spec["preset"], spec["weights"], spec["device"], torch.float32)
    return training_step_memory(unet, spec["preset"], spec["frames"], spec["resolution"], spec["checkpointing"],
                                spec["device"], _dtype(spec["dtype"]))


def job_sdpa_probe(spec: dict) -> dict:
    return sdpa_layout_probe(spec["preset"], spec["frames"], spec["resolution"], spec["device"],
                             _dtype(spec["dtype"]), spec["repeats"])


JOBS = {"build": job_build, "timing": job_timing, "forward_memory": job_forward_memory,
        "train_memory": job_train_memory, "sdpa_probe": job_sdpa_probe}


def run_job(name: str, spec: dict, isolate: bool, workdir: Path) -> dict:
    """Run one job, in a fresh Python process when ``isolate`` (so that memory peaks do not pollute each other)."""
    t0 = time.perf_counter()
    if not isolate:
        result = JOBS[name](spec)
    else:
        spec_path = workdir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.json"
        out_path = spec_path.with_suffix(".out.json")
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", name, str(spec_path), str(out_path)]
        proc = subprocess.run(cmd)
        if proc.returncode == MEMORY_GUARD_EXIT:
            raise MemoryError(f"benchmark job {name} passed the {spec.get('max_rss_gb')} GiB memory guard "
                              f"(spec {spec}); use a smaller shape or raise --max-rss-gb")
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark job {name} failed with exit code {proc.returncode} (spec {spec})")
        result = json.loads(out_path.read_text())
    logger.info("job %s done in %.1f s", name, time.perf_counter() - t0)
    return result


MEMORY_GUARD_EXIT = 86


def start_memory_guard(limit_bytes: int, interval_s: float = 0.1) -> None:
    """Exit this process (code ``MEMORY_GUARD_EXIT``) as soon as its resident set passes ``limit_bytes``: on a
    shared machine a clean abort beats the kernel's OOM killer picking someone else's process."""
    import threading

    def watch() -> None:
        while True:
            rss = _proc_status_kib("VmRSS")
            if rss is not None and rss * 1024 > limit_bytes:
                logger.error("resident set %.2f GiB passed the memory guard of %.2f GiB: aborting this job",
                             rss / 2**20, limit_bytes / 2**30)
                os._exit(MEMORY_GUARD_EXIT)
            time.sleep(interval_s)

    threading.Thread(target=watch, name="memory-guard", daemon=True).start()


def _worker_main(name: str, spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    if spec.get("max_rss_gb") and not str(spec.get("device", "cpu")).startswith("cuda"):
        start_memory_guard(int(float(spec["max_rss_gb"]) * 2**30))
    result = JOBS[name](spec)
    Path(out_path).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------------ run / report
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_info(device: str) -> dict:
    info = dict(device=device, cpu_model=cpu_model(), cpu_count=os.cpu_count(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(), python=platform.python_version(), platform=platform.platform())
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


MEASURED_CODE = ("vm_model/pisa.py", "vm_model/unet_call.py", "vm_model/grad_checkpointing.py", "vm_model/train.py")


def code_version() -> dict:
    """The git commit of the checkout and whether the measured modules differ from it (read-only git calls)."""
    root = Path(__file__).resolve().parents[1]

    def git(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {}
        dirty = [f for f in MEASURED_CODE if git("diff", "--quiet", "HEAD", "--", f).returncode != 0]
        return dict(commit=head.stdout.strip(), modified_measured_files=dirty)
    except OSError:
        return {}


def device_tag(device: str, threads: int) -> str:
    def slug(s: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", s.lower())).strip("-")

    if device.startswith("cuda"):
        return "cuda-" + slug(torch.cuda.get_device_name(device))
    return f"cpu-{slug(cpu_model())}-{threads}t"


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def summarize(raw: dict, flops: dict, stock: str = "stock", cpu: dict | None = None) -> dict:
    """Medians, time ratios (of medians, and the median of per-repeat ratios) and FLOP ratios vs ``stock``; with
    ``cpu`` (process CPU seconds per call) also the ratio of the median CPU times."""
    out = {}
    med = {v: _median(t) for v, t in raw.items()}
    for v, times in raw.items():
        time_ratio = med[v] / med[stock]
        flop_ratio = flops[v] / flops[stock]
        per_repeat = [a / b for a, b in zip(times, raw[stock])]
        out[v] = dict(median_s=med[v], min_s=min(times), max_s=max(times), time_ratio=time_ratio,
                      time_ratio_per_repeat=per_repeat, time_ratio_median_per_repeat=_median(per_repeat),
                      flops=flops[v], flop_ratio=flop_ratio, time_ratio_over_flop_ratio=time_ratio / flop_ratio)
        if cpu:
            out[v].update(median_cpu_s=_median(cpu[v]), cpu_time_ratio=_median(cpu[v]) / _median(cpu[stock]))
    return out


def run_benchmark(args: argparse.Namespace, isolate: bool = True) -> dict:
    device = args.device
    preset = "tiny" if args.quick else "full"
    dtype = args.dtype or ("float16" if device.startswith("cuda") else "float32")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    frames, resolution = args.frames, args.resolution
    train_frames = args.train_frames or frames
    train_resolution = args.train_resolution or resolution
    variants = FORWARD_VARIANTS
    started = time.time()
    load = {"start": os.getloadavg()}
    logger.info("preset %s on %s (%s, %d threads): forward %dx%d, %d frames (+1), %d repeats; training %dx%d, "
                "%d (+1) frames", preset, device, dtype, threads, resolution, resolution, frames, args.repeats,
                train_resolution, train_resolution, train_frames)

    # FLOPs on the meta device: the measured shape and the model notes' 512x512 shape
    flops = {v: count_forward_flops(preset, v, frames, resolution) for v in variants}
    flops_ref = {}
    if preset == "full" and resolution != REFERENCE_RESOLUTION:
        flops_ref = {v: count_forward_flops(preset, v, 16, REFERENCE_RESOLUTION) for v in variants}
    logger.info("meta FLOPs (TFLOP): %s", {v: round(f / 1e12, 3) for v, f in flops.items()})

    with tempfile.TemporaryDirectory(prefix="vm-pisa-bench-") as tmp:
        workdir = Path(tmp)
        base = dict(preset=preset, weights=str(workdir / "unet.pt"), device=device, dtype=dtype, threads=threads,
                    max_rss_gb=args.max_rss_gb)
        build = run_job("build", base, isolate, workdir)
        timing = run_job("timing", dict(base, variants=list(variants), frames=frames, resolution=resolution,
                                        repeats=args.repeats, warmup=args.warmup), isolate, workdir)
        load["after_timing"] = os.getloadavg()
        memory = {v: run_job("forward_memory", dict(base, variant=v, frames=frames, resolution=resolution),
                             isolate, workdir) for v in variants}
        train = {name: run_job("train_memory", dict(base, frames=train_frames, resolution=train_resolution,
                                                    checkpointing=ckpt), isolate, workdir)
                 for name, ckpt in (("no_checkpointing", False), ("checkpointing", True))}
        probe = None
        if not args.skip_probe:
            probe = run_job("sdpa_probe", dict(base, frames=frames, resolution=resolution,
                                               repeats=max(1, min(args.repeats, 2))), isolate, workdir)
    load["end"] = os.getloadavg()

    forward = summarize(timing["raw_s"], flops, cpu=timing["cpu_s"])
    for v in variants:
        forward[v].update(frames=frames, references=0 if v == "stock" else 1, description=VARIANT_DESCRIPTIONS[v],
                          executed_flops=(timing["executed_flops"] or {}).get(v),
                          attention_calls=memory[v]["attention_calls"],
                          peak_memory_bytes=memory[v]["peak_bytes"], rss_peak_bytes=memory[v]["rss_peak_bytes"],
                          isolated_time_s=memory[v]["time_s"])
        if flops_ref:
            forward[v]["flops_512"] = flops_ref[v]
    targets = {}
    for v in ("pisa_concat", "pisa_lse"):
        dev = forward[v]["time_ratio"] / forward[v]["flop_ratio"] - 1.0
        per_repeat = [abs(r / forward[v]["flop_ratio"] - 1.0) <= TIME_TARGET_TOLERANCE
                      for r in forward[v]["time_ratio_per_repeat"]]
        targets[f"time_ratio_{v}"] = dict(
            passed_per_repeat=per_repeat, cpu_time_ratio=forward[v]["cpu_time_ratio"],
            description=f"{v} / stock time within {TIME_TARGET_TOLERANCE:.0%} of the FLOP ratio"
                        + (" (the issue's target)" if v == "pisa_concat" else " (additional)"),
            time_ratio=forward[v]["time_ratio"], flop_ratio=forward[v]["flop_ratio"], deviation=dev,
            passed=abs(dev) <= TIME_TARGET_TOLERANCE)
    no_ck, ck = train["no_checkpointing"]["peak_bytes"], train["checkpointing"]["peak_bytes"]
    reduction = 1.0 - ck / no_ck if no_ck else 0.0
    targets["checkpointing_memory"] = dict(
        description=f"gradient checkpointing cuts training-step peak memory by >= {MEMORY_TARGET_REDUCTION:.0%}",
        peak_bytes_without=no_ck, peak_bytes_with=ck, reduction=reduction,
        passed=reduction >= MEMORY_TARGET_REDUCTION)
    rss_no_ck, rss_ck = train["no_checkpointing"]["rss_peak_bytes"], train["checkpointing"]["rss_peak_bytes"]
    rss_reduction = None
    if rss_no_ck:  # CPU: the resident-set view of the same runs
        rss_reduction = 1.0 - rss_ck / rss_no_ck
        targets["checkpointing_memory"].update(rss_peak_bytes_without=rss_no_ck, rss_peak_bytes_with=rss_ck,
                                               rss_reduction=rss_reduction,
                                               rss_passed=rss_reduction >= MEMORY_TARGET_REDUCTION)

    return dict(
        schema_version=SCHEMA_VERSION,
        benchmark="model_pisa_cost",
        created_unix=started,
        wall_s=time.time() - started,
        preset=preset,
        model=dict(unet_config=dict(model_configs(preset)[0]), motion_adapter_config=model_configs(preset)[1] or
                   "MotionAdapter() defaults (v1-5, motion_max_seq_length 32)", weights="random (seed 0)",
                   parameters=build["parameters"], motion_module_parameters=build["motion_module_parameters"],
                   build_s=build["build_s"]),
        device=device_info(device),
        code=code_version(),
        device_tag=args.tag or device_tag(device, threads) + ("-quick" if args.quick else ""),
        load_average=load,
        settings=dict(dtype=dtype, threads=threads, batch=1, guidance_batch=False, text_tokens=TEXT_TOKENS,
                      isolated_memory_processes=isolate),
        forward=dict(shape=dict(resolution=resolution, latent=resolution // 8, frames=frames,
                                frames_with_reference=frames + 1, batch=1),
                     repeats=args.repeats, warmup=args.warmup, orders=timing["orders"], raw_s=timing["raw_s"],
                     cpu_s=timing["cpu_s"],
                     flops_meta=flops, flops_meta_512=flops_ref or None,
                     memory_method=memory[variants[0]]["method"], rss_method=memory[variants[0]]["rss_method"],
                     variants=forward),
        training=dict(shape=dict(resolution=train_resolution, latent=train_resolution // 8, frames=train_frames,
                                 frames_with_reference=train_frames + 1, batch=1, pisa="concat"),
                      memory_method=train["checkpointing"]["method"], rss_method=train["checkpointing"]["rss_method"],
                      runs=train, reduction=reduction, rss_reduction=rss_reduction),
        sdpa_probe=probe,
        targets=targets,
    )


def _code_line(code: dict) -> str:
    if not code.get("commit"):
        return ""
    line = f" Code: commit {code['commit'][:10]}"
    if code.get("modified_measured_files"):
        line += f" with local changes to {', '.join(code['modified_measured_files'])}"
    if code.get("note"):
        line += f" ({code['note']})"
    return line + "."


def _calls(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in counts.items()) or "none"


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f}"


def _gib_or_na(b: float | None) -> str:
    return "n/a" if b is None else _gib(b)


def render_markdown(res: dict) -> str:
    fw, tr, dev, tg = res["forward"], res["training"], res["device"], res["targets"]
    shape, threads = fw["shape"], res["settings"]["threads"]
    lines = [
        f"# PISA cost benchmark: {res['device_tag']}",
        "",
        f"Device: {dev['device']}, {dev.get('gpu') or dev['cpu_model']} ({dev['cpu_count']} logical CPUs), "
        f"torch {dev['torch']}, diffusers {dev.get('diffusers', '?')}, {threads} torch thread"
        f"{'' if threads == 1 else 's'}, {res['settings']['dtype']}. Model: {res['preset']} preset "
        f"({res['model']['parameters'] / 1e6:.0f}M parameters, random weights). Load average (1/5/15 min): "
        + "; ".join(f"{k.replace('_', ' ')} {'/'.join(f'{x:.2f}' for x in v)}" for k, v in res["load_average"].items())
        + f". Whole run {res['wall_s'] / 60:.1f} min." + _code_line(res.get("code") or {}),
        "",
        f"## UNet forward, {shape['resolution']}x{shape['resolution']} ({shape['latent']}x{shape['latent']} latents), "
        f"batch 1, {shape['frames']} frames (+1 reference), inference mode",
        "",
        f"Medians over {fw['repeats']} interleaved repeats (order rotated per repeat). FLOPs counted on the meta "
        f"device. Peak memory, one fresh process per variant, above the loaded model: {fw['memory_method']}"
        + (f"; RSS: {fw['rss_method']}" if fw.get("rss_method") else "") + ".",
        "",
        "| variant | frames | median s | runs s | time ratio (per repeat) | TFLOP | FLOP ratio | time/FLOP ratio "
        "| median process CPU s | CPU-time ratio | peak tensor mem GiB | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, r in fw["variants"].items():
        runs = ", ".join(f"{t:.2f}" for t in fw["raw_s"][v])
        per = ", ".join(f"{x:.2f}" for x in r["time_ratio_per_repeat"])
        lines.append(f"| {v} ({r['description']}) | {r['frames'] + r['references']} | {r['median_s']:.2f} | {runs} | "
                     f"{r['time_ratio']:.2f}x ({per}) | {r['flops'] / 1e12:.3f} | {r['flop_ratio']:.2f}x | "
                     f"{r['time_ratio_over_flop_ratio']:.2f} | {r['median_cpu_s']:.1f} | {r['cpu_time_ratio']:.2f}x | "
                     f"{_gib(r['peak_memory_bytes'])} | {_gib_or_na(r.get('rss_peak_bytes'))} |")
    if fw.get("flops_meta_512"):
        f512 = fw["flops_meta_512"]
        lines += ["", "FLOPs at 512x512, 16 (+1) frames (meta device, for comparison with the model notes): " +
                  ", ".join(f"{v} {f / 1e12:.2f} TFLOP ({f / f512['stock']:.2f}x)" for v, f in f512.items()) + "."]
    if fw["warmup"]:
        mismatch = [v for v, r in fw["variants"].items() if r["executed_flops"] != r["flops"]]
        lines += ["", f"{fw['warmup']} untimed warm-up call(s) per variant. FLOPs counted on the executed ops of the "
                  "first warm-up call " + ("match the meta-device counts." if not mismatch else
                                           "differ from the meta-device counts for " + ", ".join(
                      f"{v} ({fw['variants'][v]['executed_flops'] / 1e12:.3f} TFLOP)" for v in mismatch) + ".")]
    else:
        lines += ["", "No untimed warm-up call (--warmup 0): each variant's first call is timed in repeat 1, and the "
                  "FLOPs of the executed ops were not counted in this run (meta-device counts only)."]
    lines += ["", "Attention calls per UNet call, recorded in the memory runs (SDPA backend as chosen by "
              "torch._fused_sdp_choice; sdpa_math is the unfused fallback): " + "; ".join(
                  f"{v}: {_calls(r['attention_calls'])}" for v, r in fw["variants"].items()) + "."]
    ts = tr["shape"]
    lines += [
        "",
        f"## Training step, {ts['resolution']}x{ts['resolution']}, batch 1, {ts['frames']} frames (+1 reference), "
        "PISA concat, " + ("fp32" if res["settings"]["dtype"] == "float32" else
                           f"{res['settings']['dtype']} autocast, trainable weights fp32"),
        "",
        "Forward + backward of the loss (videomaker_loss, beta 0.1); trainable = spatial attn1 + motion modules "
        f"(set_trainable), the rest frozen. Peak memory above the loaded model, one fresh process per run, "
        f"including the gradients of the trainable parameters: {tr['memory_method']}"
        + (f"; RSS: {tr['rss_method']}" if tr.get("rss_method") else "") + ".",
        "",
        "| gradient checkpointing | peak tensor mem GiB | peak RSS GiB | of which gradients GiB | step s "
        "| trainable tensors with grad |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in tr["runs"].items():
        lines.append(f"| {'on' if r['checkpointing'] else 'off'} | {_gib(r['peak_bytes'])} | "
                     f"{_gib_or_na(r.get('rss_peak_bytes'))} | {_gib(r['grad_bytes'])} | "
                     f"{r['time_s']:.1f} | {r['trainable_tensors_with_grad']}/{r['trainable_tensors']} |")
    lines += ["", f"Reduction of the peak by checkpointing: {tr['reduction']:.1%} (tensor memory)"
              + (f", {tr['rss_reduction']:.1%} (RSS)" if tr.get("rss_reduction") is not None else "") + ".",
              "", "## Targets", "",
              "| target | measured | result |", "|---|---|---|"]
    for key, t in tg.items():
        if key.startswith("time_ratio"):
            measured = (f"time {t['time_ratio']:.2f}x vs FLOP {t['flop_ratio']:.2f}x ({t['deviation']:+.1%}); "
                        f"per repeat: {', '.join('pass' if p else 'fail' for p in t['passed_per_repeat'])}; "
                        f"CPU-time ratio {t['cpu_time_ratio']:.2f}x")
        else:
            measured = (f"tensor memory {_gib(t['peak_bytes_without'])} -> {_gib(t['peak_bytes_with'])} GiB "
                        f"({t['reduction']:.1%} less)")
            if "rss_reduction" in t:
                measured += (f"; RSS {_gib(t['rss_peak_bytes_without'])} -> {_gib(t['rss_peak_bytes_with'])} GiB "
                             f"({t['rss_reduction']:.1%} less, {'pass' if t['rss_passed'] else 'fail'})")
        lines.append(f"| {t['description']} | {measured} | {'PASS' if t['passed'] else 'FAIL'} |")
    probe = res.get("sdpa_probe")
    if probe:
        s = probe["shape"]
        lines += ["", "## SDPA layout probe", "",
                  f"The PISA concat attention call of the largest spatial layer, q/k/v of shape {tuple(s)} "
                  "(B, F, heads, 2N, d), the layout `vm_model/pisa.py` passed to SDPA before commit c8edbe1, vs the "
                  "same tensors flattened to 4-D (B*F, heads, 2N, d), its layout since: median "
                  f"{probe['median_s']['5d_as_pisa']:.3f} s vs "
                  f"{probe['median_s']['4d_flattened']:.3f} s ({probe['slowdown_5d_vs_4d']:.1f}x). "
                  f"Backends: 5-D {_calls(probe['ops']['5d_as_pisa'])}; 4-D {_calls(probe['ops']['4d_flattened'])}."]
    notes = res.get("notes")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def explain(res: dict) -> list[str]:
    """Plain-language notes on the outcome, built only from the measured figures in ``res``."""
    notes = []
    fw, tg = res["forward"]["variants"], res["targets"]
    probe = res.get("sdpa_probe")
    missed = []
    for v in ("pisa_concat", "pisa_lse"):
        t = tg[f"time_ratio_{v}"]
        if not t["passed"]:
            missed.append(v)
            notes.append(f"{v}: time ratio {t['time_ratio']:.2f}x vs FLOP ratio {t['flop_ratio']:.2f}x "
                         f"({t['deviation']:+.1%}): target missed.")
    for v in ("pisa_concat", "pisa_lse"):
        t = tg[f"time_ratio_{v}"]
        if len(set(t["passed_per_repeat"])) > 1:
            notes.append(f"{v}: the verdict is not robust: the per-repeat time ratios "
                         f"({', '.join(f'{x:.2f}x' for x in fw[v]['time_ratio_per_repeat'])}) fall on both sides of "
                         f"the {TIME_TARGET_TOLERANCE:.0%} band around {t['flop_ratio']:.2f}x.")
    math_in_pisa = [v for v in missed if tg[f"time_ratio_{v}"]["deviation"] > 0
                    and "sdpa_math" in fw[v]["attention_calls"] and "sdpa_math" not in fw["stock"]["attention_calls"]]
    if math_in_pisa:
        n_math = fw[math_in_pisa[0]]["attention_calls"]["sdpa_math"]
        msg = (f"Cause found: in {', '.join(math_in_pisa)} the {n_math} PISA layers call "
               "F.scaled_dot_product_attention on 5-D (B, F, heads, L, d) tensors (vm_model/pisa.py, "
               "PISAAttnProcessor). The fused SDPA kernels only accept 4-D input, so these calls take the unfused "
               "math path (score matrix materialised, bmm + softmax), while every stock attention call uses the "
               "fused kernel.")
        if probe is not None and "sdpa_math" in probe["ops"]["5d_as_pisa"]:
            msg += (f" The probe measured the largest such call at {probe['slowdown_5d_vs_4d']:.1f}x the time of the "
                    "same call on the same tensors flattened to 4-D.")
        msg += " Flattening (B, F) into the batch dimension before the call removes the fallback."
        notes.append(msg)
    if "pisa_lse" in missed and tg["time_ratio_pisa_lse"]["deviation"] > 0:
        msg = ("pisa_lse computes its reference-query blocks (one ref->ref block, F ref->frame blocks) in "
               "_attention_with_lse with explicit float32 bmm, logsumexp and exp over materialised score tensors, "
               "not with a fused attention kernel")
        if fw["pisa_lse"]["median_s"] > fw["pisa_concat"]["median_s"]:
            msg += (f"; here that made it slower than pisa_concat ({fw['pisa_lse']['median_s']:.1f} s vs "
                    f"{fw['pisa_concat']['median_s']:.1f} s) although it needs fewer FLOPs "
                    f"({fw['pisa_lse']['flops'] / 1e12:.3f} vs {fw['pisa_concat']['flops'] / 1e12:.3f} TFLOP)")
        notes.append(msg + ".")
    m = tg["checkpointing_memory"]
    if not m["passed"]:
        grads = res["training"]["runs"]["checkpointing"]["grad_bytes"]
        notes.append(f"Checkpointing reduced the training-step peak tensor memory by {m['reduction']:.1%} (target "
                     f"40%): {_gib(m['peak_bytes_without'])} -> {_gib(m['peak_bytes_with'])} GiB. "
                     f"{_gib(grads)} GiB of each are the gradients of the trainable parameters, which checkpointing "
                     f"cannot remove; the rest (activations and transients) went from "
                     f"{_gib(m['peak_bytes_without'] - grads)} to {_gib(m['peak_bytes_with'] - grads)} GiB. "
                     "At this small CPU shape the gradients are a large share of the peak.")
    ts, fs = res["training"]["shape"], res["forward"]["shape"]
    if (ts["frames"], ts["resolution"]) != (fs["frames"], fs["resolution"]):
        notes.append(f"The training step ran at {ts['resolution']}x{ts['resolution']} with {ts['frames']} (+1) frames, "
                     f"smaller than the forward shape, to stay within the memory of this shared machine "
                     "(--train-frames / --train-resolution).")
    if res["device"]["device"] == "cpu":
        threads = res["settings"]["threads"]
        msg = ("CPU timings on a shared machine: other processes ran concurrently (load averages above; wall time "
               "above process CPU time / threads means the process waited for a core). The interleaved, rotated "
               "order spreads this noise over all variants.")
        if threads == 1:
            msg += (" With one thread the process CPU time of a call is close to its compute time whatever the load, "
                    "so the CPU-time ratio is the steadier figure here; the targets are judged on wall time.")
        else:
            msg += (f" With {threads} threads on a loaded machine, parallel regions also wait for descheduled "
                    "threads (spinning counts as CPU time), so both wall and CPU time are inflated unevenly.")
        notes.append(msg)
    return notes


def write_results(res: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"model_pisa_cost_{res['device_tag']}"
    js, md = stem.with_suffix(".json"), stem.with_suffix(".md")
    tmp = js.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    tmp.replace(js)
    md.write_text(render_markdown(res))
    return js, md


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                   help="output folder for the JSON and markdown results")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--resolution", type=int, default=None,
                   help="pixels (latents = /8); default 256 on CPU, 512 on CUDA, 64 with --quick")
    p.add_argument("--frames", type=int, default=None, help="generated frames (default 16, 4 with --quick)")
    p.add_argument("--train-frames", type=int, default=None,
                   help="generated frames of the training step (default: --frames; 2 on CPU at full size, where "
                        "more does not fit in ~12 GB)")
    p.add_argument("--train-resolution", type=int, default=None, help="default: --resolution")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per variant (default 3; 2 on CPU at full size; 1 with --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="forward dtype (default float32 on CPU, float16 on CUDA); training keeps trainable "
                        "weights in float32 and autocasts like vm_model.train")
    p.add_argument("--tag", default=None, help="results file tag (default: derived from the device)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed warm-up calls per variant (default 1; 0 on CPU at full size, where one call takes "
                        "minutes); the first also counts the executed FLOPs")
    p.add_argument("--max-rss-gb", type=float, default=12.5,
                   help="CPU: abort a measurement process whose resident set passes this (0: no guard)")
    p.add_argument("--skip-probe", action="store_true", help="skip the SDPA layout probe")
    p.add_argument("--quick", action="store_true", help="tiny configs (vm_model/tiny.py): a smoke run in seconds")
    p.add_argument("--render", type=Path, default=None, metavar="JSON",
                   help="measure nothing: rewrite the notes and the markdown of an existing results JSON")
    p.add_argument("--_worker", nargs=3, metavar=("JOB", "SPEC", "OUT"), help=argparse.SUPPRESS)
    return p


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    cuda = args.device.startswith("cuda")
    if args.resolution is None:
        args.resolution = 64 if args.quick else (512 if cuda else 256)
    if args.frames is None:
        args.frames = 4 if args.quick else 16
    if args.repeats is None:
        args.repeats = 1 if args.quick else (3 if cuda else 2)
    if args.warmup is None:
        args.warmup = 0 if (not cuda and not args.quick) else 1
    if args.train_frames is None and not cuda and not args.quick:
        args.train_frames = 2
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("diffusers", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
    except ImportError:
        pass
    args = build_parser().parse_args(argv)
    if args._worker:
        return _worker_main(*args._worker)
    if args.render:
        res = json.loads(args.render.read_text())
        res["notes"] = explain(res)
        js, md = write_results(res, args.render.parent)
        logger.info("re-rendered %s and %s", js, md)
        print(render_markdown(res))
        return 0
    args = resolve_defaults(args)
    res = run_benchmark(args)
    res["notes"] = explain(res)
    js, md = write_results(res, args.out)
    logger.info("wrote %s and %s", js, md)
    print(render_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
