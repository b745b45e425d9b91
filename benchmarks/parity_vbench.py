"""Parity of our VBench dimensions (:mod:`vm_eval.vbench`) with VBench's own functions, video by video.

VBench cannot be installed or committed here, so this script imports its functions from a checkout given on the
command line (``git clone https://github.com/Vchitect/VBench``) and runs them beside ours on the same GIF videos
with the same random weights:

* ``vbench.subject_consistency.subject_consistency`` with ``facebookresearch/dino``'s own ViT (``vision_transformer.py``
  from a checkout of that repo, the code ``torch.hub.load`` runs for VBench), its weights copied from our timm DINO;
* ``vbench.background_consistency.background_consistency`` with our open_clip CLIP ViT-B/32 as ``clip_model``;
* ``vbench.aesthetic_quality.laion_aesthetic`` with our CLIP "ViT-L/14" and linear head.

VBench's modules import ``decord`` (mp4 reading) and OpenAI's ``clip`` package (``clip.load``) at the top; neither
is used on these code paths (GIF input, models passed in). When they are not installed, empty placeholder modules
are put in ``sys.modules`` so that the import succeeds; nothing of VBench is reimplemented here. OpenAI ``clip``'s
own model class is therefore not compared (our open_clip model plays ``clip_model`` on both sides).

    python -m benchmarks.parity_vbench --vbench /path/to/VBench --dino /path/to/dino [--size tiny|full]

Results: ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/parity_vbench``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.reference_code import checkout_commit, placeholder_modules as stand_ins

logger = logging.getLogger("parity_vbench")

TOLERANCE = 1e-4
DIMENSIONS = ("vbench_subject_consistency", "vbench_background_consistency", "vbench_aesthetic")


def placeholder_modules() -> list[str]:
    """Empty stand-ins for VBench's top-level imports that these code paths never call (decord, clip)."""
    return stand_ins({"decord": ("VideoReader", "cpu", "bridge"), "clip": ("load", "tokenize")})


