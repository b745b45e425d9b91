"""The `tiny` preset's on-disk cache.

Tiny components are random, deterministic (seeded) and built offline by each package's own builders, then saved
in the libraries' own formats so that they load through exactly the same code paths as real weights. A component
is built once per cache folder (``$VM_TINY_DIR``, default ``~/.cache/videomaker/tiny``) into a temporary folder
and renamed into place, so concurrent processes (tests with xdist, `accelerate launch`) never see half a build.
Everything produced with it is labelled ``random_weights: true``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

TINY_FORMAT_VERSION = "v1"
PRESETS = ("tiny", "full")


def tiny_root() -> Path:
    root = Path(os.environ.get("VM_TINY_DIR", Path.home() / ".cache" / "videomaker" / "tiny")) / TINY_FORMAT_VERSION
    root.mkdir(parents=True, exist_ok=True)
    return root


def tiny_component(name: str, build: Callable[[Path], None],
                   note: str = "random weights, built offline for the tiny preset\n") -> Path:
    """Return the folder of tiny component ``name``, building it with ``build(folder)`` on first use (``note`` is
    written to its ``.complete`` marker: what the component is).

    A file lock serialises builders across processes (tests with xdist, `accelerate launch`); the build goes to a
    temporary folder that is renamed into place, so a reader never sees half a component.
    """
    from filelock import FileLock

    target = tiny_root() / name
    if (target / ".complete").exists():
        return target
    with FileLock(str(tiny_root() / f".{name}.lock")):
        if (target / ".complete").exists():  # built by another process while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=tiny_root()))
        try:
            logger.info("building built-in component '%s' in %s", name, target)
            build(tmp)
            (tmp / ".complete").write_text(note)
            shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover of a killed build
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def save_transformers_model(model, folder: Path) -> None:
    """Save a transformers model in its own format (``config.json`` + ``model.safetensors``) on any process.

    ``PreTrainedModel.save_pretrained`` silently writes no weights on ranks other than 0 once torch.distributed
    is initialised, and under `accelerate launch` whichever process takes the build lock first builds the tiny
    components. ``from_pretrained`` reads these files exactly as it reads real checkpoints.
    """
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
