"""Scoring throughput: vm_eval's VideoScorer vs a naive per-metric implementation (as the authors' scripts).

Naive = each metric on its own: its own model load, one forward per frame, the reference (and prompt) encoded again
for every video; CLIP-T, CLIP-I and T.Cons each run CLIP over the frames; DD via torchvision RAFT's own forward per
pair. Ours = one load per encoder, one batched CLIP/DINO forward per frame shared by its metrics, cached reference
and prompt embeddings, shared-feature RAFT.

Same random full-size encoders (CLIP ViT-B/32, DINO ViT-S/16), same videos (16 frames, 512x512), interleaved in one
run. Face: the tiny SCRFD/ArcFace stand-ins in both (no full-size face architecture is available offline). DD: DIS
in both for the main comparison (RAFT-large at 512x512 costs ~40 s per pair on the 2-core CPU); a separate line
compares RAFT-large forwards (torchvision per pair vs ours) on small frames.

    python -m benchmarks.eval_scoring --videos 3 --repeats 1

Results: ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/eval_scoring``).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from PIL import Image

from benchmarks.harness import cli
from benchmarks.harness.provenance import device_description, provenance
from benchmarks.harness.results import write_results
from benchmarks.harness.timing import median, side_by_side
from vm_eval.clip import CLIP_MEAN, CLIP_STD, FULL_MODEL_NAME, ClipEncoder, clip_resize_crop
from vm_eval.dino import IMAGENET_MEAN, IMAGENET_STD, DinoEncoder
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.flow import DisFlow, RaftFlow, dynamic_degree, top_fraction_mean
from vm_eval.imaging import pil_to_normalized
from vm_eval.scorer import Reference, VideoScorer
from vm_eval.testing import shifting_video, smooth_texture

def build_models(seed: int = 0):
    import open_clip
    import timm

    torch.manual_seed(seed)
    clip = open_clip.create_model(FULL_MODEL_NAME, pretrained=None).eval()
    torch.manual_seed(seed)
    dino = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0).eval()
    return clip, dino


# ------------------------------------------------------------------------------------------------------- naive
class Naive:
    """Each metric separately, as standalone scripts: own model load, per-frame forwards, no caching."""

    def __init__(self, clip_state, dino_state, face_factory):
        self.clip_state, self.dino_state, self.face_factory = clip_state, dino_state, face_factory

    def _clip(self):
        import open_clip

        m = open_clip.create_model(FULL_MODEL_NAME, pretrained=None)
        m.load_state_dict(self.clip_state)
        return m.eval(), open_clip.get_tokenizer(FULL_MODEL_NAME)

    def _clip_emb(self, model, img):
        x = pil_to_normalized([clip_resize_crop(img)], CLIP_MEAN, CLIP_STD)
        return torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1)[0]

    @torch.inference_mode()
    def clip_t(self, videos):
        model, tok = self._clip()
        out = []
        for frames, prompt, _ in videos:
            t = torch.nn.functional.normalize(model.encode_text(tok([prompt])).float(), dim=-1)[0]
            out.append(float(np.mean([float(self._clip_emb(model, Image.fromarray(f)) @ t) for f in frames])))
        return out

    @torch.inference_mode()
    def clip_i(self, videos):
        model, _ = self._clip()
        out = []
        for frames, _, ref in videos:
            r = self._clip_emb(model, ref)
            out.append(float(np.mean([float(self._clip_emb(model, Image.fromarray(f)) @ r) for f in frames])))
        return out

    @torch.inference_mode()
    def t_cons(self, videos):
        model, _ = self._clip()
        out = []
        for frames, _, _ in videos:
            e = [self._clip_emb(model, Image.fromarray(f)) for f in frames]
            out.append(float(np.mean([float(a @ b) for a, b in zip(e[:-1], e[1:])])))
        return out

    @torch.inference_mode()
    def dino_i(self, videos):
        import timm

        m = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0)
        m.load_state_dict(self.dino_state)
        m.eval()

        def emb(img):
            x = pil_to_normalized([img.resize((224, 224), Image.BILINEAR)], IMAGENET_MEAN, IMAGENET_STD)
            return torch.nn.functional.normalize(m.forward_features(x)[:, 0].float(), dim=-1)[0]

        out = []
        for frames, _, ref in videos:
            r = emb(ref)
            out.append(float(np.mean([float(emb(Image.fromarray(f)) @ r) for f in frames])))
        return out

    def face_sim(self, videos):
        enc = self.face_factory()  # its own load
        out = []
        for frames, _, ref in videos:
            r, _ = enc.reference_embedding(ref)
            embs = []
            for f in frames:  # one frame at a time
                embs.extend(enc.frame_embeddings(f[None]))
            vals = [float(e @ r) for e in embs if e is not None and r is not None]
            out.append(float(np.mean(vals)) if vals else float("nan"))
        return out

    def dd(self, videos):
        flow = DisFlow()
        out = []
        for frames, _, _ in videos:
            scores = [top_fraction_mean(flow.flows(frames[i:i + 2])[0]) for i in range(len(frames) - 1)]
            out.append(dynamic_degree(scores, *frames.shape[1:3], len(frames), "dis").value)
        return out

    def score_all(self, videos):
        return {"clip_t": self.clip_t(videos), "clip_i": self.clip_i(videos), "t_cons": self.t_cons(videos),
                "dino_i": self.dino_i(videos), "face_sim": self.face_sim(videos), "dd_dis": self.dd(videos)}


# --------------------------------------------------------------------------------------------------------- ours
def ours_score_all(clip_state, dino_state, videos, subject_key="s"):
    import open_clip
    import timm

    enc = Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu", batch_size=16))
    m = open_clip.create_model(FULL_MODEL_NAME, pretrained=None)
    m.load_state_dict(clip_state)
    enc.__dict__["clip"] = ClipEncoder(m.eval(), open_clip.get_tokenizer(FULL_MODEL_NAME), torch.device("cpu"),
                                       torch.float32, "random-full:" + FULL_MODEL_NAME, 16)
    d = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0)
    d.load_state_dict(dino_state)
    enc.__dict__["dino"] = DinoEncoder(d.eval(), torch.device("cpu"), torch.float32, "random-full:dino", 16)
    scorer = VideoScorer(enc)
    results = [scorer.score(frames, prompt=prompt, reference=Reference(subject_key, ref), kind="human")
               for frames, prompt, ref in videos]
    return {m: [r[m].value if r[m].value is not None else float("nan") for r in results] for m in results[0]}


def make_videos(n: int, size: int = 512, frames: int = 16):
    from skimage import data

    ref = Image.fromarray(data.astronaut())
    vids = []
    for i in range(n):
        base = np.asarray(ref.resize((size, size))) if i % 2 == 0 else smooth_texture(size, i)
        vids.append((shifting_video(base, 4 + 6 * i, frames), f"A person, prompt {i % 2}", ref))
    return vids


def raft_compare(size: int = 128, frames: int = 4, iters: int = 20):
    from torchvision.models.optical_flow import raft_large

    torch.manual_seed(0)
    model = raft_large(weights=None).eval()
    vid = shifting_video(smooth_texture(size), 3, frames)
    ours = RaftFlow(model, iters=iters, pair_batch=4)
    x = ours._prepare(vid)
    t0 = time.perf_counter()
    with torch.inference_mode():
        naive = [model(x[i:i + 1], x[i + 1:i + 2], num_flow_updates=iters)[-1] for i in range(frames - 1)]
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    flows = ours.flows(vid)
    t_ours = time.perf_counter() - t0
    diff = max(float(np.abs(f - n[0].permute(1, 2, 0).numpy()).max()) for f, n in zip(flows, naive))
    return {"frames": frames, "size": size, "iters": iters, "naive_s": round(t_naive, 3),
            "ours_s": round(t_ours, 3), "speedup": round(t_naive / t_ours, 2), "max_abs_flow_diff_px": diff}


def render_markdown(result: dict) -> str:
    """The markdown of a result (built from the result alone)."""
    tn, to, r = median(result["naive_seconds"]), median(result["ours_seconds"]), result["raft_large_forward"]
    return (f"# Scoring throughput: vm_eval vs naive per-metric scripts\n\n"
            f"Device: {result['device']} ({result['torch_threads']} torch threads). {result['videos']} videos of "
            f"{result['frames']} frames at {result['size']}x{result['size']}, {result['encoders']}; all six human "
            f"metrics. Median of {result['repeats']} interleaved repeat(s); times include model loads.\n\n"
            f"| implementation | seconds | videos/min |\n|---|---|---|\n"
            f"| naive (per metric, per frame, own loads) | {tn:.1f} | {result['naive_videos_per_min']} |\n"
            f"| vm_eval VideoScorer | {to:.1f} | {result['ours_videos_per_min']} |\n\n"
            f"**Speedup: {result['speedup']}x** (target >= 2.5x). Max per-video metric difference between the two: "
            f"{max(result['max_abs_metric_diff'].values()):.2e}.\n\n"
            f"RAFT-large forward ({r['frames']} frames at {r['size']}x{r['size']}, {r['iters']} iterations): "
            f"torchvision per pair {r['naive_s']} s vs shared-feature {r['ours_s']} s ({r['speedup']}x), max flow "
            f"difference {r['max_abs_flow_diff_px']:.1e} px. RAFT-large at 512x512 was not timed on this CPU "
            f"(~40 s per pair).\n"
            f"\nNo GPU was available to this task; GPU figures are not measured.\n")


def main(argv=None) -> int:
    p = cli.scenario_parser(__doc__, out=cli.RESULTS_DIR / "eval_scoring",
                            out_help="output path without suffix: writes OUT.json and OUT.md")
    p.add_argument("--videos", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, default=16)
    args = p.parse_args(argv)
    cli.setup_logging()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    clip, dino = build_models()
    clip_state, dino_state = clip.state_dict(), dino.state_dict()
    videos = make_videos(args.videos, args.size, args.frames)
    face_factory = lambda: Encoders(EncoderConfig(preset="tiny", device="cpu")).face  # noqa: E731
    runs = side_by_side({"naive": lambda: Naive(clip_state, dino_state, face_factory).score_all(videos),
                         "ours": lambda: ours_score_all(clip_state, dino_state, videos)}, args.repeats,
                        label="scoring")  # interleaved A/B
    a, b = runs.last["naive"], runs.last["ours"]
    agree = {m: float(np.nanmax(np.abs(np.array(a[m]) - np.array(b[m])))) if not
             np.all(np.isnan(a[m])) else 0.0 for m in a}
    tn, to = median(runs.wall_s["naive"]), median(runs.wall_s["ours"])
    result = {
        "device": device_description(), "torch_threads": torch.get_num_threads(),
        "videos": args.videos, "frames": args.frames, "size": args.size, "repeats": args.repeats,
        "encoders": "random full-size CLIP ViT-B-32-quickgelu + DINO ViT-S/16; tiny face pack; DIS flow",
        "naive_seconds": [round(t, 2) for t in runs.wall_s["naive"]],
        "ours_seconds": [round(t, 2) for t in runs.wall_s["ours"]],
        "naive_videos_per_min": round(60 * args.videos / tn, 2), "ours_videos_per_min": round(60 * args.videos / to, 2),
        "speedup": round(tn / to, 2), "max_abs_metric_diff": agree,
        "raft_large_forward": raft_compare(),
        "provenance": provenance(),
    }
    md = render_markdown(result)
    write_results(args.out, result, md, sort_keys=True)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
