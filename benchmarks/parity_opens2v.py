"""Parity of our OpenS2V-Eval metrics (:mod:`vm_eval.opens2v`) with OpenS2V's own evaluation code, video by video.

OpenS2V cannot be installed or committed here, so this script imports its ``eval/`` scripts from a checkout given on
the command line (``git clone https://github.com/PKU-YuanGroup/OpenS2V-Nexus``; v1.1 of ``eval/``) and runs their
functions beside ours on the same videos with the same random weights:

* **MotionScore**: ``get_motion_amplitude.compute_farneback_optical_flow`` / ``_downscale_maps`` / ``_motion_score``
  on the PIL frames their reader would give;
* **FaceSim-Cur / FaceSim-Arc**: ``get_facesim.process_image`` / ``process_video`` with a real insightface
  ``FaceAnalysis`` over our tiny random buffalo_l-layout pack (det size 320) and their own CurricularFace
  ``get_model("IR_101")`` (random init), whose state dict our IR backbone loads strictly;
* **Aesthetics**: ``get_aesscore.AestheticScorer`` (transformers ``CLIPVisionModelWithProjection`` + their MLP) on a
  random CLIP saved to a folder; ours runs open_clip with the same weights converted, and the same MLP file. Their
  environment pinned transformers 4.x, whose slow ``CLIPImageProcessor`` is the PIL path; transformers 5 here defaults
  to a torchvision backend, so their processor is given transformers' PIL backend (the default's difference is
  reported too);
* **MotionSmoothness**: their ``load_video_sliding_window`` windows and ``get_artifacts_frames`` + final formula on
  random per-window scores, and ``QAlignVideoScorer.expand2square``; the Q-Align model itself (mPLUG-Owl2 from
  their ``q_align`` package) is not built;
* **NaturalScore**: their ``extract_frames`` (OpenCV capture) + ``image_to_base64`` + ``call_gpt`` request body
  (a recording stand-in for the ``openai`` client) against our frames and request, with their prompt text;
* **total**: ``merge_result.merge_scores_files`` + ``process_scores`` on their committed demo JSONs against
  :func:`vm_eval.opens2v.opens2v_total`.

Not run here, and why: GmeScore / NexusScore's GME wrapper (``utils/gme/gme_model.py``) addresses transformers
4.4x's Qwen2-VL module layout (``base.model.embed_tokens``), which transformers 5 here no longer has; NexusScore's
YOLO-World detector needs mmcv / mmdet / mmyolo (compiled; not installable under ``constraints.txt``); Q-Align needs
its ``q_align`` package (mPLUG-Owl2). Modules their scripts import at the top but these code paths do not use
(``decord``, ``openai``, ``tenacity``, ``q_align``, ``supervision``) get placeholders; ``decord.VideoReader`` is a
shim over our reader (PyAV), so frame decoding itself is not compared (NaturalScore's OpenCV reader is real).

    python -m benchmarks.parity_opens2v --opens2v /path/to/OpenS2V-Nexus [--size tiny|full]

Results: ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/parity_opens2v_<size>``).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import logging
import os
import shutil
import sys
import tempfile
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.reference_code import checkout_commit, placeholder_modules as stand_ins

logger = logging.getLogger("parity_opens2v")

TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------ placeholders
class _Batch:
    def __init__(self, arr):
        self.arr = arr

    def asnumpy(self):
        return self.arr


class ShimVideoReader:
    """decord.VideoReader's interface over frames read by our reader (decord is not installed here)."""

    def __init__(self, path, *a, **k):
        from vm_eval.videoio import read_video_strict

        self.frames = read_video_strict(path)

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        return _Batch(self.frames[int(i)])

    def get_batch(self, idx):
        return _Batch(self.frames[list(idx)])


class RecordingOpenAI:
    """Stands in for ``openai.OpenAI``: records each chat-completion request and answers "4"."""

    requests: list = []

    def __init__(self, *a, **k):
        self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=self._create))

    def _create(self, **body):
        RecordingOpenAI.requests.append(body)
        msg = types.SimpleNamespace(content="4")
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=msg)])


def _identity_decorator(*a, **k):
    return lambda f: f


def placeholder_modules() -> list[str]:
    """Stand-ins for OpenS2V's imports that these code paths never call (or whose calls are recorded)."""
    return stand_ins({
        "decord": {"VideoReader": ShimVideoReader, "cpu": lambda *a: None},
        "openai": {"OpenAI": RecordingOpenAI},
        "tenacity": {"retry": _identity_decorator, "wait_exponential": lambda **k: None,
                     "stop_after_attempt": lambda n: None},
        "q_align": {}, "q_align.model": {}, "q_align.model.builder": {"load_pretrained_model": None},
        "q_align.constants": {"IMAGE_TOKEN_INDEX": -200}, "q_align.mm_utils": {"tokenizer_image_token": None},
    })


