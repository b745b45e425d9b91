"""Validation videos during training (``--validation-every N --validation-manifest M``).

Every N optimizer steps the main process generates each validation prompt x held-out reference with the current
weights (the EMA weights when ``--ema-decay`` is on), through :class:`~vm_model.pipeline.VideoMakerPipeline` built
around the training UNet itself (no second copy) and :func:`vm_model.protocol.render_video` with a
:class:`~vm_model.protocol.GenerationProtocol`, writes them as GIFs under ``RUN/validation/step-N/``, scores them
with vm_eval (CLIP-T, CLIP-I, DINO-I, T.Cons; Face Sim for ``kind: human``) and returns the means for the
trackers. Everything random in training is left untouched (the RNG states are restored afterwards), so a run
with validation trains exactly as one without.

Validation manifest (JSONL, one held-out subject per line; paths relative to the manifest's folder)::

    {"name": "anna", "reference": "refs/anna.png", "prompts": ["A person reading a book."], "kind": "human"}

``references`` (the first is used) and ``caption`` are accepted for ``reference`` and ``prompts``, so held-out
rows of a `vm preprocess-dataset` manifest work as they are; ``kind`` (human / object) defaults to object.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vm_common.io_utils import atomic_write_json, read_jsonl

logger = logging.getLogger(__name__)

VALIDATION_DIR = "validation"
METRICS = {"object": ("clip_t", "clip_i", "dino_i", "t_cons"),
           "human": ("clip_t", "face_sim", "clip_i", "dino_i", "t_cons")}


@dataclass(frozen=True)
class ValidationItem:
    name: str
    reference: Path
    prompts: tuple[str, ...]
    kind: str = "object"


def read_validation_manifest(path: str | Path) -> list[ValidationItem]:
    """The held-out subjects of a validation manifest (see the module docstring); errors name the line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--validation-manifest not found: {path}")
    items = []
    for i, row in enumerate(read_jsonl(path), start=1):
        if row.get("status", "kept") != "kept":
            continue
        reference = row.get("reference") or (row.get("references") or [None])[0]
        prompts = row.get("prompts") or ([row["prompt"]] if row.get("prompt") else []) or \
            ([row["caption"]] if row.get("caption") else [])
        kind = row.get("kind", "object")
        if not reference or not prompts:
            raise ValueError(f"{path}: line {i} needs a 'reference' (or 'references') and 'prompts' (or 'caption')")
        if kind not in METRICS:
            raise ValueError(f"{path}: line {i}: kind must be one of {sorted(METRICS)}, got {kind!r}")
        ref = Path(reference)
        ref = ref if ref.is_absolute() else path.parent / ref
        if not ref.exists():
            raise FileNotFoundError(f"{path}: line {i}: reference image not found: {ref}")
        name = str(row.get("name") or row.get("clip_id") or ref.stem)
        items.append(ValidationItem(name, ref, tuple(str(p) for p in prompts), kind))
    if not items:
        raise ValueError(f"{path}: no validation subjects")
    return items


@contextlib.contextmanager
def preserved_rng(device: torch.device):
    """Every global RNG (torch CPU and CUDA, numpy, python) as it was before the block."""
    py, npy = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


class Validator:
    """Generates, writes and scores the validation videos of one run."""

    def __init__(self, items: list[ValidationItem], protocol, run_dir: Path, encoder_preset: str | None,
                 device: torch.device):
        self.items, self.protocol, self.run_dir = items, protocol, Path(run_dir)
        self.encoder_preset, self.device = encoder_preset, device

    def _encoders(self):
        from vm_eval.encoders import EncoderConfig, Encoders

        return Encoders(EncoderConfig(preset=self.encoder_preset, device=str(self.device)))

    def check(self) -> None:
        """Fail at the start of the run, not at step N, when the scoring weights are missing."""
        if self.encoder_preset is None:
            return
        from vm_eval.metrics import get_metric

        families = {get_metric(m).family for item in self.items for m in METRICS[item.kind]}
        self._encoders().check_available(families)

    def run(self, step: int, *, unet, vae, text_encoder, tokenizer, scheduler, autocast) -> dict[str, float]:
        """Validation at ``step``; returns ``{"validation/<metric>": mean}`` (metrics with at least one value)."""
        from vm_common.media import load_image, write_gif

        from ..generate import slugify
        from ..pipeline import VideoMakerPipeline
        from ..protocol import render_video, to_uint8

        out = self.run_dir / VALIDATION_DIR / f"step-{step:08d}"
        out.mkdir(parents=True, exist_ok=True)
        was_training = unet.training
        unet.eval()
        rows: list[dict] = []
        try:
            with preserved_rng(self.device), torch.no_grad(), autocast():
                pipe = VideoMakerPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler)
                pipe.set_progress_bar_config(disable=True)
                p = self.protocol
                for item in self.items:
                    latents = pipe.prepare_reference_latents(item.reference, p.height, p.width, self.device,
                                                             text_encoder.dtype, encoding=p.reference_encoding,
                                                             alpha=p.reference_alpha)
                    for index, prompt in enumerate(item.prompts):
                        for seed in p.seeds:
                            video = to_uint8(render_video(pipe, p, prompt, latents, seed))
                            gif = out / f"{item.name}-{index:02d}-{slugify(prompt)}-s{seed}.gif"
                            write_gif(gif, video, fps=p.fps)
                            rows.append({"subject": item.name, "kind": item.kind, "prompt": prompt, "seed": seed,
                                         "gif": gif.name, "reference": str(item.reference), "frames": video})
                del pipe
            means = self._score(rows, load_image) if self.encoder_preset else {}
        finally:
            unet.train(was_training)
        for row in rows:
            row.pop("frames", None)
        atomic_write_json(out / "scores.json", {"step": step, "encoders": self.encoder_preset, "videos": rows,
                                                "means": means})
        logger.info("validation at step %d: %d video(s) in %s%s", step, len(rows), out,
                    "".join(f", {k.split('/')[-1]} {v:.4f}" for k, v in means.items()))
        return means

    def _score(self, rows: list[dict], load_image) -> dict[str, float]:
        from vm_eval.scorer import Reference, VideoScorer

        with preserved_rng(self.device):  # tiny encoders are built from the global RNG
            encoders = self._encoders()
            scorer = VideoScorer(encoders)
            values: dict[str, list[float]] = {}
            for row in rows:
                ref = Reference(key=row["reference"], image=load_image(row["reference"]))
                results = scorer.score(row["frames"], prompt=row["prompt"], reference=ref, kind=row["kind"],
                                       metrics=METRICS[row["kind"]])
                row["metrics"] = {name: {"value": r.value, "status": r.status, "reason": r.reason}
                                  for name, r in results.items()}
                for name, result in results.items():
                    if result.value is not None:
                        values.setdefault(name, []).append(float(result.value))
            del scorer, encoders
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return {f"validation/{name}": float(np.mean(v)) for name, v in values.items()}
