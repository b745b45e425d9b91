"""The generation protocol: every number and choice that decides what video a (prompt, reference, seed) gives.

One :class:`GenerationProtocol` is embedded in ``vm generate``'s and ``vm bench run``'s configs and recorded in
every sidecar and ``run.json``; :func:`render_video` is the one place a video is made from it, so the same seed
gives the same video from either command. Our defaults are the paper's evaluation protocol; where the official
release (``inference.py``) does otherwise, the official value is one flag away and named in the field's help:

=====================  ================================  =====================================================
field                  ours (default)                    official release
=====================  ================================  =====================================================
reference_encoding     ``mean`` (deterministic)          ``sample``: ``latent_dist.sample()``, global RNG
generator_device       ``cpu`` (same noise on any GPU)   ``device``: a generator on the CUDA device
dtype                  ``auto``: fp16 on GPU, fp32 CPU   ``fp32``
negative_prompt        ``eval`` (the authors' eval)      ``inference`` (inference.py's)
reference_alpha        ``white``: composited on white    ``drop``: ``convert("RGB")`` drops transparency
=====================  ================================  =====================================================

The DDIM scheduler is read from the base model's ``scheduler/scheduler_config.json`` with the release's
overrides (see :func:`vm_model.scheduler.inference_scheduler_for`).

Two controls go beyond the paper (docs/injection_schedule.md); their defaults are the paper's computation, bit for
bit: ``injection_schedule`` (the reference's weight inside PISA per denoising step, ``vm_model.injection``) and
``reference_guidance_scale`` (separate text / reference guidance, ``vm_model.guidance``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from vm_common.devices import default_dtype

from .guidance import check_reference_guidance_scale
from .injection import parse_injection_schedule

logger = logging.getLogger(__name__)

# The negative prompt of the authors' evaluation script (docs/eval.md).
EVAL_NEGATIVE_PROMPT = ("asymmetry, worst quality, low quality, illustration, 3d, 2d, painting, cartoons, sketch, "
                        "multiple people, text on the screen, nobody, awkward angles, Facial blur")
# The negative prompt of the official inference.py (docs/model.md).
INFERENCE_NEGATIVE_PROMPT = (
    "semi-realistic, cgi, 3d, render, sketch, cartoon, drawing, anime, text, close up, cropped, out of frame, worst "
    "quality, low quality, jpeg artifacts, ugly, duplicate, morbid, mutilated, extra fingers, mutated hands, poorly "
    "drawn hands, poorly drawn face, mutation, deformed, blurry, dehydrated, bad anatomy, bad proportions, extra "
    "limbs, cloned face, disfigured, gross proportions, malformed limbs, missing arms, missing legs, extra arms, "
    "extra legs, fused fingers, too many fingers, long neck")
NAMED_NEGATIVE_PROMPTS = {"eval": EVAL_NEGATIVE_PROMPT, "inference": INFERENCE_NEGATIVE_PROMPT, "none": ""}

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class GenerationProtocol:
    """How videos are generated (see the module docstring for where the official release differs)."""

    num_frames: int = field(default=16, metadata={"help": "frames per video"})
    height: int = field(default=512, metadata={"help": "pixels"})
    width: int = field(default=512, metadata={"help": "pixels"})
    steps: int = field(default=30, metadata={"help": "DDIM steps"})
    guidance_scale: float = field(default=8.0, metadata={"help": "classifier-free guidance scale"})
    negative_prompt: str = field(default="eval", metadata={
        "help": "'eval' (the authors' evaluation script), 'inference' (the official inference.py), 'none', or "
                "the text itself"})
    seeds: list[int] = field(default_factory=lambda: [42], metadata={"flag": "seed",
                                                                     "help": "seeds, one video each (the paper: 42)"})
    fps: float = field(default=8.0, metadata={"help": "frames per second of the written videos"})
    reference_encoding: str = field(default="mean", metadata={
        "help": "reference VAE latent: mean (deterministic) or sample (official: latent_dist.sample() from the "
                "global RNG)", "choices": ["mean", "sample"]})
    generator_device: str = field(default="cpu", metadata={
        "help": "where the seeded noise generator lives: cpu (the same video on any machine) or device (official: "
                "on the GPU)", "choices": ["cpu", "device"]})
    dtype: str = field(default="auto", metadata={
        "help": "model precision: auto (fp16 on GPU, fp32 on CPU), fp32 (official), fp16, bf16",
        "choices": ["auto", "fp32", "fp16", "bf16"]})
    reference_alpha: str = field(default="white", metadata={
        "help": "transparent references: white (composite on white) or drop (official: alpha discarded)",
        "choices": ["white", "drop"]})
    pisa_mode: str = field(default="auto", metadata={
        "help": "PISA attention, the same result either way: concat (the release's computation), lse (an exact "
                "log-sum-exp merge: fewer FLOPs, faster where a fused kernel returns the log-sum-exp), auto (lse on "
                "CPU, concat on GPU; benchmarks/results/model_pisa_cost_*)", "choices": ["auto", "concat", "lse"]})
    reference: str = field(default="image", metadata={
        "help": "image: condition on the reference image; zeroed: an all-zero reference latent instead (the same "
                "model with no appearance information, the unconditional branch's reference: a baseline)",
        "choices": ["image", "zeroed"]})
    injection_schedule: str = field(default="constant", metadata={
        "help": "reference weight in PISA per step: constant (paper), customcrafter[:F] (off before fraction F), "
                "linear[:A:B] (ramp 0->1), or POS:W,... piecewise constant, e.g. 0:0,0.4:1"})
    reference_guidance_scale: float | None = field(default=None, metadata={
        "help": "separate reference guidance scale (adds a negative-prompt + reference branch; --guidance-scale "
                "then scales text only); unset: the paper's single scale", "min": 0.0})

    def __post_init__(self) -> None:
        for name in ("num_frames", "height", "width", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"protocol {name} must be >= 1, got {getattr(self, name)}")
        if not np.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise ValueError(f"protocol guidance_scale must be a finite number >= 0, got {self.guidance_scale}")
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"protocol fps must be a finite number > 0, got {self.fps}")
        if not self.seeds:
            raise ValueError("protocol seeds: at least one seed is needed")
        self.seeds = [int(s) for s in self.seeds]
        if self.reference not in ("image", "zeroed"):
            raise ValueError(f"protocol reference must be 'image' or 'zeroed', got {self.reference!r}")
        try:
            parse_injection_schedule(self.injection_schedule)
        except ValueError as exc:
            raise ValueError(f"--injection-schedule (YAML generation.injection_schedule): {exc}") from None
        try:
            check_reference_guidance_scale(self.reference_guidance_scale)
        except ValueError as exc:
            raise ValueError(f"--reference-guidance-scale (YAML generation.reference_guidance_scale): {exc}") from None

    @property
    def negative_prompt_text(self) -> str:
        return NAMED_NEGATIVE_PROMPTS.get(self.negative_prompt, self.negative_prompt)

    def attention_mode(self, device: str | torch.device) -> str:
        """The PISA mode to run: ``auto`` takes ``lse`` on CPU, where PyTorch's fused attention returns the
        log-sum-exp (measured 1.12x stock vs concat's 1.17x in CPU time at 256x256), and ``concat`` elsewhere, where
        ``lse`` would fall back to an unfused computation."""
        if self.pisa_mode != "auto":
            return self.pisa_mode
        return "lse" if torch.device(device).type == "cpu" else "concat"

    def torch_dtype(self, device: str | torch.device) -> torch.dtype:
        if self.dtype == "auto":
            return default_dtype(device)
        return DTYPES[self.dtype]

    def generator(self, seed: int, device: str | torch.device) -> torch.Generator:
        where = "cpu" if self.generator_device == "cpu" else torch.device(device)
        return torch.Generator(device=where).manual_seed(int(seed))


def render_videos(pipe, protocol: GenerationProtocol, prompts: list[str], reference_latents: torch.Tensor | None,
                  seeds: list[int]) -> list[np.ndarray]:
    """Videos of one reference, one per (prompt, seed), in one pipeline call: (F, H, W, 3) floats in [0, 1].

    Every video has its own generator seeded with its seed, so it equals the video made alone (float tolerance).
    This and :func:`render_video` are the only places videos are made from a protocol."""
    if len(prompts) != len(seeds) or not prompts:
        raise ValueError(f"need one seed per prompt, got {len(prompts)} prompts and {len(seeds)} seeds")
    if protocol.reference == "zeroed" and reference_latents is not None:  # the baseline: no appearance information
        reference_latents = torch.zeros_like(reference_latents)
    generators = [protocol.generator(seed, pipe._execution_device) for seed in seeds]
    negative = protocol.negative_prompt_text or None
    out = pipe(prompt=list(prompts), negative_prompt=[negative] * len(prompts) if negative else None,
               reference_latents=reference_latents, num_frames=protocol.num_frames, height=protocol.height,
               width=protocol.width, num_inference_steps=protocol.steps, guidance_scale=protocol.guidance_scale,
               generator=generators if len(generators) > 1 else generators[0], output_type="np",
               **beyond_paper_kwargs(protocol))
    return [np.asarray(video) for video in out.frames]


def beyond_paper_kwargs(protocol: GenerationProtocol) -> dict:
    """The pipeline arguments of the controls beyond the paper, only where they differ from it (so the paper's
    protocol calls the pipeline exactly as before)."""
    kwargs: dict = {}
    if not parse_injection_schedule(protocol.injection_schedule).is_constant:
        kwargs["injection_schedule"] = protocol.injection_schedule
    if protocol.reference_guidance_scale is not None:
        kwargs["reference_guidance_scale"] = protocol.reference_guidance_scale
    return kwargs


def render_video(pipe, protocol: GenerationProtocol, prompt: str, reference_latents: torch.Tensor | None,
                 seed: int) -> np.ndarray:
    """One video, (F, H, W, 3) float in [0, 1], exactly as the protocol says."""
    return render_videos(pipe, protocol, [prompt], reference_latents, [seed])[0]


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)
