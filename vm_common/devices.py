"""The torch device a command runs on when the user does not name one: one rule for every `vm` command.

CPU is used when it is asked for - ``--device cpu``, or ``ACCELERATE_USE_CPU`` (what ``accelerate launch --cpu``
sets) - or when there is no GPU; otherwise CUDA. The same rule tells :func:`vm_common.distributed.process_info`
whether launched processes must talk over CPU (gloo): without that, the processes of a launcher on a GPU-less
machine would each silently believe that they run alone.
"""

from __future__ import annotations

import os

CPU_ENV = "ACCELERATE_USE_CPU"
_TRUE = ("1", "true", "yes", "y", "t", "on")


def cpu_requested(device: str | None = None) -> bool:
    """True when CPU was asked for: ``device`` names a CPU device or ``ACCELERATE_USE_CPU`` is set to a true value."""
    if device is not None and str(device).strip().lower().startswith("cpu"):
        return True
    return os.environ.get(CPU_ENV, "").strip().lower() in _TRUE


def use_cpu(device: str | None = None) -> bool:
    """True when this process runs on CPU: asked for (:func:`cpu_requested`), or no CUDA device is available."""
    if cpu_requested(device):
        return True
    import torch

    return not torch.cuda.is_available()


def default_device() -> str:
    """``"cpu"`` when :func:`use_cpu` says so, else ``"cuda"`` (the current CUDA device of this process)."""
    return "cpu" if use_cpu() else "cuda"


def default_dtype(device) -> "torch.dtype":  # noqa: F821 - torch is imported lazily
    """fp16 on CUDA, fp32 elsewhere: the precision a command runs its models in unless told otherwise."""
    import torch

    return torch.float16 if torch.device(device).type == "cuda" else torch.float32
