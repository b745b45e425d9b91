"""Seconds per video per metric (dimension): each metric scored on its own by vm_eval's VideoScorer.

For every metric of the chosen suites (default ``paper,vbench,copy``; human videos, so Face Sim is in), each video
is scored with ``metrics=[that metric]`` only, so a metric pays for its whole family's forward (CLIP-T alone runs
the CLIP image forward that CLIP-I and T.Cons would share). Models are loaded and the reference and prompt
embedded in an untimed warm-up on a separate video; the timed calls then score ``--videos`` videos, interleaved
over the metrics (one round = every metric once), ``--repeats`` rounds; the figure is the median per video.
``all together`` scores all the metrics in one call (shared forwards), as `vm bench` does.

Weights (``--size``): ``tiny`` = the tiny preset's random stand-ins (fast; they only show the pipeline's overhead);
``full`` = full-size random architectures where they can be built offline (CLIP ViT-B/32 for CLIP-T/I, T.Cons and
VBench background consistency, DINO ViT-S/16 for DINO-I, DINO ViT-B/16 and CLIP ViT-L/14 + Linear(768, 1) for VBench
subject consistency and aesthetic quality); Face Sim keeps the tiny SCRFD/ArcFace stand-ins (no full face pack
offline) and DD runs on DIS (``--flow dis``; RAFT-large costs ~40 s per pair at 512x512 on 2 cores). A metric whose
model is not available (its result ``skipped``/``error``) is listed with its reason, not timed as if computed.

    python -m benchmarks.eval_dimension_cost --size full --videos 2 --repeats 1

Results: ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/eval_dimension_cost_<device>_<size>``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

from benchmarks.harness import cli
from benchmarks.harness.device import device_tag
from benchmarks.harness.provenance import device_info, provenance
from benchmarks.harness.results import table, write_results
from benchmarks.harness.timing import median, side_by_side
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.metrics import get_metric, metrics_for, parse_suites
from vm_eval.scorer import Reference, VideoScorer
from vm_eval.testing import shifting_video, smooth_texture

FULL_MODELS = {"clip": "CLIP ViT-B-32-quickgelu (random, full size)", "dino": "DINO ViT-S/16 (random, full size)",
               "vbench_dino": "DINO ViT-B/16 (random, full size)", "clip_l14": "CLIP ViT-L-14-quickgelu (random, "
               "full size) + Linear(768, 1)"}


def build_scorer(size: str, suites: tuple[str, ...], flow: str) -> tuple[VideoScorer, dict]:
    """The scorer with the tiny stand-ins, or with full-size random CLIP/DINO models swapped in (``size='full'``)."""
    enc = Encoders(EncoderConfig(preset="tiny", device="cpu", flow=flow, suites=suites, batch_size=16))
    models = {"all": "tiny random stand-ins (vm_eval.tiny)"}
    if size == "full":
        import open_clip
        import timm

        from vm_eval.clip import FULL_MODEL_NAME, ClipEncoder
        from vm_eval.dino import DinoEncoder

        cpu = torch.device("cpu")
        torch.manual_seed(0)
        b32 = open_clip.create_model(FULL_MODEL_NAME, pretrained=None).eval()
        enc.__dict__["clip"] = ClipEncoder(b32, open_clip.get_tokenizer(FULL_MODEL_NAME), cpu, torch.float32,
                                           "random-full:" + FULL_MODEL_NAME, 16)
        dino = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0).eval()
        enc.__dict__["dino"] = DinoEncoder(dino, cpu, torch.float32, "random-full:dino-s16", 16)
        models = dict(FULL_MODELS, flow=flow, others="tiny random stand-ins (face SCRFD/ArcFace, VBench AMT-S and "
                                                    "MUSIQ, OpenS2V's models)")
        if "vbench" in suites:
            from vm_eval.vbench_models import DINO_B16_NAME, TimmModel

            vb = enc.vbench.models
            vb.__dict__["dino"] = TimmModel(timm.create_model(DINO_B16_NAME, pretrained=False, num_classes=0).eval(),
                                            cpu, torch.float32, "random DINO ViT-B/16")
            vb.__dict__["clip_l14"] = ClipEncoder(open_clip.create_model("ViT-L-14-quickgelu").eval(), None, cpu,
                                                  torch.float32, "random ViT-L-14")
            vb.__dict__["aesthetic_head"] = torch.nn.Linear(768, 1).eval()
    return VideoScorer(enc), models


def make_videos(n: int, size: int, frames: int):
    from PIL import Image
    from skimage import data

    ref = Image.fromarray(data.astronaut())
    videos = []
    for i in range(n + 1):  # the first one is the warm-up
        base = np.asarray(ref.resize((size, size))) if i % 2 == 0 else smooth_texture(size, i)
        videos.append(shifting_video(base, 4 + 3 * i, frames))
    return videos, Reference("astronaut", ref)


def measure(size: str, suites: tuple[str, ...], flow: str, n_videos: int, frames: int, res: int,
            repeats: int) -> dict:
    scorer, models = build_scorer(size, suites, flow)
    names = list(metrics_for("human", flow, suites))
    videos, ref = make_videos(n_videos, res, frames)
    prompt = "A person dressed in a crisp white button-up shirt."

    def score(metrics, frames_list):
        return [scorer.score(f, prompt=prompt, reference=ref, kind="human", metrics=metrics) for f in frames_list]

    status = {}
    for m in names:  # warm-up: loads each model and embeds the reference and prompt, untimed
        res_ = score([m], videos[:1])[0][m]
        status[m] = {"status": res_.status, "reason": res_.reason}
    timed_videos = videos[1:]
    calls = {m: (lambda m=m: score([m], timed_videos)) for m in names}
    calls["all together"] = lambda: score(names, timed_videos)
    runs = side_by_side(calls, repeats, order="rotate", label="dimension cost")
    per_video = {k: median(v) / len(timed_videos) for k, v in runs.wall_s.items()}
    cpu_per_video = {k: median(v) / len(timed_videos) for k, v in runs.cpu_s.items()}
    return {"size": size, "suites": list(suites), "flow": flow, "videos": n_videos, "frames": frames,
            "resolution": res, "repeats": repeats, "models": models,
            "metrics": {m: {"label": get_metric(m).label, "suite": _suite(m), "seconds_per_video":
                            round(per_video[m], 4), "cpu_seconds_per_video": round(cpu_per_video[m], 4),
                            **status[m]} for m in names},
            "all_together_seconds_per_video": round(per_video["all together"], 4),
            "all_together_cpu_seconds_per_video": round(cpu_per_video["all together"], 4),
            "wall_s": runs.wall_s, "cpu_s": runs.cpu_s, "load_average": os.getloadavg()}


def _suite(metric: str) -> str:
    from vm_eval.metrics import suite_of

    return suite_of(metric)


def render_markdown(r: dict) -> str:
    rows = [[m["suite"], m["label"], f"`{name}`"] + ([f"{m['seconds_per_video']:.3f}",
                                                      f"{m['cpu_seconds_per_video']:.3f}"] if m["status"] == "ok"
                                                     else [f"not computed ({m['status']}: {m['reason'][:80]})", ""])
            for name, m in r["metrics"].items()]
    rows.append(["", "all of the above in one call", "", f"{r['all_together_seconds_per_video']:.3f}",
                 f"{r['all_together_cpu_seconds_per_video']:.3f}"])
    models = "; ".join(f"{k}: {v}" for k, v in r["models"].items())
    lines = [f"# Scoring cost per metric (dimension), {r['size']} weights\n",
             f"Device: {r['device']['device']} ({r['device']['cpu_model']}, {r['device']['cpu_count']} cores, "
             f"{r['device']['torch_threads']} torch threads). {r['videos']} human videos of {r['frames']} frames at "
             f"{r['resolution']}x{r['resolution']}; each metric scored alone (its family's whole forward), "
             f"interleaved, median of {r['repeats']} round(s), per video; models loaded and the reference/prompt "
             f"embedded before timing. Models: {models}. Load average at the end: "
             f"{', '.join(f'{x:.1f}' for x in r['load_average'])} (the 2 cores are shared with other jobs: absolute "
             f"times are noisy).\n",
             *table(["suite", "metric", "row name", "wall s / video", "process CPU s / video"], rows), "",
             "Process CPU seconds add up the torch threads' time; on a busy machine they are the steadier figure.",
             "",
             "No GPU was available to this task; GPU figures are not measured."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = cli.scenario_parser(__doc__, out=None)
    p.add_argument("--out", default=None, help="output path without suffix (default: benchmarks/results/"
                                               "eval_dimension_cost_<device>_<size>)")
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--suites", default="paper,vbench,copy")
    p.add_argument("--flow", choices=("dis", "raft"), default="dis")
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    cli.setup_logging()
    result = measure(args.size, parse_suites(args.suites), args.flow, args.videos, args.frames, args.resolution,
                     args.repeats)
    result["device"] = device_info("cpu")
    result["provenance"] = provenance()
    out = args.out or cli.RESULTS_DIR / f"eval_dimension_cost_{device_tag('cpu', torch.get_num_threads())}_{args.size}"
    md = render_markdown(result)
    write_results(out, result, md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
