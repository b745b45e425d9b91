"""`vm generate`: videos of the subject in a reference photo doing what each prompt says.

    vm generate --image me.jpg --prompt "A person wearing a Superman outfit." --out out/
    vm generate --preset tiny --image cat.png --prompts-file prompts.txt --seed 1 2 3 --out out/

Per (prompt, seed) it writes ``NNN-<slug>-s<seed>.mp4``, ``.gif`` and a ``.json`` sidecar (prompt, seed, resolved
config, weights, versions); videos already written are skipped, so an interrupted run resumes where it stopped.
Reference images: EXIF rotation applied; RGBA composited on white; grayscale and 16-bit converted to 8-bit RGB;
resized to the output size (as the official release does). ``--highlight head`` (or a class word such as ``dog``)
first applies the subject-highlight preprocessing (Grounding DINO box -> SAM mask -> white background) that the
model was trained with; without it the image is used as given.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vm_common.config import add_dataclass_arguments, build_config, config_to_dict
from vm_common.io_utils import atomic_write_json
from vm_common.media import ImageLoadError, load_image, write_gif, write_mp4
from vm_common.weights import MissingWeightsError

from .components import ModelSources, default_device, load_pipeline
from .pipeline import EVAL_NEGATIVE_PROMPT
from .pisa import PISAConfig

logger = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    preset: str = field(default="full", metadata={"help": "full: the official base + weights; tiny: random tiny "
                                                          "components (CPU, for trying the tool)",
                                                  "choices": ["full", "tiny"]})
    weights: str | None = field(default="human", metadata={"help": "'human' / 'object' (official), a file, a "
                                                                   "`vm train` run folder, or 'none'"})
    base_model: str | None = field(default=None, metadata={"help": "SD1.5 base folder or HF id"})
    motion_adapter: str | None = field(default=None, metadata={"help": "motion adapter folder or HF id"})
    vae: str | None = field(default=None, metadata={"help": "VAE folder or HF id"})
    num_frames: int = field(default=16, metadata={"help": "frames per video"})
    height: int | None = field(default=None, metadata={"help": "pixels (default: 512, the tiny preset 64)"})
    width: int | None = field(default=None, metadata={"help": "pixels (default: 512, the tiny preset 64)"})
    steps: int = field(default=30, metadata={"help": "DDIM steps"})
    guidance_scale: float = field(default=8.0, metadata={"help": "classifier-free guidance scale"})
    negative_prompt: str = field(default=EVAL_NEGATIVE_PROMPT, metadata={"help": "negative prompt"})
    fps: float = field(default=8.0, metadata={"help": "frames per second of the written videos"})
    pisa_mode: str = field(default="concat", metadata={"help": "concat, or lse (exact, cheaper inference)",
                                                       "choices": ["concat", "lse"]})
    highlight: str | None = field(default=None, metadata={"help": "subject-highlight the image first with this "
                                                                  "detector prompt (e.g. 'head', 'dog')"})
    device: str | None = field(default=None, metadata={"help": "cuda / cpu (default: cuda when available)"})


PRESET_DEFAULTS = {"full": {}, "tiny": dict(num_frames=8, steps=4, weights=None)}


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
    p.add_argument("--seed", nargs="+", type=int, default=[42], help="seeds (default: 42, as the paper)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, default=None, help="YAML file of GenerateConfig keys")
    add_dataclass_arguments(p, GenerateConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = args.preset or "full"
    cfg = build_config(GenerateConfig, args, args.config, base=PRESET_DEFAULTS[preset])
    try:
        prompts = read_prompts(args.prompt, args.prompts_file)
        references = [load_image(path) for path in args.image]
    except (ValueError, FileNotFoundError) as exc:  # ImageLoadError is a ValueError
        logger.error("%s", exc)
        return 2
    try:
        return generate(cfg, references, [str(p) for p in args.image], prompts, args.seed, args.out)
    except (MissingWeightsError, ImageLoadError, ValueError) as exc:
        logger.error("%s", exc)
        return 2


def _highlight(references, sources_names, cfg: GenerateConfig):
    from vm_data.highlight import load_highlighter

    highlighter = load_highlighter(preset=cfg.preset, device=cfg.device)
    out, notes = [], []
    for image, name in zip(references, sources_names):
        result = highlighter.highlight(image, cfg.highlight)
        if result.status == "ok":
            out.append(result.image)
            notes.append({"image": name, "highlight": "ok", "box": result.box, "score": result.score})
        else:
            logger.warning("%s: subject highlight failed (%s: %s); using the image as given", name, result.status,
                           result.reason)
            out.append(image)
            notes.append({"image": name, "highlight": result.status, "reason": result.reason})
    return out, notes


def generate(cfg: GenerateConfig, references, reference_names: list[str], prompts: list[str], seeds: list[int],
             out_dir: Path) -> int:
    from vm_common.provenance import provenance

    weights = None if (cfg.weights in (None, "none")) else cfg.weights
    sources = ModelSources(videomaker_weights=weights)
    for name in ("base_model", "motion_adapter", "vae"):
        if getattr(cfg, name):
            setattr(sources, name, getattr(cfg, name))
    device = cfg.device or default_device()
    highlight_notes: list[dict] = []
    if cfg.highlight:
        references, highlight_notes = _highlight(references, reference_names, cfg)

    pipe = load_pipeline(sources, preset=cfg.preset, device=device, pisa=PISAConfig(mode=cfg.pisa_mode))
    height = cfg.height or pipe.unet.config.sample_size * pipe.vae_scale_factor
    width = cfg.width or pipe.unet.config.sample_size * pipe.vae_scale_factor
    reference_latents = pipe.prepare_reference_latents(references, height, width, pipe.device, pipe.unet.dtype)
    random_weights = cfg.preset == "tiny"
    run_info = {
        "config": config_to_dict(cfg), "preset": cfg.preset, "random_weights": random_weights,
        "sources": dataclasses.asdict(pipe.sources), "references": reference_names, "highlight": highlight_notes,
        "weights_report": dataclasses.asdict(pipe.weights_report) if getattr(pipe, "weights_report", None) else None,
        "pisa": dataclasses.asdict(pipe.pisa_config), **provenance(),
    }
    if random_weights:
        logger.warning("tiny preset: random weights, the videos are noise-like by design")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "run.json", run_info)

    done = skipped = 0
    for p_index, prompt in enumerate(prompts):
        for seed in seeds:
            stem = f"{p_index:03d}-{slugify(prompt)}-s{seed}"
            if all((out_dir / f"{stem}.{ext}").exists() for ext in ("mp4", "gif", "json")):
                skipped += 1
                continue
            generator = torch.Generator(device="cpu").manual_seed(seed)
            frames = pipe(prompt=prompt, negative_prompt=cfg.negative_prompt or None,
                          reference_latents=reference_latents, num_frames=cfg.num_frames, height=height, width=width,
                          num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale, generator=generator,
                          output_type="np").frames[0]
            video = np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)
            write_mp4(out_dir / f"{stem}.mp4", video, fps=cfg.fps)
            write_gif(out_dir / f"{stem}.gif", video, fps=cfg.fps)
            atomic_write_json(out_dir / f"{stem}.json", {
                "prompt": prompt, "seed": seed, "video": f"{stem}.mp4", "gif": f"{stem}.gif",
                "num_frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
                **run_info,
            })
            done += 1
            logger.info("wrote %s", out_dir / f"{stem}.mp4")
    logger.info("generated %d video(s), %d already present, in %s", done, skipped, out_dir)
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
