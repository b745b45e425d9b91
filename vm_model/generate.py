"""`vm generate`: videos of the subject in a reference photo doing what each prompt says.

    vm generate --image me.jpg --prompt "A person wearing a Superman outfit." --out out/
    vm generate --preset tiny --image cat.png --prompts-file prompts.txt --seed 1 2 3 --out out/

Per (prompt, seed) it writes ``NNN-<slug>-s<seed>.mp4``, ``.gif`` and a ``.json`` sidecar (prompt, seed, resolved
config, protocol, weights, versions); a video already written is skipped only when its sidecar's fingerprint
proves it came from the same sources, protocol, reference pixels, highlight, prompt and seed, so an interrupted run
resumes where it stopped. A folder holding videos made otherwise (another image, other settings, other prompts or
seeds) is refused before anything is made or written, naming what changed; ``--overwrite`` replaces them (videos
that match are still kept). Every protocol number is a flag (see ``vm_model.protocol``;
the official release's choices are one flag away). Reference images: EXIF rotation applied; RGBA composited on
white (``--reference-alpha drop``: discarded); grayscale and 16-bit converted to 8-bit RGB;
resized to the output size (as the official release does). ``--highlight head`` (or a class word such as ``dog``)
first applies the subject-highlight preprocessing (Grounding DINO box -> SAM mask -> white background) that the
model was trained with; without it the image is used as given.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from vm_common.config import ConfigError, add_dataclass_arguments, build_config, config_to_dict
from vm_common.error_policy import RAISE, ErrorPolicy
from vm_common.errors import StaleOutputError, run_main
from vm_common.fingerprint import array_digest, changed_parts, diff_keys, digest, fingerprint
from vm_common.io_utils import atomic_write_json
from vm_common.output_lock import hold_output_folder
from vm_common.media import load_image, write_gif, write_mp4

from vm_common.devices import default_device
from vm_common.status import OK

from .components import load_pipeline
from .execution import ExecutionOptions, batches
from .pisa import PISAConfig
from .presets import PRESET_HELP, PRESETS, presets_for
from .protocol import GenerationProtocol, render_videos, to_uint8
from .sources import ModelSources
from .unet_call import check_frame_count

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
        if not prompts_file.is_file():
            raise ConfigError(f"--prompts-file not found (or not a file): {prompts_file}")
        try:
            text = prompts_file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--prompts-file {prompts_file}: not UTF-8 text ({exc.reason})") from None
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    if not out:
        raise ConfigError("no prompt: pass --prompt TEXT or --prompts-file FILE")
    for i, p in enumerate(out):
        if not p.strip():
            raise ConfigError(f"prompt {i + 1} is empty")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vm generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", nargs="+", type=Path, required=True, action="extend",
                   help="reference image(s), repeatable (--image a.png --image b.png or --image a.png b.png): "
                        "several images = several reference frames; with weights that have an ID router "
                        "(`vm train --router`) each is a separate subject, routed (docs/multi_subject.md)")
    p.add_argument("--prompt", action="append", default=None, help="text prompt (repeatable)")
    p.add_argument("--prompts-file", type=Path, default=None, help="one prompt per line ('#' comments)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, default=None, help="YAML file of GenerateConfig keys (nested: sources:, "
                                                              "generation:)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace videos in --out that were made from other inputs or settings (default: refuse, "
                        "naming what changed); videos that match are kept")
    add_dataclass_arguments(p, GenerateConfig, presets=GENERATE_PRESETS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit codes (:mod:`vm_common.errors`): 0 done, 2 a user error (one message), 1 an internal error."""
    return run_main("vm generate", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    cfg = build_config(GenerateConfig, args, args.config, presets=GENERATE_PRESETS)  # validated: nothing written yet
    prompts = read_prompts(args.prompt, args.prompts_file)
    references = [load_image(path, alpha=cfg.generation.reference_alpha) for path in args.image]
    with hold_output_folder(args.out):
        return generate(cfg, references, [str(p) for p in args.image], prompts, args.out, overwrite=args.overwrite)


def _highlight(references, sources_names, cfg: GenerateConfig):
    from vm_data.highlight import load_highlighter

    # one image, the user's: a bug in the highlighter is an internal error (traceback, exit 1), never "no subject"
    highlighter = load_highlighter(preset="tiny" if cfg.preset == "tiny" else "full", device=cfg.device,
                                   policy=ErrorPolicy(RAISE))
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


def _video_fingerprint(run_identity: dict, prompt: str, seed: int) -> tuple[str, dict[str, str]]:
    """(fingerprint, per-part digests) of everything that decides a video: sources, protocol, highlight, reference
    pixels, prompt and seed. The parts are stored in the sidecar to name what changed."""
    parts = fingerprint({**run_identity, "prompt": prompt, "seed": int(seed)})
    return digest(parts), parts


def _read_sidecar(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _already_made(out_dir: Path, stem: str, fingerprint: str) -> bool:
    """True only for a complete video whose sidecar proves it came from the same inputs and config."""
    if not all((out_dir / f"{stem}.{ext}").exists() for ext in ("mp4", "gif", "json")):
        return False
    return (_read_sidecar(out_dir / f"{stem}.json") or {}).get("fingerprint") == fingerprint


def _what_changed(sidecar: dict, parts: dict[str, str], identity: dict) -> str:
    """What differs between a sidecar and the video planned under its name (settings named key by key)."""
    changed = changed_parts(sidecar.get("fingerprint_parts"), parts) if "fingerprint_parts" in sidecar else \
        ["fingerprint (sidecar of an earlier version)"]
    details = []
    for part in ("generation", "sources"):
        if part in changed and isinstance(sidecar.get(part), dict):
            details += diff_keys(sidecar[part], identity[part], f"{part}.")
    return ", ".join(changed) + (f" ({'; '.join(details[:6])})" if details else "")


def find_stale_videos(out_dir: Path, planned: dict[str, tuple[str, dict[str, str]]], identity: dict
                      ) -> list[tuple[str, str]]:
    """(stem, what changed) of every video in ``out_dir`` whose sidecar does not prove it matches the plan
    (``planned``: stem -> (fingerprint, parts)): a sidecar with another fingerprint under a planned name, or a
    video of this command under a name no longer planned (other prompts or seeds)."""
    stale = []
    for sidecar_path in sorted(out_dir.glob("*.json")) if out_dir.is_dir() else []:
        stem = sidecar_path.stem
        if stem == "run":
            continue
        sidecar = _read_sidecar(sidecar_path)
        if sidecar is None or "fingerprint" not in sidecar:
            continue  # not a sidecar of ours
        if stem not in planned:
            stale.append((stem, "not part of this run (other prompts or seeds)"))
        elif sidecar["fingerprint"] != planned[stem][0]:
            stale.append((stem, _what_changed(sidecar, planned[stem][1], identity)))
    return stale


def _refuse_or_clear(out_dir: Path, stale: list[tuple[str, str]], overwrite: bool) -> None:
    if not stale:
        return
    if not overwrite:
        listed = "; ".join(f"{stem}: {why}" for stem, why in stale[:5])
        more = f"; ... ({len(stale)} in all)" if len(stale) > 5 else ""
        raise StaleOutputError(f"{out_dir} holds {len(stale)} video(s) made from other inputs or settings "
                               f"({listed}{more}). Nothing was generated. Pass --overwrite to replace them, or "
                               f"choose another --out")
    for stem, _ in stale:
        for ext in ("json", "mp4", "gif"):  # the sidecar first: a video without it is incomplete, never trusted
            (out_dir / f"{stem}.{ext}").unlink(missing_ok=True)
    logger.warning("--overwrite: removed %d video(s) made from other inputs or settings", len(stale))


def generate(cfg: GenerateConfig, references, reference_names: list[str], prompts: list[str], out_dir: Path, *,
             overwrite: bool = False) -> int:
    """Videos of ``references`` for every (prompt, seed) into ``out_dir``; videos there made from other inputs or
    settings refuse the call (:class:`~vm_common.errors.StaleOutputError`) unless ``overwrite``."""
    from vm_common.provenance import provenance

    protocol, sources = cfg.generation, cfg.sources
    device = cfg.device or default_device()
    highlight_notes: list[dict] = []
    if cfg.highlight:
        references, highlight_notes = _highlight(references, reference_names, cfg)
    identity = {"sources": dataclasses.asdict(sources), "generation": dataclasses.asdict(protocol),
                "highlight": cfg.highlight, "references": [array_digest(np.asarray(im)) for im in references]}
    planned = {}
    for p_index, prompt in enumerate(prompts):
        for seed in protocol.seeds:
            stem = f"{p_index:03d}-{slugify(prompt)}-s{seed}"
            planned[stem] = _video_fingerprint(identity, prompt, seed)
    _refuse_or_clear(out_dir, find_stale_videos(out_dir, planned, identity), overwrite)

    pipe = load_pipeline(sources, device=device, dtype=protocol.torch_dtype(device),
                         pisa=PISAConfig(mode=protocol.attention_mode(device)), execution=cfg.execution)
    check_frame_count(pipe.unet, protocol.num_frames, len(references))  # a user error, before anything is written
    reference_latents = pipe.prepare_reference_latents(references, protocol.height, protocol.width,
                                                       pipe._execution_device, pipe.unet.dtype,
                                                       encoding=protocol.reference_encoding)
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
            if _already_made(out_dir, stem, planned[stem][0]):
                skipped += 1
            else:
                todo.append((stem, prompt, seed, planned[stem][0]))
    done = 0
    for batch in batches(todo, cfg.execution.batch_size):
        videos = render_videos(pipe, protocol, [b[1] for b in batch], reference_latents, [b[2] for b in batch])
        for (stem, prompt, seed, video_fingerprint), frames in zip(batch, videos):
            video = to_uint8(frames)
            write_mp4(out_dir / f"{stem}.mp4", video, fps=protocol.fps)
            write_gif(out_dir / f"{stem}.gif", video, fps=protocol.fps)
            atomic_write_json(out_dir / f"{stem}.json", {  # last: a sidecar means the video is complete
                "prompt": prompt, "seed": seed, "video": f"{stem}.mp4", "gif": f"{stem}.gif",
                "num_frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
                "fingerprint": video_fingerprint, "fingerprint_parts": planned[stem][1], **run_info,
            })
            done += 1
            logger.info("wrote %s", out_dir / f"{stem}.mp4")
    logger.info("generated %d video(s), %d already present, in %s", done, skipped, out_dir)
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
