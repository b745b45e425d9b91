"""How a pipeline runs, as opposed to what it computes: batching, offload, VAE slicing/tiling, torch.compile.

None of these options changes a video beyond float tolerance (tested on the tiny preset); they trade speed for
memory. The protocol (`vm_model.protocol.GenerationProtocol`) decides the video; :class:`ExecutionOptions` decide
what it costs.

- ``batch_size``: (prompt, seed) pairs of one reference generated in one pipeline call, each with its own seeded
  generator, so a video does not depend on what it was batched with.
- ``offload``: ``model`` (diffusers' model CPU offload: one whole component on the GPU at a time) or ``sequential``
  (submodule by submodule: lowest memory, slowest). PISA lives in the attention processors, which offload keeps.
- ``vae_slicing`` / ``vae_tiling``: decode frames in slices / tiles.
- ``compile``: ``torch.compile`` the UNet (PISA included); off by default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

OFFLOAD_MODES = ("none", "model", "sequential")


@dataclass
class ExecutionOptions:
    batch_size: int = field(default=1, metadata={"help": "videos of one reference per pipeline call (each with its "
                                                         "own seeded generator: batching does not change a video)"})
    offload: str = field(default="none", metadata={"help": "CPU offload to save GPU memory: none, model (one "
                                                           "component on the GPU at a time), sequential (lowest "
                                                           "memory, slowest)", "choices": list(OFFLOAD_MODES)})
    vae_slicing: bool = field(default=False, metadata={"help": "decode the frames in slices (less memory)"})
    vae_tiling: bool = field(default=False, metadata={"help": "decode in tiles (less memory at large sizes)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the UNet (PISA included)"})

    def __post_init__(self) -> None:
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.offload not in OFFLOAD_MODES:
            raise ValueError(f"offload must be one of {OFFLOAD_MODES}, got {self.offload!r}")


def place_pipeline(pipe, device: str, options: ExecutionOptions | None = None):
    """Move ``pipe`` to ``device`` or install the requested offload there, then apply the VAE and compile options."""
    options = options or ExecutionOptions()
    if options.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif options.offload == "sequential":
        import torch

        if torch.device(device).type == "cpu":
            raise ValueError("--offload sequential needs a GPU: it streams weights from the CPU to the device that "
                             "computes, and here that is the CPU itself (use --offload model or none)")
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.compile:
        import torch

        pipe.unet = torch.compile(pipe.unet)
        logger.info("UNet compiled with torch.compile (the first call is slow)")
    return pipe


def batches(items: list, size: int) -> list[list]:
    """``items`` in consecutive chunks of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), size)]