@contextmanager
def inside(folder: Path):
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------------------------------- the videos
def make_videos(folder: Path) -> list[Path]:
    """mp4 videos (lossless-ish, high quality) of real photographs moving, at several sizes and lengths."""
    import cv2
    from skimage import data

    from vm_common.media import write_mp4

    astro, cat = data.astronaut(), data.chelsea()
    specs = [("astronaut_pan", astro, 256, 256, 16, 3), ("astronaut_zoom_wide", astro, 192, 320, 24, 0),
             ("cat_short", cat, 160, 224, 9, 4), ("astronaut_tall", astro, 288, 200, 33, 2)]
    paths = []
    for name, img, h, w, n, shift in specs:
        frames = []
        for i in range(n):
            scale = 1.0 + (0.01 * i if shift == 0 else 0.0)
            big = cv2.resize(img, (int(w * 1.3 * scale), int(h * 1.3 * scale)))
            y, x = (big.shape[0] - h) // 2, min(big.shape[1] - w, i * shift)
            frames.append(np.ascontiguousarray(big[y:y + h, x:x + w]))
        paths.append(write_mp4(folder / f"{name}.mp4", np.stack(frames), fps=8))
    return paths


# -------------------------------------------------------------------------------------------------- per metric
def motion_rows(theirs, videos, frames_of):
    from PIL import Image

    from vm_eval.opens2v import motion_amplitude

    rows = []
    for p in videos:
        pil = [Image.fromarray(f) for f in frames_of[p]]
        fb, _, _, _ = theirs.compute_farneback_optical_flow(pil)
        t = abs(float(theirs._motion_score(theirs._downscale_maps(fb))))
        rows.append((p.name, motion_amplitude(frames_of[p]).value, t))
    return rows


def smoothness_rows(theirs, videos, frames_of, rng):
    from PIL import Image

    from vm_eval.opens2v import motion_smoothness, sliding_windows
    from vm_eval.opens2v_models import QAlignScorer

    rows, windows_equal, square_equal = [], True, True
    for p in videos:
        frames = frames_of[p]
        their_windows = theirs.load_video_sliding_window(str(p), 3)
        ours = [[frames[i] for i in idx] for idx in sliding_windows(len(frames), 3)]
        windows_equal &= len(ours) == len(their_windows) and all(
            np.array_equal(a, np.asarray(b)) for w1, w2 in zip(ours, their_windows) for a, b in zip(w1, w2))
        # random quality scores with some jumps above and below the 0.025 threshold
        scores = np.cumsum(rng.choice([0.0, 0.01, -0.02, 0.03, -0.05], size=len(frames))) * 0.5 + 0.6
        t = 1 - len(theirs.get_artifacts_frames(scores.tolist())) / len(scores)
        rows.append((p.name, motion_smoothness(scores.tolist()).value, t))
        img = Image.fromarray(frames[0])
        colour = (122, 116, 104)
        square_equal &= np.array_equal(np.asarray(QAlignScorer.square(img, colour)),
                                       np.asarray(theirs.QAlignVideoScorer.expand2square(None, img, colour)))
    return rows, windows_equal, square_equal


def facesim_rows(theirs, their_cur_factory, videos, ref_path, work, size):
    """Their process_image / process_video with a real FaceAnalysis over the tiny pack and their IR_101."""
    from insightface.app import FaceAnalysis
    from PIL import Image

    from vm_eval.curricularface import IR_101, IRBackbone
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.opens2v import FACESIM_ARC, FACESIM_CUR
    from vm_eval.tiny import tiny_face_pack
    from vm_eval.videoio import read_video_strict

    root = work / "face_extractor"
    shutil.copytree(tiny_face_pack(), root / "models" / "buffalo_l", ignore=shutil.ignore_patterns(".complete"))
    app = FaceAnalysis(root=str(root), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(320, 320))
    torch.manual_seed(0)
    their_cur = their_cur_factory("IR_101")([112, 112]).eval()
    with torch.no_grad():  # non-trivial BN statistics so every layer matters in eval mode
        for m in their_cur.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours_model = IRBackbone(IR_101)
    ours_model.load_state_dict(their_cur.state_dict(), strict=True)  # the layout check: every key and shape
    ours_model.eval()
    keys = len(their_cur.state_dict())

    enc = Encoders(EncoderConfig(preset="tiny", device="cpu", suites=("opens2v",)))
    models = enc.opens2v.models
    det, emb, _, dev = models.face
    models.__dict__["face"] = (det, emb, ours_model, dev)

    ref_rgb = np.asarray(Image.open(ref_path).convert("RGB"))
    t_align, t_arc = theirs.process_image(app, str(ref_path))
    t_ref_cur = theirs.inference(their_cur, t_align, "cpu")
    rows = []
    for p in videos:
        t_cur, t_arc_score = theirs.process_video(str(p), app, their_cur, t_arc, t_ref_cur, "cpu", num_frames=32)
        res = enc.opens2v.facesim(read_video_strict(p), Image.fromarray(ref_rgb), "ref")
        rows.append((p.name, {FACESIM_CUR: (res[FACESIM_CUR].value, float(t_cur)),
                              FACESIM_ARC: (res[FACESIM_ARC].value, float(t_arc_score))},
                     res[FACESIM_ARC].detail.get("frames_with_face")))
    return rows, keys


