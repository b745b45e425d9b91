"""``vm bench export RUN --format vbench|opens2v --out DIR``: a run's videos named and described as the community
suites' own tools expect, so that their numbers can be checked with their code.

``vbench`` (Vchitect/VBench, ``evaluate.py --mode=custom_input``; README "Evaluate Your Own Videos"): one folder of
``.mp4``/``.gif`` files per method (VBench's custom input reads every file with those extensions in
``--videos_path``; its six custom-input dimensions need no prompt) and a prompt file in the format of its
``--prompt_file`` (``{"<file name>": "<prompt>"}``; ``VBench.build_full_info_json`` joins each key with
``--videos_path``). mp4 files are copied byte for byte; GIFs and other formats are encoded as near-lossless H.264
mp4 (crf 0, 4:4:4 chroma: the frames VBench reads differ from ours by the RGB <-> YUV rounding only):
VBench's ``load_video`` reads GIFs, but its motion smoothness reads videos through OpenCV from ``.mp4`` only and
raises on a ``.gif`` (``vbench/motion_smoothness.py``), so a GIF export would fail that dimension in VBench's own tool.
File names: the sample id made a file name (``astronaut_p01_s42.mp4``).

``opens2v`` (PKU-YuanGroup/OpenS2V-Nexus, ``eval/README.md`` "Prepare Videos for Evaluation" and the
``eval/get_*.py`` scripts): one folder per method (per method and seed when a run has several seeds) of
``<case_id>.mp4`` files - the scripts list ``*.mp4`` in ``--input_video_folder`` and look each case up in the case
file (``--input_json_file``) by the file name without extension; ``--input_image_folder`` is the dataset folder the
case's ``img_paths`` are relative to. Only videos of OpenS2V-Eval cases can be exported so (runs of the
``opens2v-*`` benchmarks, or scored rows whose subject or sample id is a case id); GIFs are encoded as H.264 mp4
(yuv420p, ``--crf``, lossy), mp4 files copied.

``DIR/export.json`` records the run, the format, per method the folder, the files and the command lines of the
suite's tools (with the paths filled in), and provenance. Re-exporting into the same folder rewrites the files
(atomically); a folder holding another run's or format's export is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vm_common.config import ConfigError, add_dataclass_arguments, build_config, config_to_dict
from vm_common.errors import InputFileError, UserError, run_main
from vm_common.io_utils import atomic_output, atomic_write_json
from vm_common.media import write_mp4
from vm_common.output_lock import hold_output_folder
from vm_common.provenance import provenance
from vm_common.safe_names import path_inside, safe_component

from .opens2v_cases import is_case_id
from .store import read_samples

logger = logging.getLogger(__name__)

FORMATS = ("vbench", "opens2v")
VBENCH_DIMENSIONS = ("subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree",
                     "aesthetic_quality", "imaging_quality")
OPENS2V_SCRIPTS = ("get_aesscore.py", "get_motionscore.py", "get_facesim.py", "get_gmescore.py",
                   "get_nexusscore.py", "get_naturalscore.py")
VBENCH_COPY = (".mp4",)  # copied as they are; anything else is encoded as mp4 (module docstring)
PROMPTS_FILE = "vbench_prompts.json"


class ExportError(UserError, ValueError):
    """The run cannot be exported in the asked format; the message says why and what to do."""


@dataclass
class ExportConfig:
    format: str = field(default="vbench", metadata={
        "help": "vbench: VBench's custom-input folder + prompt file; opens2v: <case_id>.mp4 per OpenS2V-Eval case",
        "choices": list(FORMATS)})
    out: Path | None = field(default=None, metadata={"help": "export folder"})
    methods: str | None = field(default=None, metadata={"help": "comma-separated method names (default: all)"})
    crf: int = field(default=17, metadata={"help": "opens2v: H.264 quality of GIFs encoded as mp4 (0 = best; vbench "
                                                   "exports are always near-lossless)",
                                           "min": 0, "max": 51})
    overwrite: bool = field(default=False, metadata={
        "help": "replace an export of another run or format in --out"})


@dataclass(frozen=True)
class Video:
    method: str
    sample_id: str
    subject: str
    prompt: str
    seed: int | None
    path: Path


def run_videos(run_dir: Path, methods: set[str] | None = None) -> list[Video]:
    """One :class:`Video` per (method, sample id) of a run folder's rows, its file resolved from the run folder."""
    rows = read_samples(run_dir)
    if not rows:
        raise InputFileError(f"no rows in {run_dir / 'samples.jsonl'} (nothing generated or scored yet?)")
    seen: dict[tuple[str, str], Video] = {}
    for r in rows:
        key = (str(r.get("method")), str(r.get("sample_id")))
        if key in seen or (methods and key[0] not in methods) or not r.get("video"):
            continue
        p = Path(r["video"])
        seen[key] = Video(key[0], key[1], str(r.get("subject")), str(r.get("prompt") or ""), r.get("seed"),
                          p if p.is_absolute() else run_dir / p)
    if methods and (unknown := sorted(methods - {k[0] for k in seen})):
        raise ExportError(f"method(s) not in {run_dir}: {', '.join(unknown)}; there: "
                          f"{', '.join(sorted({k[0] for k in seen}))}")
    missing = [str(v.path) for v in seen.values() if not v.path.is_file()]
    if missing:
        raise InputFileError(f"{len(missing)} video file(s) of {run_dir} not found (e.g. {', '.join(missing[:3])}); "
                             f"nothing was exported")
    return list(seen.values())