def synthetic_videos(folder: Path) -> list[Path]:
    """GIFs of several sizes (square and not, smaller and larger than 224) with moving and changing content."""
    from vm_common.media import write_gif
    from vm_eval.testing import shifting_video, smooth_texture

    specs = [("square_256", 256, 256, 8, 4), ("wide_96x160", 96, 160, 6, 7), ("tall_200x120", 200, 120, 7, 2),
             ("small_64", 64, 64, 5, 9), ("wide_240x320", 240, 320, 8, 11)]
    paths = []
    for i, (name, h, w, n, shift) in enumerate(specs):
        tex = smooth_texture(max(h, w), seed=i)[:h, :w]
        frames = shifting_video(tex, shift, n).copy()
        frames[n // 2:, : h // 3] = 255 - frames[n // 2:, : h // 3]  # a content change halfway
        paths.append(write_gif(folder / f"{name}.gif", frames, fps=8))
    return paths


def build_ours(size: str):
    """Our scorer with random models: the tiny stand-ins, or full-size random architectures (``size='full'``)."""
    from vm_eval.encoders import EncoderConfig, Encoders

    enc = Encoders(EncoderConfig(preset="tiny", device="cpu", suites=("vbench",)))
    scorer = enc.vbench
    if size == "full":
        import open_clip
        import timm

        from vm_eval.clip import ClipEncoder
        from vm_eval.vbench_models import DINO_B16_NAME, TimmModel

        torch.manual_seed(0)
        dino = timm.create_model(DINO_B16_NAME, pretrained=False, num_classes=0).eval()
        b32 = open_clip.create_model("ViT-B-32-quickgelu").eval()
        l14 = open_clip.create_model("ViT-L-14-quickgelu").eval()
        head = torch.nn.Linear(768, 1).eval()
        dev = torch.device("cpu")
        enc.__dict__["clip"] = ClipEncoder(b32, None, dev, torch.float32, "random ViT-B-32")
        scorer.models.__dict__["dino"] = TimmModel(dino, dev, torch.float32, "random DINO ViT-B/16")
        scorer.models.__dict__["clip_l14"] = ClipEncoder(l14, None, dev, torch.float32, "random ViT-L-14")
        scorer.models.__dict__["aesthetic_head"] = head
    return enc, scorer


def dino_repo_model(dino_dir: Path, timm_model: torch.nn.Module) -> torch.nn.Module:
    """facebookresearch/dino's VisionTransformer with the architecture and weights of our timm model."""
    sys.path.insert(0, str(dino_dir))
    import vision_transformer as dino_vits  # from the checkout

    blocks = timm_model.blocks
    model = dino_vits.VisionTransformer(
        patch_size=16, embed_dim=timm_model.embed_dim, depth=len(blocks), num_heads=blocks[0].attn.num_heads,
        mlp_ratio=blocks[0].mlp.fc1.out_features / timm_model.embed_dim, qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=0)
    state = {k: v for k, v in timm_model.state_dict().items() if not k.startswith(("head", "fc_norm"))}
    model.load_state_dict(state, strict=True)
    return model.eval()


def run(vbench_dir: Path, dino_dir: Path, size: str, work: Path) -> dict:
    sys.path.insert(0, str(vbench_dir))
    placeholders = placeholder_modules()
    vb_subject = importlib.import_module("vbench.subject_consistency")
    vb_background = importlib.import_module("vbench.background_consistency")
    vb_aesthetic = importlib.import_module("vbench.aesthetic_quality")
    vb_utils = importlib.import_module("vbench.utils")

    from vm_eval.videoio import read_video_strict

    videos = synthetic_videos(work)
    enc, ours = build_ours(size)
    names = [str(p) for p in videos]
    dev = torch.device("cpu")
    theirs: dict[str, dict[str, float]] = {n: {} for n in names}
    with torch.no_grad():
        _, rows = vb_subject.subject_consistency(dino_repo_model(dino_dir, ours.models.dino.model), names, dev, False)
        for r in rows:
            theirs[r["video_path"]]["vbench_subject_consistency"] = float(r["video_results"])
        _, rows = vb_background.background_consistency(enc.clip.model, None, names, dev, False)
        for r in rows:
            theirs[r["video_path"]]["vbench_background_consistency"] = float(r["video_results"])
        _, rows = vb_aesthetic.laion_aesthetic(ours.models.aesthetic_head, ours.models.clip_l14.model, names, dev)
        for r in rows:
            theirs[r["video_path"]]["vbench_aesthetic"] = float(r["video_results"])

    per_video, worst = [], {d: 0.0 for d in DIMENSIONS}
    for p in videos:
        frames = read_video_strict(p)
        their_frames = vb_utils.load_video(str(p)).permute(0, 2, 3, 1).numpy().astype(np.uint8)
        frame_diff = int(np.abs(frames.astype(int) - their_frames.astype(int)).max()) \
            if frames.shape == their_frames.shape else f"shapes {frames.shape} vs {their_frames.shape}"
        res = ours.score(frames, DIMENSIONS)
        row = {"video": p.name, "frames": list(frames.shape), "reader_max_abs_diff": frame_diff}
        for d in DIMENSIONS:
            a, b = res[d].value, theirs[str(p)][d]
            row[d] = {"ours": a, "vbench": b, "abs_diff": abs(a - b)}
            worst[d] = max(worst[d], abs(a - b))
        per_video.append(row)
        logger.info("%s: %s", p.name, {d: f"{row[d]['abs_diff']:.2e}" for d in DIMENSIONS})
    return {"size": size, "tolerance": TOLERANCE, "placeholders": placeholders, "per_video": per_video,
            "max_abs_diff": worst, "within_tolerance": all(v <= TOLERANCE for v in worst.values())}


def markdown(result: dict, vbench_commit: str, dino_commit: str) -> str:
    from benchmarks.harness.results import table

    lines = ["# VBench parity: ours vs VBench's own functions", "",
             f"VBench checkout {vbench_commit}; facebookresearch/dino checkout {dino_commit}. Random weights "
             f"({result['size']} architectures), synthetic GIFs, CPU, float32. Placeholder modules (never called): "
             f"{', '.join(result['placeholders']) or 'none'}. Tolerance {result['tolerance']:g}: "
             f"{'all within' if result['within_tolerance'] else 'EXCEEDED'}.", ""]
    head = ["video", "frames (F,H,W,C)", "reader diff"] + [f"{d} ours / VBench / |diff|" for d in DIMENSIONS]
    rows = [[r["video"], "x".join(map(str, r["frames"])), r["reader_max_abs_diff"]]
            + [f"{r[d]['ours']:.6f} / {r[d]['vbench']:.6f} / {r[d]['abs_diff']:.1e}" for d in DIMENSIONS]
            for r in result["per_video"]]
    lines += table(head, rows)
    lines += ["", "Max |diff|: " + ", ".join(f"{d} {v:.1e}" for d, v in result["max_abs_diff"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vbench", type=Path, required=True, help="a checkout of Vchitect/VBench")
    ap.add_argument("--dino", type=Path, required=True, help="a checkout of facebookresearch/dino")
    ap.add_argument("--size", choices=("tiny", "full"), default="tiny",
                    help="tiny: the tiny preset's stand-ins; full: full-size random architectures (slower)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/parity_vbench"))
    ap.add_argument("--vbench-commit", default=None, help="record this commit (when the checkout is not a git tree)")
    ap.add_argument("--dino-commit", default=None, help="record this commit (when the checkout is not a git tree)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.vbench.resolve(), args.dino.resolve(), args.size, Path(tmp))
    vc, dc = args.vbench_commit or checkout_commit(args.vbench), args.dino_commit or checkout_commit(args.dino)
    result.update(vbench_commit=vc, dino_commit=dc)
    from benchmarks.harness.results import write_results

    js, md = write_results(args.out, result, markdown(result, vc, dc))
    logger.info("max |diff| %s; within %g: %s; wrote %s and %s", result["max_abs_diff"], TOLERANCE,
                result["within_tolerance"], js, md)
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