def hf_vision_to_open_clip(state: dict, layers: int) -> dict:
    """A transformers CLIPVisionModelWithProjection state dict in open_clip's ``visual.*`` names."""
    out = {"class_embedding": state["vision_model.embeddings.class_embedding"],
           "conv1.weight": state["vision_model.embeddings.patch_embedding.weight"],
           "positional_embedding": state["vision_model.embeddings.position_embedding.weight"],
           "ln_pre.weight": state["vision_model.pre_layrnorm.weight"],
           "ln_pre.bias": state["vision_model.pre_layrnorm.bias"],
           "ln_post.weight": state["vision_model.post_layernorm.weight"],
           "ln_post.bias": state["vision_model.post_layernorm.bias"],
           "proj": state["visual_projection.weight"].t().contiguous()}
    for i in range(layers):
        h, o = f"vision_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        out[o + "attn.in_proj_weight"] = torch.cat([state[h + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[o + "attn.in_proj_bias"] = torch.cat([state[h + f"self_attn.{x}_proj.bias"] for x in "qkv"])
        for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out[o + a + ".weight"], out[o + a + ".bias"] = state[h + b + ".weight"], state[h + b + ".bias"]
    return out


def _write_tiny_clip_tokenizer(folder: Path) -> None:
    import json

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def aesthetic_rows(theirs, videos, frames_of, work, size):
    import open_clip
    from transformers import CLIPImageProcessor, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from vm_eval.clip import ClipEncoder
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.opens2v import load_aesthetic_mlp

    if size == "full":  # CLIP ViT-L/14 (openai/clip-vit-large-patch14's vision tower)
        cfg = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                   patch_size=14, projection_dim=768)
        oc = dict(embed_dim=768, vision_cfg={"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14,
                                             "head_width": 64})
    else:
        cfg = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, patch_size=32,
                   projection_dim=32)
        oc = dict(embed_dim=32, vision_cfg={"image_size": 224, "layers": 2, "width": 64, "patch_size": 32,
                                            "head_width": 32})
    torch.manual_seed(0)
    hf = CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=224, hidden_act="quick_gelu", **cfg)).eval()
    folder = work / "clip"
    hf.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    _write_tiny_clip_tokenizer(folder)
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(1)
    mlp = theirs.MLP()
    if cfg["projection_dim"] != 768:
        mlp.layers[0] = torch.nn.Linear(cfg["projection_dim"], 1024)
    torch.save(mlp.state_dict(), work / "aesthetic-model.pth")
    mlp_orig = theirs.MLP
    theirs.MLP = lambda: mlp  # their class hard-codes 768 inputs; the tiny CLIP's is smaller
    try:
        scorer = theirs.AestheticScorer(torch.float32, str(folder), str(work / "aesthetic-model.pth"))
    finally:
        theirs.MLP = mlp_orig
    default_backend = type(scorer.processor.image_processor).__name__

    oc_model = open_clip.CLIP(text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                                        "layers": 1}, quick_gelu=True, **oc).eval()
    oc_model.visual.load_state_dict(hf_vision_to_open_clip(hf.state_dict(), cfg["num_hidden_layers"]), strict=True)
    enc = Encoders(EncoderConfig(preset="tiny", device="cpu", suites=("opens2v",)))
    models = enc.opens2v.models
    models.__dict__["aesthetic_clip"] = ClipEncoder(oc_model, None, torch.device("cpu"), torch.float32, "converted")
    models.__dict__["aesthetic_head"] = load_aesthetic_mlp(work / "aesthetic-model.pth")

    rows = []
    for p in videos:
        pil = theirs.sample_video_frames(str(p), num_frames=32)
        processor_default = scorer.processor.image_processor
        t_default = float(theirs.run_aesthetic_laion(scorer, pil).mean())
        scorer.processor.image_processor = CLIPImageProcessorPil()
        t_pil = float(theirs.run_aesthetic_laion(scorer, pil).mean())
        scorer.processor.image_processor = processor_default
        rows.append((p.name, enc.opens2v.aesthetic(frames_of[p]).value, t_pil, t_default))
    return rows, default_backend


