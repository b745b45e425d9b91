"""Parity of our VBench motion smoothness and imaging quality (:mod:`vm_eval.vbench_motion_imaging`, with our
AMT-S :mod:`vm_eval.amt` and MUSIQ :mod:`vm_eval.musiq`) with VBench's own code, video by video.

Neither VBench nor pyiqa is installed or committed here. The script runs their code from checkouts given on the
command line (``git clone https://github.com/Vchitect/VBench`` and ``https://github.com/chaofengc/IQA-PyTorch``),
copied at run time into a temporary folder:

* motion smoothness: ``vbench.motion_smoothness.motion_smoothness`` with a ``MotionSmoothness`` whose network is
  VBench's own AMT-S (``vbench/third_party/amt/networks/AMT-S.py``, built from its ``cfgs/AMT-S.yaml``) carrying
  our random weights; VBench reads each video as a folder of PNG frames (its ``get_frames_from_img_folder``), we
  read the GIF those frames came from (checked identical: ``reader diff``). Only ``load_model`` is bypassed (it
  reads a checkpoint file through omegaconf); the device is the string ``'cpu'`` (VBench's CPU branch).
* imaging quality: ``vbench.imaging_quality.technical_quality`` (preprocessing mode ``longer``, its default) with
  pyiqa's own ``MUSIQ`` class (``pyiqa/archs/musiq_arch.py``) carrying our random weights, on the GIFs (VBench's
  ``load_video``). pyiqa's package ``__init__`` files (which import every metric and its dependencies) are
  replaced by empty ones in the temporary copy; nothing of MUSIQ is reimplemented there.

VBench's modules import ``decord``, OpenAI ``clip`` and ``omegaconf`` at the top; those not installed are replaced
by placeholder modules whose functions raise if called (none is on these code paths).

    python -m benchmarks.parity_vbench_motion_imaging --vbench /path/to/VBench --iqa /path/to/IQA-PyTorch \\
        [--size tiny|full]

``--size`` sets MUSIQ's widths (tiny: the tiny preset's; full: the released architecture). AMT-S is always the
released architecture (VBench's class fixes most of its widths). Results: ``<out>_<size>.json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.reference_code import checkout_commit, placeholder_modules as stand_ins

logger = logging.getLogger("parity_vbench_motion_imaging")

TOLERANCE = 1e-4
MOTION, IMAGING = "vbench_motion_smoothness", "vbench_imaging_quality"
# (name, height, width, frames, shift px per frame): sizes >= 128 (AMT-S's smallest), one above 512 (the imaging
# resize), odd and even frame counts (the last odd frame is dropped for an even count)
VIDEOS = [("square_256", 256, 256, 9, 5), ("wide_144x256", 144, 256, 8, 3), ("tall_200x136", 200, 136, 7, 6),
          ("large_540x720", 540, 720, 5, 9)]


def placeholder_modules() -> list[str]:
    """Empty stand-ins for VBench's top-level imports that these code paths never call (decord, clip, omegaconf)."""
    return stand_ins({"decord": ("VideoReader", "cpu", "bridge"), "clip": ("load", "tokenize"),
                      "omegaconf": ("OmegaConf",)})


def vendor(vbench: Path, iqa: Path, tmp: Path) -> Path:
    """Copy VBench's ``vbench`` package and pyiqa's ``pyiqa`` package into ``tmp`` (pyiqa's package inits emptied)."""
    root = tmp / "vendored"
    shutil.copytree(vbench / "vbench", root / "vbench")
    shutil.copytree(iqa / "pyiqa", root / "pyiqa")
    for sub in ("", "archs", "utils", "data"):
        (root / "pyiqa" / sub / "__init__.py").write_text("")
    return root


