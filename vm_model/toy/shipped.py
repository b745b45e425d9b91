"""The shipped toy VideoMaker (``builtin:toy``, ``--preset toy``): where its files live and how they are assembled.

``vm_model/toy/weights/`` (package data, written by ``benchmarks/toy_customization.py --export``, see
:mod:`.export`) holds the toy base (``base/unet``, ``base/vae``, ``base/text_encoder``, ``base/scheduler``), the
motion adapter (``motion_adapter/``), the trained VideoMaker weights (``videomaker.safetensors``) and ``toy.json``
(how they were made: recipe, seeds, steps, commit, versions, measured fidelity, file hashes). The tokenizer is not
shipped: the base folder is assembled once per cache folder (``$VM_TINY_DIR``) from the shipped files plus the CLIP
tokenizer written from open_clip's vocabulary (:func:`vm_model.tiny.write_clip_tokenizer`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
RECORD = "toy.json"
BASE_PARTS = ("unet", "vae", "text_encoder", "scheduler")
MOTION_ADAPTER = "motion_adapter"
VIDEOMAKER_WEIGHTS = "videomaker.safetensors"


class ToyModelMissingError(FileNotFoundError):
    """The shipped toy model files are not installed (or incomplete)."""


def shipped_dir() -> Path:
    if not (SHIPPED_DIR / RECORD).is_file():
        raise ToyModelMissingError(
            f"the toy model is not installed: {SHIPPED_DIR / RECORD} is missing (reinstall the package, or produce "
            f"it with `python benchmarks/toy_customization.py --out runs/toy --export {SHIPPED_DIR}`)")
    return SHIPPED_DIR


def read_record(folder: Path | None = None) -> dict:
    """``toy.json`` of the shipped toy model (or of an exported folder)."""
    return json.loads(((folder or shipped_dir()) / RECORD).read_text())


def _digest() -> str:
    """Short hash of the record (which lists every shipped file's sha256): a new toy never reuses an old cache."""
    return hashlib.sha256((shipped_dir() / RECORD).read_bytes()).hexdigest()[:12]


def _assemble_base(target: Path) -> None:
    from vm_model.tiny import write_clip_tokenizer

    source = shipped_dir() / "base"
    for part in BASE_PARTS:
        shutil.copytree(source / part, target / part)
    write_clip_tokenizer(target / "tokenizer", int(read_record()["base"]["max_tokens"]))


def toy_base_model() -> Path:
    """The toy base folder in the Stable Diffusion diffusers layout (assembled on first use)."""
    from vm_common.tiny import tiny_component

    return tiny_component(f"toy-base-{_digest()}", _assemble_base,
                          note="the shipped toy model's base (trained, vm_model/toy/weights), tokenizer added\n")


def toy_motion_adapter() -> Path:
    """The toy motion adapter folder (shipped as is)."""
    return shipped_dir() / MOTION_ADAPTER


def toy_videomaker_weights() -> Path:
    """The toy VideoMaker weights (the whole UNet after PISA + GIRL training; shipped as is)."""
    return shipped_dir() / VIDEOMAKER_WEIGHTS