def natural_rows(theirs, videos):
    import cv2

    from vm_eval.opens2v_judge import chat_request, judge_frames

    rows = []
    for p in videos:
        cap = cv2.VideoCapture(str(p))
        all_frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            all_frames.append(f[..., ::-1])  # RGB, as our reader gives
        cap.release()
        their_frames = theirs.extract_frames(str(p))
        their_b64 = [theirs.image_to_base64(f) for f in their_frames]
        RecordingOpenAI.requests.clear()
        theirs.call_gpt(their_b64, p.stem)
        their_body = RecordingOpenAI.requests[-1]
        ours = judge_frames(np.stack(all_frames))
        our_body = chat_request(ours, theirs.prompt, their_body["model"])
        same = our_body["messages"] == their_body["messages"]
        rows.append((p.name, len(ours), len(their_frames), same,
                     sum(a == base64.b64decode(b) for a, b in zip(ours, their_b64))))
    return rows


def total_rows(eval_dir: Path):
    """Their merge on their committed demo JSONs vs ours on the same per-video values."""
    from vm_eval import opens2v as o

    work = Path(tempfile.mkdtemp())
    shutil.copytree(eval_dir / "demo_result", work / "demo_result")
    sys.path.insert(0, str(eval_dir))
    with inside(work):
        merge = importlib.import_module("merge_result")  # runs its module-level demo merge inside ``work``
        merged = merge.merge_scores_files("demo_result/model_name_output_json")
    keys = {"aes_score": o.AESTHETIC, "motion_amplitude": o.MOTION, "motion_smoothness": o.SMOOTHNESS,
            "facesim_cur": o.FACESIM_CUR, "gme_score": o.GME, "nexus_score": o.NEXUS, "natural_score": o.NATURAL}
    per_video: dict[str, list[float]] = {}
    for scores in merged.values():
        for k, m in keys.items():
            if k in scores:
                per_video.setdefault(m, []).append(float(scores[k]))
    rows = []
    for their_domain, ours_domain in (("Open-Domain", "open"), ("Human-Domain", "human")):
        theirs = merge.process_scores(merged, their_domain)
        ours = o.opens2v_total(per_video, ours_domain)
        for k, m in [("total_score", "total_score")] + list(keys.items()):
            if k in theirs:
                rows.append((f"{their_domain} {k}", ours[m], theirs[k]))
    shutil.rmtree(work, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------------------------------- the run
def run(checkout: Path, size: str, work: Path) -> dict:
    from vm_eval.videoio import read_video_strict

    eval_dir = checkout / "eval"
    placeholders = placeholder_modules()
    sys.path.insert(0, str(eval_dir))
    t_motion = importlib.import_module("get_motion_amplitude")
    t_smooth = importlib.import_module("get_motion_smoothness")
    t_face = importlib.import_module("get_facesim")
    t_cur = importlib.import_module("utils.curricularface")
    t_aes = importlib.import_module("get_aesscore")
    t_nat = importlib.import_module("get_naturalscore")

    videos = make_videos(work)
    frames_of = {p: read_video_strict(p) for p in videos}
    from skimage import data
    from PIL import Image

    ref_path = work / "reference.png"
    Image.fromarray(data.astronaut()[20:330, 100:380]).save(ref_path)

    result: dict = {"size": size, "tolerance": TOLERANCE, "placeholders": placeholders, "metrics": {}}

    def table(name, rows):
        diffs = [abs(a - b) for _, a, b, *_ in rows]
        result["metrics"][name] = {"per_video": [{"video": r[0], "ours": r[1], "opens2v": r[2],
                                                  "abs_diff": abs(r[1] - r[2]), **({"extra": r[3:]} if r[3:] else {})}
                                                 for r in rows],
                                   "max_abs_diff": max(diffs), "within_tolerance": max(diffs) <= TOLERANCE}
        logger.info("%s: max |diff| %.2e", name, max(diffs))

    table("opens2v_motion", motion_rows(t_motion, videos, frames_of))
    rows, windows_equal, square_equal = smoothness_rows(t_smooth, videos, frames_of, np.random.default_rng(0))
    table("opens2v_motion_smoothness (post-processing, random window scores)", rows)
    result["sliding_windows_identical"], result["expand2square_identical"] = windows_equal, square_equal
    face, keys = facesim_rows(t_face, t_cur.get_model, videos, ref_path, work, size)
    result["curricularface_ir101_keys_loaded_strictly"] = keys
    for m in ("opens2v_facesim_cur", "opens2v_facesim_arc"):
        table(m, [(name, d[m][0], d[m][1], n) for name, d, n in face])
    aes, backend = aesthetic_rows(t_aes, videos, frames_of, work, size)
    table("opens2v_aesthetic", [(n, a, b) for n, a, b, _ in aes])
    result["aesthetic_transformers_default_backend"] = backend
    result["aesthetic_vs_default_backend_max_abs_diff"] = max(abs(a - d) for _, a, _, d in aes)
    nat = natural_rows(t_nat, videos)
    result["natural_requests"] = [{"video": n, "frames_ours": a, "frames_opens2v": b, "messages_identical": s,
                                   "jpeg_bytes_identical": j} for n, a, b, s, j in nat]
    table("total (merge_result, their demo JSONs)", total_rows(eval_dir))
    result["within_tolerance"] = all(m["within_tolerance"] for m in result["metrics"].values()) and windows_equal \
        and square_equal and all(r["messages_identical"] for r in result["natural_requests"])
    return result


def markdown(result: dict) -> str:
    from benchmarks.harness.results import table

    lines = ["# OpenS2V-Eval parity: ours vs OpenS2V-Nexus's own eval code", "",
             f"OpenS2V-Nexus checkout {result['opens2v_commit']} (eval/ v1.1). Random weights ({result['size']} "
             f"CLIP for Aesthetics; full-size IR-101 for FaceSim-Cur; tiny random buffalo_l-layout face pack), mp4 "
             f"videos of scikit-image photos, CPU, float32. Placeholder modules (never called on these paths, "
             f"decord a shim over our reader): {', '.join(result['placeholders']) or 'none'}. Tolerance "
             f"{result['tolerance']:g}: {'all within' if result['within_tolerance'] else 'EXCEEDED'}.", ""]
    for name, m in result["metrics"].items():
        lines += [f"## {name}", ""]
        rows = [[r["video"], f"{r['ours']:.6f}", f"{r['opens2v']:.6f}", f"{r['abs_diff']:.1e}"]
                for r in m["per_video"]]
        lines += table(["video / number", "ours", "OpenS2V", "|diff|"], rows)
        lines += ["", f"max |diff| {m['max_abs_diff']:.1e}", ""]
    lines += [f"- CurricularFace: OpenS2V's IR_101 state dict ({result['curricularface_ir101_keys_loaded_strictly']} "
              f"entries) loads strictly into our IR backbone.",
              "- MotionSmoothness windows identical to load_video_sliding_window: "
              f"{result['sliding_windows_identical']}; "
              f"square padding identical to expand2square: {result['expand2square_identical']}.",
              f"- Aesthetics: their processor given transformers' PIL backend (their transformers 4.x slow path); "
              f"with transformers 5's default {result['aesthetic_transformers_default_backend']} the difference is "
              f"{result['aesthetic_vs_default_backend_max_abs_diff']:.1e}.",
              "- NaturalScore requests (frames sent, chat messages identical to their call_gpt's, JPEG frames "
              "byte-identical): " + "; ".join(f"{r['video']} {r['frames_ours']}/{r['frames_opens2v']} frames, "
                                               f"messages {'identical' if r['messages_identical'] else 'DIFFER'}, "
                                               f"{r['jpeg_bytes_identical']} identical JPEGs"
                                               for r in result["natural_requests"]),
              "- Not run here: GmeScore / NexusScore (their GME wrapper needs transformers 4.4x's Qwen2-VL layout; "
              "YOLO-World needs mmcv/mmyolo), the Q-Align model (their q_align package).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opens2v", type=Path, required=True, help="a checkout of PKU-YuanGroup/OpenS2V-Nexus")
    ap.add_argument("--size", choices=("tiny", "full"), default="tiny",
                    help="CLIP for Aesthetics: tiny random, or a full-size random ViT-L/14 (slower)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--opens2v-commit", default=None, help="record this commit (when the checkout is not a git tree)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = args.out or Path(f"benchmarks/results/parity_opens2v_{args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.opens2v.resolve(), args.size, Path(tmp))
    result["opens2v_commit"] = args.opens2v_commit or checkout_commit(args.opens2v)
    from benchmarks.harness.results import write_results

    js, md = write_results(out.resolve(), result, markdown(result))
    logger.info("within %g: %s; wrote %s and %s", TOLERANCE, result["within_tolerance"], js, md)
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
