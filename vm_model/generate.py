"""`vm generate`: videos of the subject in a reference photo doing what each prompt says.

    vm generate --image me.jpg --prompt "A person wearing a Superman outfit." --out out/
    vm generate --preset tiny --image cat.png --prompts-file prompts.txt --seed 1 2 3 --out out/

Per (prompt, seed) it writes ``NNN-<slug>-s<seed>.mp4``, ``.gif`` and a ``.json`` sidecar (prompt, seed, resolved
config, protocol, weights, versions); a video already written is skipped only when its sidecar's fingerprint
proves it came from the same sources, protocol, reference pixels, prompt and seed, so an interrupted run resumes
where it stopped and a changed setting regenerates. Every protocol number is a flag (see ``vm_model.protocol``;
the official release's choices are one flag away). Reference images: EXIF rotation applied; RGBA composited on
white (``--reference-alpha drop``: discarded); grayscale and 16-bit converted to 8-bit RGB;
resized to the output size (as the official release does). ``--highlight head`` (or a class word such as ``dog``)
first applies the subject-highlight preprocessing (Grounding DINO box -> SAM mask -> white background) that the
model was trained with; without it the image is used as given.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from vm_common.config import add_dataclass_arguments, build_config, config_to_dict
from vm_common.io_utils import atomic_write_json
from vm_common.output_lock import OutputFolderBusy, hold_output_folder
from vm_common.media import ImageLoadError, load_image, write_gif, write_mp4
from vm_common.weights import MissingWeightsError

from vm_common.devices import default_device
from vm_common.status import OK

from .components import load_pipeline
from .execution import ExecutionOptions, batches
from .pisa import PISAConfig
from .presets import PRESET_HELP, PRESETS, presets_for
from .protocol import GenerationProtocol, render_videos, to_uint8
from .sources import ModelSources

logger = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    preset: str = field(default="full", metadata={"help": PRESET_HELP, "choices": sorted(PRESETS)})
    sources: ModelSources = field(default_factory=lambda: ModelSources(videomaker_weights="human"),
                                  metadata={"group": "model sources"})
    generation: GenerationProtocol = field(default_factory=GenerationProtocol,
                                           metadata={"group": "generation protocol"})
    execution: ExecutionOptions = field(default_factory=ExecutionOptions, metadata={
        "group": "execution (speed and memory; never changes a video beyond float tolerance)"})
    highlight: str | None = field(default=None, metadata={"help": "subject-highlight the image first with this "
                                                                  "detector prompt (e.g. 'head', 'dog')"})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda when available)"})


GENERATE_PRESETS = presets_for()


def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "prompt"


def read_prompts(prompts: list[str] | None, prompts_file: Path | None) -> list[str]:
    out = list(prompts or [])
    if prompts_file is not None:
        if not prompts_file.exists():
            raise FileNotFoundError(f"--prompts-file not found: {prompts_file}")
        for line in prompts_file.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    if not out:
        raise ValueError("no prompt: pass --prompt TEXT or --prompts-file FILE")
    for i, p in enumerate(out):
        if not p.strip():
            raise ValueError(f"prompt {i + 1} is empty")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vm generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", nargs="+", type=Path, required=True,
                   help="reference image(s) of the subject; several images = several reference frames")
    p.add_argument("--prompt", action="append", default=None, help="text prompt (repeatable)")
    p.add_argument("--prompts-file", type=Path, default=None, help="one prompt per line ('#' comments)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, default=None, help="YAML file of GenerateConfig keys (nested: sources:, "
                                                              "generation:)")
    add_dataclass_arguments(p, GenerateConfig, presets=GENERATE_PRESETS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = build_config(GenerateConfig, args, args.config, presets=GENERATE_PRESETS)
        prompts = read_prompts(args.prompt, args.prompts_file)
        references = [load_image(path, alpha=cfg.generation.reference_alpha) for path in args.image]
    except (ValueError, FileNotFoundError) as exc:  # ImageLoadError and ConfigError are ValueErrors
        logger.error("%s", exc)
        return 2
    try:
        with hold_output_folder(args.out):
            return generate(cfg, references, [str(p) for p in args.image], prompts, args.out)
    except (MissingWeightsError, ImageLoadError, ValueError, OutputFolderBusy) as exc:
        logger.error("%s", exc)
        return 2


def _highlight(references, sources_names, cfg: GenerateConfig):
    from vm_data.highlight import load_highlighter

    highlighter = load_highlighter(preset="tiny" if cfg.preset == "tiny" else "full", device=cfg.device)
    out, notes = [], []
    for image, name in zip(references, sources_names):
        result = highlighter.highlight(image, cfg.highlight)
        if result.status == OK:
            out.append(result.image)
            notes.append({"image": name, "highlight": OK, "box": result.box, "score": result.score})
        else:
            logger.warning("%s: subject highlight failed (%s: %s); using the image as given", name, result.status,
                           result.reason)
            out.append(image)
            notes.append({"image": name, "highlight": result.status, "reason": result.reason})
    return out, notes


def _fingerprint(run_identity: dict, prompt: str, seed: int) -> str:
    """Digest of everything that decides a video: sources, protocol, references (bytes), prompt and seed."""
    text = json.dumps({**run_identity, "prompt": prompt, "seed": int(seed)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _already_made(out_dir: Path, stem: str, fingerprint: str) -> bool:
    """True only for a complete video whose sidecar proves it came from the same inputs and config."""
    if not all((out_dir / f"{stem}.{ext}").exists() for ext in ("mp4", "gif", "json")):
        return False
    try:
        return json.loads((out_dir / f"{stem}.json").read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def generate(cfg: GenerateConfig, references, reference_names: list[str], prompts: list[str], out_dir: Path) -> int:
    from vm_common.provenance import provenance

    protocol, sources = cfg.generation, cfg.sources
    device = cfg.device or default_device()
    highlight_notes: list[dict] = []
    if cfg.highlight:
        references, highlight_notes = _highlight(references, reference_names, cfg)

    pipe = load_pipeline(sources, device=device, dtype=protocol.torch_dtype(device),
                         pisa=PISAConfig(mode=protocol.pisa_mode), execution=cfg.execution)
    reference_latents = pipe.prepare_reference_latents(references, protocol.height, protocol.width,
                                                       pipe._execution_device, pipe.unet.dtype,
                                                       encoding=protocol.reference_encoding)
    identity = {"sources": dataclasses.asdict(sources), "generation": dataclasses.asdict(protocol),
                "highlight": cfg.highlight, "references": [_image_digest(im) for im in references]}
    run_info = {
        "config": config_to_dict(cfg), "preset": cfg.preset, "random_weights": sources.random_weights,
        "sources": dataclasses.asdict(sources), "generation": dataclasses.asdict(protocol),
        "references": reference_names, "highlight": highlight_notes,
        "weights_report": dataclasses.asdict(pipe.weights_report) if pipe.weights_report else None,
        "pisa": dataclasses.asdict(pipe.pisa_config), **provenance(),
    }
    if sources.random_weights:
        logger.warning("%s preset: random weights, the videos are noise-like by design", cfg.preset)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "run.json", run_info)

    todo, skipped = [], 0
    for p_index, prompt in enumerate(prompts):
        for seed in protocol.seeds:
            stem = f"{p_index:03d}-{slugify(prompt)}-s{seed}"
            fingerprint = _fingerprint(identity, prompt, seed)
            if _already_made(out_dir, stem, fingerprint):
                skipped += 1
            else:
                todo.append((stem, prompt, seed, fingerprint))
    done = 0
    for batch in batches(todo, cfg.execution.batch_size):
        videos = render_videos(pipe, protocol, [b[1] for b in batch], reference_latents, [b[2] for b in batch])
        for (stem, prompt, seed, fingerprint), frames in zip(batch, videos):
            video = to_uint8(frames)
            write_mp4(out_dir / f"{stem}.mp4", video, fps=protocol.fps)
            write_gif(out_dir / f"{stem}.gif", video, fps=protocol.fps)
            atomic_write_json(out_dir / f"{stem}.json", {  # last: a sidecar means the video is complete
                "prompt": prompt, "seed": seed, "video": f"{stem}.mp4", "gif": f"{stem}.gif",
                "num_frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
                "fingerprint": fingerprint, **run_info,
            })
            done += 1
            logger.info("wrote %s", out_dir / f"{stem}.mp4")
    logger.info("generated %d video(s), %d already present, in %s", done, skipped, out_dir)
    return 0


def _image_digest(image) -> str:
    return hashlib.sha256(np.asarray(image).tobytes() + str(np.asarray(image).shape).encode()).hexdigest()


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