def synthetic_videos(folder: Path) -> list[tuple[Path, Path]]:
    """(GIF, PNG folder of the same frames as our reader decodes them) per video."""
    from PIL import Image

    from vm_common.media import write_gif
    from vm_eval.testing import shifting_video, smooth_texture
    from vm_eval.videoio import read_video_strict

    out = []
    for i, (name, h, w, n, shift) in enumerate(VIDEOS):
        tex = smooth_texture(max(h, w), seed=i)[:h, :w]
        frames = shifting_video(tex, shift, n).copy()
        frames[n // 2:, : h // 3] = 255 - frames[n // 2:, : h // 3]  # a content change halfway
        gif = write_gif(folder / f"{name}.gif", frames, fps=8)
        pngs = folder / name
        pngs.mkdir()
        for k, f in enumerate(read_video_strict(gif)):
            Image.fromarray(f).save(pngs / f"{k:04d}.png")
        out.append((gif, pngs))
    return out


def build_models(size: str):
    from vm_eval.amt import AMTS
    from vm_eval.musiq import MUSIQ, MUSIQ_SPAQ, MUSIQConfig
    from vm_eval.tiny import TINY_MUSIQ, randomise_musiq_tables

    torch.manual_seed(0)
    amt = AMTS().eval()
    # pyiqa's MUSIQ fixes the ResNet root's width at 64: the tiny preset's widths with that one kept
    musiq = MUSIQ(MUSIQ_SPAQ if size == "full" else MUSIQConfig(**{**TINY_MUSIQ, "token_dim": 64})).eval()
    randomise_musiq_tables(musiq.transformer_encoder)
    return amt, musiq


def run(vbench_dir: Path, iqa_dir: Path, size: str, work: Path) -> dict:
    root = vendor(vbench_dir, iqa_dir, work)
    sys.path.insert(0, str(root))
    placeholders = placeholder_modules()
    vb_motion = importlib.import_module("vbench.motion_smoothness")
    vb_imaging = importlib.import_module("vbench.imaging_quality")
    vb_utils = importlib.import_module("vbench.utils")
    build_from_cfg = importlib.import_module("vbench.third_party.amt.utils.build_utils").build_from_cfg
    import yaml
    from pyiqa.archs.musiq_arch import MUSIQ as PyiqaMUSIQ

    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.videoio import read_video_strict

    videos = synthetic_videos(work)
    amt, musiq = build_models(size)
    amt_cfg = yaml.safe_load((root / "vbench/third_party/amt/cfgs/AMT-S.yaml").read_text())["network"]
    their_amt = build_from_cfg(amt_cfg)
    their_amt.load_state_dict(amt.state_dict(), strict=True)
    their_amt.eval()
    c = musiq.cfg
    their_musiq = PyiqaMUSIQ(pretrained=False, hidden_size=c.hidden_size, mlp_dim=c.mlp_dim, num_heads=c.num_heads,
                             num_layers=c.num_layers)
    their_musiq.load_state_dict(musiq.state_dict(), strict=True)
    their_musiq.training = False  # as VBench's compute_imaging_quality

    motion = vb_motion.MotionSmoothness.__new__(vb_motion.MotionSmoothness)
    motion.device, motion.niters = "cpu", 1
    motion.initialization()
    motion.model = their_amt

    enc = Encoders(EncoderConfig(preset="tiny", device="cpu", suites=("vbench",)))
    ours = enc.vbench
    ours.models._optional_models.update(amt=(amt, None), musiq=(musiq, None))

    per_video, worst = [], {MOTION: 0.0, IMAGING: 0.0}
    seconds = {d: {"ours": [], "vbench": []} for d in (MOTION, IMAGING)}
    for gif, pngs in videos:
        frames = read_video_strict(gif)
        their_frames = np.stack(vb_motion.FrameProcess().get_frames_from_img_folder(str(pngs)))
        their_gif = vb_utils.load_video(str(gif)).permute(0, 2, 3, 1).numpy().astype(np.uint8)
        diff = max(int(np.abs(frames.astype(int) - their_frames.astype(int)).max()),
                   int(np.abs(frames.astype(int) - their_gif.astype(int)).max()))
        with torch.no_grad():
            t0 = time.perf_counter()
            _, rows = vb_motion.motion_smoothness(motion, [str(pngs)])
            t1 = time.perf_counter()
            theirs_m = float(rows[0]["video_results"])
            _, rows = vb_imaging.technical_quality(their_musiq, [str(gif)], torch.device("cpu"))
            t2 = time.perf_counter()
            theirs_i = float(rows[0]["video_results"])
        t3 = time.perf_counter()
        res_m = ours.score(frames, (MOTION,))[MOTION]
        t4 = time.perf_counter()
        res_i = ours.score(frames, (IMAGING,))[IMAGING]
        t5 = time.perf_counter()
        seconds[MOTION]["vbench"].append(t1 - t0)
        seconds[IMAGING]["vbench"].append(t2 - t1)
        seconds[MOTION]["ours"].append(t4 - t3)
        seconds[IMAGING]["ours"].append(t5 - t4)
        row = {"video": gif.name, "frames": list(frames.shape), "reader_max_abs_diff": diff,
               MOTION: {"ours": res_m.value, "vbench": theirs_m, "abs_diff": abs(res_m.value - theirs_m)},
               # compared on VBench's per-video scale (the MUSIQ mean, 0..100): 100x stricter than the /100 value
               IMAGING: {"ours": res_i.detail["musiq_mean"], "vbench": theirs_i,
                         "abs_diff": abs(res_i.detail["musiq_mean"] - theirs_i), "ours_value": res_i.value}}
        for d in (MOTION, IMAGING):
            worst[d] = max(worst[d], row[d]["abs_diff"])
        per_video.append(row)
        logger.info("%s: motion |diff| %.2e, imaging |diff| %.2e", gif.name, row[MOTION]["abs_diff"],
                    row[IMAGING]["abs_diff"])
    return {"size": size, "tolerance": TOLERANCE, "placeholders": placeholders, "per_video": per_video,
            "max_abs_diff": worst, "within_tolerance": all(v <= TOLERANCE for v in worst.values()),
            "seconds_per_video": {d: {k: float(np.mean(v)) for k, v in s.items()} for d, s in seconds.items()},
            "musiq_widths": {"hidden_size": musiq.cfg.hidden_size, "num_layers": musiq.cfg.num_layers},
            "load_1min": os.getloadavg()[0]}


def markdown(result: dict) -> str:
    from benchmarks.harness.results import table

    dev = result["device"]
    lines = ["# VBench parity: motion smoothness and imaging quality, ours vs VBench's own code", "",
             f"VBench checkout {result['vbench_commit']}; IQA-PyTorch (pyiqa) checkout {result['iqa_commit']}. "
             f"Random weights: AMT-S at the released widths, MUSIQ at {result['size']} widths "
             f"(hidden {result['musiq_widths']['hidden_size']}, {result['musiq_widths']['num_layers']} layers). "
             f"Synthetic videos, float32, {dev['device']} ({dev['cpu_model']}, {dev['torch_threads']} threads, "
             f"1-min load {result['load_1min']:.1f}). Placeholder modules (never called): "
             f"{', '.join(result['placeholders']) or 'none'}. Tolerance {result['tolerance']:g}: "
             f"{'all within' if result['within_tolerance'] else 'EXCEEDED'}.", "",
             "Imaging quality is compared on VBench's per-video scale (the mean MUSIQ score, 0..100); our reported "
             "value is that / 100.", ""]
    head = ["video", "frames (F,H,W,C)", "reader diff", "motion smoothness ours / VBench / |diff|",
            "imaging quality (MUSIQ mean) ours / VBench / |diff|"]
    rows = [[r["video"], "x".join(map(str, r["frames"])), r["reader_max_abs_diff"]]
            + [f"{r[d]['ours']:.6f} / {r[d]['vbench']:.6f} / {r[d]['abs_diff']:.1e}" for d in (MOTION, IMAGING)]
            for r in result["per_video"]]
    lines += table(head, rows)
    s = result["seconds_per_video"]
    lines += ["", "Max |diff|: " + ", ".join(f"{d} {v:.1e}" for d, v in result["max_abs_diff"].items()), "",
              "Seconds per video (mean over the videos above, CPU shared with other work, so indicative): "
              + "; ".join(f"{d}: ours {s[d]['ours']:.2f} s, VBench {s[d]['vbench']:.2f} s" for d in s), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.harness.provenance import device_info
    from benchmarks.harness.results import write_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vbench", type=Path, required=True, help="a checkout of Vchitect/VBench")
    ap.add_argument("--iqa", type=Path, required=True, help="a checkout of chaofengc/IQA-PyTorch (pyiqa)")
    ap.add_argument("--size", choices=("tiny", "full"), default="tiny", help="MUSIQ's widths")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/parity_vbench_motion_imaging"))
    ap.add_argument("--vbench-commit", default=None, help="record this commit (when the checkout is not a git tree)")
    ap.add_argument("--iqa-commit", default=None, help="record this commit (when the checkout is not a git tree)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.vbench.resolve(), args.iqa.resolve(), args.size, Path(tmp))
    result.update(vbench_commit=args.vbench_commit or checkout_commit(args.vbench),
                  iqa_commit=args.iqa_commit or checkout_commit(args.iqa), device=device_info("cpu"))
    stem = args.out.parent / f"{args.out.name}_{args.size}"
    js, md = write_results(stem, result, markdown(result))
    logger.info("max |diff| %s; within %g: %s; wrote %s and %s", result["max_abs_diff"], TOLERANCE,
                result["within_tolerance"], js, md)
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