def _method_folders(videos: list[Video]) -> dict[str, str]:
    folders: dict[str, str] = {}
    for m in sorted({v.method for v in videos}):
        name = safe_component(m, "method")
        if name in folders.values():
            raise ExportError(f"methods {m!r} and {next(k for k, f in folders.items() if f == name)!r} both become "
                              f"the folder {name!r}; export them separately with --methods")
        folders[m] = name
    return folders


def _copy(src: Path, dst: Path) -> None:
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)


def _encode_mp4(src: Path, dst: Path, fps: float, crf: int, pix_fmt: str = "yuv420p") -> None:
    from .videoio import read_video_strict

    write_mp4(dst, read_video_strict(src), fps=fps, crf=crf, pix_fmt=pix_fmt)


def _fps(run_meta: dict, video: Path) -> float:
    fps = (run_meta.get("generation") or {}).get("fps")
    if fps:
        return float(fps)
    from vm_common.media import video_info

    return video_info(video).fps or 8.0


def export_vbench(videos: list[Video], out: Path, run_meta: dict, crf: int) -> dict:
    methods = {}
    for method, folder in _method_folders(videos).items():
        vdir = path_inside(out, folder, "videos")
        vdir.mkdir(parents=True, exist_ok=True)
        prompts = {}
        for v in sorted((v for v in videos if v.method == method), key=lambda v: v.sample_id):
            ext = v.path.suffix.lower()
            name = safe_component(v.sample_id, "video") + (ext if ext in VBENCH_COPY else ".mp4")
            if name in prompts:
                raise ExportError(f"two videos of {method!r} become the file {name!r}; nothing more was exported")
            dst = path_inside(vdir, name)
            if ext in VBENCH_COPY:
                _copy(v.path, dst)
            else:  # near-lossless, so that VBench's numbers on the export can be held against ours
                _encode_mp4(v.path, dst, _fps(run_meta, v.path), crf=0, pix_fmt="yuv444p")
            prompts[name] = v.prompt
        prompt_file = path_inside(out, folder, PROMPTS_FILE)
        atomic_write_json(prompt_file, prompts)
        methods[method] = {
            "folder": str(vdir), "prompt_file": str(prompt_file), "videos": len(prompts),
            "command": ["python", "evaluate.py", "--videos_path", str(vdir), "--mode=custom_input", "--prompt_file",
                        str(prompt_file), "--dimension", *VBENCH_DIMENSIONS],
        }
    return methods


def _case_id(v: Video) -> str:
    for candidate in (v.subject, v.sample_id):
        if is_case_id(candidate):
            return candidate
    raise ExportError(f"video {v.sample_id!r} of {v.method!r} is not an OpenS2V-Eval case (its subject "
                      f"{v.subject!r} is no case id such as 'singleface_3'): OpenS2V's scripts find a video's "
                      f"reference and prompt by its case id. Generate with `vm bench run --benchmark opens2v-human "
                      f"--subjects OpenS2V-Eval`, or export this run with --format vbench")


def _opens2v_source(run_meta: dict) -> tuple[str, str]:
    """(case file, dataset folder) of an opens2v-* run, as recorded in run.json; placeholders otherwise."""
    root = (run_meta.get("config") or {}).get("subjects")
    eval_json = None
    try:
        from .bench_defs import load_benchmark

        spec = load_benchmark(str(run_meta.get("benchmark"))).subjects_spec
        eval_json = spec.get("eval_json") if spec.get("source") == "opens2v" else None
    except UserError:
        pass
    root = os.path.abspath(root) if root else "<OpenS2V-Eval>"
    return os.path.join(root, eval_json or "<Track>_Eval.json"), root


