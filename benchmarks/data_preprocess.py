"""Benchmark of `vm preprocess-dataset` (a benchmark, not a test).

1. Decoding: the K=4 sampled frames of a 10 s, 512x512, 25 fps clip read with seeking (vm_data.video.read_frames)
   against decoding the whole clip (vm_common.media.read_video, what a naive loader does) and against decoding
   the whole clip but converting only the K wanted frames to RGB (a stronger baseline). Two encodings: a keyframe
   every 2 s (typical of web video) and x264's default (keyint 250 = the whole clip, scene cuts allowed). The
   methods are interleaved in every repeat; medians are reported.
2. Throughput in clips/s of the real CLI (`vm_data.preprocess.main`: loader workers, detector, segmenter,
   writing) with the tiny preset and with full-size random models (Grounding DINO Swin-T + BERT-base and SAM
   vit_b at random init, saved to disk and loaded through the same code as real checkpoints). Model loading is
   excluded (summary.json's throughput covers the processing loop only).

    python -m benchmarks.data_preprocess --out benchmarks/results/

Results: ``<out>/data_preprocess.json`` and ``.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import cli
from benchmarks.harness.provenance import device_description, provenance
from benchmarks.harness.results import notes_section, table, write_results
from benchmarks.harness.timing import side_by_side

logger = logging.getLogger("benchmarks.data_preprocess")


# ------------------------------------------------------------------------------------------------ decoding
def make_clip(path: Path, *, seconds: float = 10.0, fps: int = 25, size: int = 512, gop: int | None) -> Path:
    from vm_data.synthetic import SyntheticSubject, render_frames
    from vm_data.testing import write_video

    n = int(seconds * fps)
    subject = SyntheticSubject(radius=0.2, start=(0.3, 0.4), velocity=(0.004, 0.002))
    frames, _ = render_frames(n, size, [subject], seed=0, noise=2.0)
    # a slow global brightness drift, so that frames differ beyond the moving subject
    drift = (np.sin(np.linspace(0, 3 * np.pi, n)) * 12).astype(np.float32)[:, None, None, None]
    frames = np.clip(frames.astype(np.float32) + drift, 0, 255).astype(np.uint8)
    write_video(path, frames, fps=fps, pix_fmt="yuv420p", gop=gop, options={"crf": "20", "preset": "fast"})
    return path


def decode_all_convert_k(path: Path, indices: list[int]) -> np.ndarray:
    import av

    wanted, out = set(indices), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
    return np.stack([out[i] for i in indices])


def bench_decoding(work: Path, repeats: int, k: int = 4) -> list[dict]:
    from vm_common.media import read_video, video_info
    from vm_data.video import read_frames, uniform_indices

    results = []
    for label, gop in (("keyframe every 2 s (gop 50)", 50), ("x264 default (keyint 250)", None)):
        path = make_clip(work / f"clip_gop{gop}.mp4", gop=gop)
        info = video_info(path)
        indices = uniform_indices(info.num_frames, k)
        check = read_frames(path, indices).frames
        full = read_video(path)
        assert np.array_equal(check, full[indices]), "sampled frames differ from the full decode"
        methods = {
            "sampled": lambda: read_frames(path, indices),
            "decode_all": lambda: read_video(path),
            "decode_all_convert_k": lambda: decode_all_convert_k(path, indices),
        }
        runs = side_by_side(methods, repeats, order="alternate", label=label)
        times, med = runs.wall_s, runs.medians()
        results.append({
            "encoding": label, "frames": info.num_frames, "fps": info.fps, "size": f"{info.width}x{info.height}",
            "k": k, "indices": indices, "file_bytes": path.stat().st_size, "repeats": repeats,
            "median_s": med, "all_s": times,
            "speedup_vs_decode_all": med["decode_all"] / med["sampled"],
            "speedup_vs_decode_all_convert_k": med["decode_all_convert_k"] / med["sampled"],
        })
        logger.info("%s: sampled %.3f s, decode-all %.3f s (x%.1f), decode-all-convert-K %.3f s (x%.1f)", label,
                    med["sampled"], med["decode_all"], results[-1]["speedup_vs_decode_all"],
                    med["decode_all_convert_k"], results[-1]["speedup_vs_decode_all_convert_k"])
    return results


# ---------------------------------------------------------------------------------------------- throughput
def make_clips(folder: Path, num: int, size: int, frames: int) -> Path:
    from vm_data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(folder, num_clips=num, num_frames=frames, size=size, seed=0)
    return folder / "videos"


def run_cli(label: str, videos: Path, out: Path, extra: list[str]) -> dict:
    from vm_data.preprocess import main

    t0 = time.perf_counter()
    code = main(["--input", str(videos), "--output", str(out), "--no-require-caption", "--min-short-side", "32",
                 *extra])
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"{label}: preprocess exited with {code}")
    summary = json.loads((out / "summary.json").read_text())
    th = summary["throughput"]
    logger.info("%s: %d clips, %.3f clips/s (wall incl. loading %.1f s); status %s", label, summary["clips"],
                th["clips_per_second"], wall, summary["status"])
    return {"label": label, "clips": summary["clips"], "clips_per_second": th["clips_per_second"],
            "loop_seconds": th["seconds"], "wall_seconds_incl_model_loading": wall, "status": summary["status"],
            "rejected_reasons": summary["rejected_reasons"], "args": extra}


def bench_throughput(work: Path, *, tiny_clips: int, full_clips: int, full_k: int, skip_full: bool) -> list[dict]:
    import torch

    from vm_data.segment import build_sam
    from vm_data.tiny import save_random_full_grounding_dino

    results = []
    # thresholds that let random models reach the segmenter (otherwise they reject everything before SAM runs)
    permissive = ["--nms-iou", "0", "--min-box-area", "0", "--min-mask-area", "0"]
    tiny_videos = make_clips(work / "tiny_clips", tiny_clips, 128, 48)
    results.append(run_cli("tiny preset (random), 128x128 clips, K=4", tiny_videos, work / "out_tiny",
                           ["--preset", "tiny", "--batch-clips", "8", *permissive]))
    if not skip_full:
        gd = save_random_full_grounding_dino(work / "gd_full")
        torch.manual_seed(0)
        sam_path = work / "sam_vit_b_random.pth"
        torch.save(build_sam("vit_b").state_dict(), sam_path)
        full_videos = make_clips(work / "full_clips", full_clips, 256, 48)
        results.append(run_cli(
            f"full-size random (Grounding DINO Swin-T/BERT-base + SAM vit_b), 256x256 clips, K={full_k}",
            full_videos, work / "out_full",
            ["--detector", str(gd), "--segmenter", str(sam_path), "--num-references", str(full_k),
             "--batch-clips", str(full_clips), *permissive]))
    return results


# -------------------------------------------------------------------------------------------------- report
def to_markdown(report: dict) -> str:
    lines = ["# vm_data preprocessing benchmark", "", f"Device: {report['device']} (torch threads: "
             f"{report['torch_threads']}); {report['provenance']['time_utc']}, commit "
             f"{report['provenance']['git_commit']}.", "",
             "## Sampled-frame decoding vs whole-clip decoding (10 s, 512x512, 25 fps, K=4; medians)", ""]
    lines += table(["encoding", "sampled (s)", "decode all (s)", "speed-up", "decode all, RGB for K only (s)",
                    "speed-up"],
                   [[d["encoding"], f"{d['median_s']['sampled']:.3f}", f"{d['median_s']['decode_all']:.3f}",
                     f"x{d['speedup_vs_decode_all']:.1f}", f"{d['median_s']['decode_all_convert_k']:.3f}",
                     f"x{d['speedup_vs_decode_all_convert_k']:.1f}"] for d in report["decoding"]])
    lines += ["", f"Repeats: {report['decoding'][0]['repeats']}, methods interleaved.", "",
              "## Preprocessing throughput (CLI, model loading excluded)", ""]
    lines += table(["run", "clips", "clips/s", "loop (s)", "wall incl. loading (s)", "outcome"],
                   [[t["label"], t["clips"], f"{t['clips_per_second']:.3f}", f"{t['loop_seconds']:.1f}",
                     f"{t['wall_seconds_incl_model_loading']:.1f}", t["status"]] for t in report["throughput"]])
    lines += ["", "Random weights: the outcomes (kept / rejected) are meaningless; the timings are not. Thresholds "
              "were relaxed (`--nms-iou 0 --min-box-area 0 --min-mask-area 0`) so that every frame reaches SAM.",
              ""]
    if report.get("notes"):
        lines += notes_section(report["notes"]) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.scenario_parser(__doc__, summary_only=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny-clips", type=int, default=16)
    parser.add_argument("--full-clips", type=int, default=2)
    parser.add_argument("--full-k", type=int, default=2, help="frames per clip for the full-size random run")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="vm-bench-data-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        load_before = list(os.getloadavg())
        report = {
            "load_average_at_start": load_before,
            "benchmark": "data_preprocess", "device": device_description(), "torch_threads": torch.get_num_threads(),
            "provenance": provenance(),
            "decoding": bench_decoding(work, args.repeats),
            "throughput": bench_throughput(work, tiny_clips=args.tiny_clips, full_clips=args.full_clips,
                                           full_k=args.full_k, skip_full=args.skip_full),
            "notes": [],
            "load_average_at_end": list(os.getloadavg()),
        }
    if not torch.cuda.is_available():
        report["notes"].append("No GPU was available to this run: CPU figures only.")
    cpus = os.cpu_count() or 1
    if max(report["load_average_at_start"][0], report["load_average_at_end"][0]) > cpus:
        report["notes"].append(
            f"The machine was shared: 1-min load average {report['load_average_at_start'][0]:.1f} at the start and "
            f"{report['load_average_at_end'][0]:.1f} at the end on {cpus} CPUs, so absolute times are inflated; the "
            "interleaved decoding ratios are the robust figures.")
    js, md = write_results(args.out / "data_preprocess", report, to_markdown(report), sort_keys=True)
    logger.info("wrote %s and %s", js, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