def export_opens2v(videos: list[Video], out: Path, run_meta: dict, crf: int) -> dict:
    cases = {(v.method, v.sample_id): _case_id(v) for v in videos}  # every video checked before anything is written
    eval_json, root = _opens2v_source(run_meta)
    methods = {}
    for method, folder in _method_folders(videos).items():
        mine = sorted((v for v in videos if v.method == method), key=lambda v: v.sample_id)
        seeds = sorted({v.seed for v in mine}, key=str)
        for seed in seeds:
            sub = (folder,) if len(seeds) == 1 else (folder, safe_component(f"seed{seed}"))
            vdir = path_inside(out, *sub)
            vdir.mkdir(parents=True, exist_ok=True)
            written: dict[str, str] = {}
            for v in (v for v in mine if v.seed == seed):
                case = cases[(method, v.sample_id)]
                if case in written:
                    raise ExportError(f"{method!r} has two videos of case {case} (seed {seed}): {written[case]}, "
                                      f"{v.sample_id}")
                dst = path_inside(vdir, f"{case}.mp4")
                if v.path.suffix.lower() == ".mp4":
                    _copy(v.path, dst)
                else:
                    _encode_mp4(v.path, dst, _fps(run_meta, v.path), crf)
                written[case] = v.sample_id
            key = method if len(seeds) == 1 else f"{method} (seed {seed})"
            methods[key] = {
                "folder": str(vdir), "videos": len(written), "seed": seed,
                "arguments": {"--input_video_folder": str(vdir), "--input_json_file": eval_json,
                              "--input_image_folder": root},
                "commands": [["python", script, "--input_video_folder", str(vdir)]
                             + (["--input_json_file", eval_json] if script in ("get_facesim.py", "get_gmescore.py",
                                                                                "get_nexusscore.py") else [])
                             + (["--input_image_folder", root] if script in ("get_facesim.py", "get_nexusscore.py")
                                else []) for script in OPENS2V_SCRIPTS],
            }
    return methods


def export_run(run_dir: Path, out: Path, fmt: str, *, methods: set[str] | None = None, crf: int = 17,
               overwrite: bool = False, config: dict | None = None) -> dict:
    """Export ``run_dir``'s videos into ``out`` (held with the output lock); returns what export.json records."""
    run_dir, out = Path(run_dir), Path(out)
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not run_dir.is_dir():
        raise InputFileError(f"run folder not found: {run_dir}")
    run_meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    videos = run_videos(run_dir, methods)
    with hold_output_folder(out, "vm bench export"):
        record_path = out / "export.json"
        if record_path.is_file() and not overwrite:
            old = json.loads(record_path.read_text())
            if (old.get("run"), old.get("format")) != (str(run_dir.resolve()), fmt):
                raise ExportError(f"{out} holds the {old.get('format')} export of {old.get('run')}; choose another "
                                  f"--out or pass --overwrite")
        exported = (export_vbench if fmt == "vbench" else export_opens2v)(videos, out, run_meta, crf)
        record = {"command": "export", "format": fmt, "run": str(run_dir.resolve()),
                  "benchmark": run_meta.get("benchmark"), "methods": exported, "crf": crf,
                  "source": {"vbench": "Vchitect/VBench evaluate.py --mode=custom_input (README: Evaluate Your Own "
                                       "Videos)",
                             "opens2v": "PKU-YuanGroup/OpenS2V-Nexus eval/README.md (Prepare Videos for Evaluation), "
                                        "eval/get_*.py"}[fmt],
                  "config": config or {}, "provenance": provenance()}
        atomic_write_json(record_path, record)
    logger.info("exported %d video(s) of %s as %s into %s", len(videos), run_dir, fmt, out)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vm bench export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_arguments(parser)
    return parser


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder (of vm bench run or vm bench score)")
    parser.add_argument("--config", type=Path, default=None, help="YAML file of options")
    add_dataclass_arguments(parser, ExportConfig)


def _cmd_export(argv: list[str]) -> int:
    import sys

    args = build_parser().parse_args(argv)
    cfg = build_config(ExportConfig, args, args.config)
    if cfg.out is None:
        raise ConfigError("--out DIR is required")
    methods = {m.strip() for m in cfg.methods.split(",") if m.strip()} if cfg.methods else None
    record = export_run(args.run, cfg.out, cfg.format, methods=methods, crf=cfg.crf, overwrite=cfg.overwrite,
                        config=config_to_dict(cfg))
    for name, m in record["methods"].items():
        cmds = [m["command"]] if "command" in m else m["commands"]
        sys.stdout.write(f"{name}: {m['videos']} video(s) in {m['folder']}\n")
        for c in cmds:
            sys.stdout.write("  " + " ".join(_quote(x) for x in c) + "\n")
    return 0


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(str(text))


def cmd_export(argv: list[str]) -> int:
    return run_main("vm bench export", lambda: _cmd_export(argv))
