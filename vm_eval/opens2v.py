"""OpenS2V-Eval's metrics (arXiv 2505.20292), computed as its evaluation scripts compute them.

Source followed: ``PKU-YuanGroup/OpenS2V-Nexus`` ``eval/`` (v1.1, commit 210eb08 of Oct 2025: ``get_facesim.py``,
``get_aesscore.py``, ``get_motion_amplitude.py``, ``get_motion_smoothness.py``, ``get_gmescore.py``,
``get_nexusscore.py``, ``get_naturalscore.py``, ``merge_result.py``). Per video:

* **FaceSim-Cur / FaceSim-Arc** (human subjects): 32 frames at ``linspace(0, F-1, 32)`` (cast to int, so a short
  video repeats frames). Each image (frames and the reference, read at native size) goes to the detector as BGR at
  det size 320; the face with the largest box is used; when none is found the image is padded by 25% of its height
  / width on each side with grey 128 and detected again (keypoints shifted back). ArcFace (buffalo_l w600k_r50) embeds
  the 112 crop aligned on the (padded) image; CurricularFace (IR-101) gets the 224 ``norm_crop`` of the unpadded BGR
  image, converted to RGB, resized to 112 (bilinear), scaled to [-1, 1]. Per frame ``max(0, cos)`` with the
  reference; Cur drops frames scoring exactly 0, Arc keeps them (the script's list-vs-0 comparison is always true);
  the value is the mean, or 0.0 when no frame has a face (the script's number). A reference without a face:
  ``skipped`` (the script leaves the video out).
* **Aesthetics**: 32 frames; transformers' CLIP preprocessing (shorter side to 224 bicubic, centre crop with the
  offset floored, CLIP mean/std), CLIP ViT-L/14 projected image features L2-normalised, then the MLP aesthetic head
  (768-1024-128-64-16-1, ``aesthetic-model.pth``); the mean raw score (about 4..7).
* **MotionScore** (``motion_amplitude``): every frame; Farneback flow (pyr 0.5, 3 levels, window 15, 3 iterations,
  poly 5 / 1.2) between consecutive frames converted to grey as if RGB were BGR (the script's ``COLOR_BGR2GRAY`` on
  decord's RGB); each flow map resized to width 16 (area); the absolute value of the mean over maps, pixels and both
  components (signed). The script's Lucas-Kanade number (drawn with random colours, not used by the total) is not
  computed.
* **MotionSmoothness**: every frame scored by Q-Align (``q-future/one-align``) on a window of 3 frames around it
  (:func:`sliding_windows`); frames where the score changes by more than 0.025 from the previous or to the next frame
  are artefact frames; the value is ``1 - artefact frames / frames`` (:func:`motion_smoothness`).
* **GmeScore**: 32 frames; GME-Qwen2-VL embeddings of the prompt (with the instruction "Find an image that matches
  the given text.") and of each frame; the mean dot product.
* **NexusScore**: 32 frames; per frame the YOLO-World image-prompt detector finds the reference subject (score > 0.5
  after NMS 0.7, at most 100 boxes); each box crop is embedded by GME and compared with the reference image (dot
  product) and with the subject's label (text); boxes with detector confidence > 0.6 and text score > 0.30 count;
  the value is the mean of their image scores divided by the number of frames with a detection
  (:func:`nexus_score`).
* **NaturalScore**: a vision-language judge rates 16 frames 1..5 (:mod:`vm_eval.opens2v_judge`; never required).

:func:`opens2v_total` reproduces ``merge_result.py``'s normalisation and weighted total from per-metric means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from .clip import CLIP_MEAN, CLIP_STD
from .results import MetricResult

logger = logging.getLogger(__name__)

FACESIM_CUR, FACESIM_ARC = "opens2v_facesim_cur", "opens2v_facesim_arc"
AESTHETIC, MOTION, SMOOTHNESS = "opens2v_aesthetic", "opens2v_motion", "opens2v_motion_smoothness"
GME, NEXUS, NATURAL = "opens2v_gme", "opens2v_nexus", "opens2v_natural"
METRIC_NAMES = (AESTHETIC, SMOOTHNESS, MOTION, FACESIM_CUR, FACESIM_ARC, GME, NEXUS, NATURAL)

SAMPLED_FRAMES = 32  # FaceSim, Aesthetics, GmeScore, NexusScore
FACE_DET_SIZE = 320
FACE_PAD_SCALE = 1.25
FACE_PAD_VALUE = 128
CUR_CROP = 224
CUR_INPUT = 112
SMOOTH_WINDOW = 3
ARTIFACT_THRESHOLD = 0.025
FLOW_WIDTH = 16
GME_QUERY_INSTRUCTION = "Find an image that matches the given text."
NEXUS_BOX_CONF, NEXUS_TEXT_CONF = 0.6, 0.30


def sample_indices(total: int, num: int | None = SAMPLED_FRAMES) -> np.ndarray:
    """OpenS2V's ``linspace(0, total - 1, num, dtype=int)`` (every frame when ``num`` is None)."""
    if total < 1:
        raise ValueError("a video needs at least one frame")
    return np.arange(total) if num is None else np.linspace(0, total - 1, num, dtype=int)


# --------------------------------------------------------------------------------------------------- MotionScore
def motion_amplitude(frames: np.ndarray) -> MetricResult:
    """OpenS2V's MotionScore (``motion_fb``) of uint8 RGB frames (F, H, W, 3)."""
    import cv2

    n = int(frames.shape[0])
    if n < 2:
        return MetricResult.error(f"MotionScore needs at least 2 frames, got {n}")
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_BGR2GRAY) for f in frames]  # RGB read as BGR, as theirs
    maps = []
    for prev, cur in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        h, w = flow.shape[:2]
        maps.append(cv2.resize(flow, (FLOW_WIDTH, int(h * (FLOW_WIDTH / w))), interpolation=cv2.INTER_AREA))
    mean_map = np.mean(np.array(maps), axis=0)
    return MetricResult.ok(abs(float(np.mean(mean_map))), n_pairs=n - 1)


# --------------------------------------------------------------------------------------------- MotionSmoothness
def sliding_windows(n_frames: int, window: int = SMOOTH_WINDOW) -> list[list[int]]:
    """Frame indices of the window around each frame, as OpenS2V's ``load_video_sliding_window``: the window is
    clipped to the video and refilled by repeating its last index (at the start) or its first (elsewhere); a frame
    before the window's left reach gets its window filled with frame 0 alone."""
    left = (window - 1) // 2
    right = window - 1 - left
    out = []
    for cur in range(n_frames):
        start, end = max(0, cur - left), min(n_frames, cur + right + 1)
        idx = list(range(start, end))
        while len(idx) < window:
            if start == 0:
                idx.append(idx[-1])
            else:
                idx.insert(0, idx[0])
        out.append([0] * window if cur < left else idx)
    return out


def artifact_frames(scores: Sequence[float], threshold: float = ARTIFACT_THRESHOLD) -> np.ndarray:
    """Frames on either side of a quality jump larger than ``threshold`` (unique, sorted)."""
    jumps = np.where(np.abs(np.diff(np.asarray(scores, dtype=np.float64))) > threshold)[0]
    return np.unique(np.concatenate([jumps, jumps + 1]))


def motion_smoothness(scores: Sequence[float], threshold: float = ARTIFACT_THRESHOLD) -> MetricResult:
    """``1 - artefact frames / frames`` from per-frame (per-window) quality scores."""
    n = len(scores)
    if n == 0:
        return MetricResult.error("MotionSmoothness needs at least one frame")
    bad = artifact_frames(scores, threshold)
    return MetricResult.ok(1.0 - len(bad) / n, n_frames=n, artifact_frames=int(len(bad)))


class WindowQualityScorer(Protocol):
    model_id: str

    def score_windows(self, windows: list[list[Image.Image]]) -> np.ndarray:
        """One quality score in [0, 1] per window of frames."""


# --------------------------------------------------------------------------------------------------- Aesthetics
def hf_clip_preprocess(images: Sequence[Image.Image], size: int = 224) -> torch.Tensor:
    """transformers' CLIPImageProcessor (PIL path): shorter side to ``size`` (bicubic, long side ``int``-truncated),
    centre crop with the offsets floored, /255, CLIP mean/std -> (N, 3, size, size) float32."""
    out = []
    for im in images:
        im = im.convert("RGB")
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(size * long / short)
        new_w, new_h = (size, new_long) if w <= h else (new_long, size)
        if (new_w, new_h) != (w, h):
            im = im.resize((new_w, new_h), Image.BICUBIC)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        arr = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
        out.append((arr - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


class AestheticMLP(torch.nn.Module):
    """The aesthetic head of ``aesthetic-model.pth``: Linear layers at ``layers.{0,2,4,6,7}`` (dropouts between the
    first four, inactive in eval)."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(dim, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128), torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64), torch.nn.Dropout(0.1), torch.nn.Linear(64, 16), torch.nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_aesthetic_mlp(path, device: torch.device | str = "cpu") -> AestheticMLP:
    from .curricularface import read_state_dict

    state = read_state_dict(path)
    head = AestheticMLP(int(state["layers.0.weight"].shape[1]))
    head.load_state_dict(state, strict=True)
    return head.to(device=device, dtype=torch.float32).eval()


def aesthetic_value(raw: np.ndarray | torch.Tensor) -> MetricResult:
    s = np.asarray(raw, dtype=np.float64).reshape(-1)
    if s.size == 0:
        return MetricResult.error("Aesthetics needs at least 1 frame")
    return MetricResult.ok(float(np.mean(s)), n_frames=int(s.size))


# ------------------------------------------------------------------------------------------------------ FaceSim
@dataclass
class FaceCrop:
    arc: np.ndarray  # ArcFace embedding (L2-normalised)
    cur_input: np.ndarray  # (112, 112, 3) uint8 RGB crop for CurricularFace


def largest_face(faces):
    # the script sorts by box area and takes the last: among equal areas, the last in detection order
    return sorted(faces, key=lambda f: f.area)[-1] if faces else None


def face_crop(detector, embedder, rgb: np.ndarray) -> FaceCrop | None:
    """One image's ArcFace embedding and CurricularFace input, as OpenS2V's ``process_image`` (None: no face)."""
    import cv2
    from insightface.utils import face_align

    bgr = np.ascontiguousarray(np.asarray(rgb)[..., ::-1])
    used, face, shift = bgr, largest_face(detector.detect(bgr)), np.zeros(2, np.float32)
    if face is None:
        h, w = bgr.shape[:2]
        top, left = int(h * (FACE_PAD_SCALE - 1.0)), int(w * (FACE_PAD_SCALE - 1.0))
        used = cv2.copyMakeBorder(bgr, top, top, left, left, cv2.BORDER_CONSTANT,
                                  value=(FACE_PAD_VALUE,) * 3)
        face = largest_face(detector.detect(used))
        if face is None:
            return None
        shift = np.array([left, top], np.float32)
    arc = embedder.embed([used], [face])[0]
    aligned = face_align.norm_crop(bgr, landmark=face.kps - shift, image_size=CUR_CROP)
    cur = cv2.resize(cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB), (CUR_INPUT, CUR_INPUT))
    return FaceCrop(arc, cur)


@torch.inference_mode()
def curricular_embeddings(model: torch.nn.Module, crops: Sequence[np.ndarray], device) -> np.ndarray:
    """L2-normalised CurricularFace embeddings of 112x112 RGB uint8 crops (scaled to [-1, 1])."""
    if not crops:
        return np.zeros((0, 0), np.float32)
    x = torch.from_numpy(np.stack(crops).astype(np.float32)).permute(0, 3, 1, 2).to(device)
    x = (x / 255.0 - 0.5) / 0.5
    emb = model(x).float().cpu().numpy()
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def facesim_values(ref_cur: np.ndarray, ref_arc: np.ndarray, cur: Sequence[np.ndarray | None],
                   arc: Sequence[np.ndarray | None]) -> dict[str, MetricResult]:
    """Per frame ``max(0, cos)``; Cur keeps non-zero frames, Arc all frames with a face; 0.0 when none."""
    cos = lambda a, b: float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))  # noqa: E731
    cur_s = [max(0.0, cos(ref_cur, e)) for e in cur if e is not None]
    arc_s = [max(0.0, cos(ref_arc, e)) for e in arc if e is not None]
    n_face = len(arc_s)
    cur_kept = [s for s in cur_s if s != 0.0]
    detail = {"n_frames": len(cur), "frames_with_face": n_face}
    return {FACESIM_CUR: MetricResult.ok(float(np.mean(cur_kept)) if cur_kept else 0.0, frames_scored=len(cur_kept),
                                         **detail),
            FACESIM_ARC: MetricResult.ok(float(np.mean(arc_s)) if arc_s else 0.0, frames_scored=n_face, **detail)}


# --------------------------------------------------------------------------------------------- GME / NexusScore
def gme_value(text_emb: np.ndarray, frame_emb: np.ndarray) -> MetricResult:
    """Mean over frames of the dot product of the (normalised) text and frame embeddings."""
    t = np.asarray(text_emb, np.float64).reshape(1, -1)
    f = np.asarray(frame_emb, np.float64)
    if f.shape[0] == 0:
        return MetricResult.error("GmeScore needs at least 1 frame")
    return MetricResult.ok(float(np.mean((f * t).sum(-1))), n_frames=int(f.shape[0]))


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float


class SubjectDetector(Protocol):
    model_id: str

    def detect(self, frame: Image.Image, prompt_image: Image.Image) -> list[Detection]:
        """Boxes of the subject shown by ``prompt_image`` in ``frame`` (after OpenS2V's NMS / score filtering)."""


def nexus_value(box_conf: Sequence[float], text_scores: Sequence[float], image_scores: Sequence[float],
                frames_with_detection: int) -> MetricResult:
    """OpenS2V's NexusScore: mean image score of the boxes passing both gates, / frames with a detection."""
    kept = [float(s) for c, t, s in zip(box_conf, text_scores, image_scores)
            if c > NEXUS_BOX_CONF and t > NEXUS_TEXT_CONF and s != 0]
    detail = {"boxes": len(box_conf), "boxes_kept": len(kept), "frames_with_detection": frames_with_detection}
    if not kept:
        return MetricResult.ok(0.0, **detail)
    return MetricResult.ok(float(np.mean(np.asarray(kept, np.float32))) / frames_with_detection, **detail)


# ---------------------------------------------------------------------------------------------------- the total
# merge_result.py: each metric's mean over videos is clipped and mapped to [0, 1] with these ranges
NORMALISATION = {AESTHETIC: (4.0, 7.0), MOTION: (0.0, 1.0), SMOOTHNESS: (0.0, 1.0), FACESIM_CUR: (0.0, 1.0),
                 GME: (0.0, 1.0), NEXUS: (0.0, 0.05), NATURAL: (1.0, 5.0)}
TOTAL_WEIGHTS = {
    "open": {AESTHETIC: 0.16, SMOOTHNESS: 0.06, MOTION: 0.02, FACESIM_CUR: 0.20, GME: 0.12, NEXUS: 0.20,
             NATURAL: 0.24},
    "human": {AESTHETIC: 0.18, SMOOTHNESS: 0.09, MOTION: 0.03, FACESIM_CUR: 0.25, GME: 0.15, NATURAL: 0.30},
}


def normalised_means(per_video: dict[str, Sequence[float]]) -> dict[str, float]:
    """merge_result.py's per-metric numbers from per-video values: each value clipped (aesthetics to [4, 7],
    natural to [1, 5], the others to their maximum, motion as absolute value; NexusScore zeros left out), averaged,
    then mapped to [0, 1] with the metric's range (a metric without values counts 0, as the script's)."""
    out = {}
    for m, (lo, hi) in NORMALISATION.items():
        vals = [float(v) for v in per_video.get(m, ())]
        if m == NEXUS:
            vals = [v for v in vals if v != 0]
        if m in (AESTHETIC, NATURAL):
            vals = [max(min(v, hi), lo) for v in vals]
        elif m in (MOTION, SMOOTHNESS):
            vals = [min(abs(v), hi) for v in vals]
        else:
            vals = [min(v, hi) for v in vals]
        mean = sum(vals) / len(vals) if vals else 0.0
        out[m] = (mean - lo) / (hi - lo)
    return out


def opens2v_total(per_video: dict[str, Sequence[float]], domain: str = "open") -> dict[str, float]:
    """Normalised metrics and the weighted total of OpenS2V-Eval (``domain``: 'open' (Open-Domain and
    Single-Object) or 'human' (Human-Domain, no NexusScore))."""
    if domain not in TOTAL_WEIGHTS:
        raise ValueError(f"unknown OpenS2V domain {domain!r}; expected one of {tuple(TOTAL_WEIGHTS)}")
    norm = normalised_means(per_video)
    weights = TOTAL_WEIGHTS[domain]
    out = {m: norm[m] for m in weights}
    out["total_score"] = sum(w * norm[m] for m, w in weights.items())
    return out


# ---------------------------------------------------------------------------------------------------- scoring
class OpenS2VScorer:
    """Scores OpenS2V's metrics from uint8 RGB frames. ``models`` is a :class:`vm_eval.opens2v_models.OpenS2VModels`
    whose attributes load on first use; a metric whose model is unavailable gets ``skipped`` with the reason."""

    def __init__(self, models, judge_repeats: int = 3):
        self.models = models
        self.judge_repeats = judge_repeats
        self._ref_face: dict[str, object] = {}

    @property
    def model_id(self) -> str:
        return self.models.model_id

    def score(self, frames: np.ndarray, names: Sequence[str], *, prompt: str, reference: Image.Image,
              reference_key: str, label: str | None = None) -> dict[str, MetricResult]:
        out: dict[str, MetricResult] = {}
        groups: list[tuple[tuple[str, ...], Callable[[], dict[str, MetricResult]]]] = [
            ((MOTION,), lambda: {MOTION: motion_amplitude(frames)}),
            ((AESTHETIC,), lambda: {AESTHETIC: self.aesthetic(frames)}),
            ((FACESIM_CUR, FACESIM_ARC), lambda: self.facesim(frames, reference, reference_key)),
            ((SMOOTHNESS,), lambda: {SMOOTHNESS: self.smoothness(frames)}),
            ((GME,), lambda: {GME: self.gme(frames, prompt)}),
            ((NEXUS,), lambda: {NEXUS: self.nexus(frames, reference, label)}),
            ((NATURAL,), lambda: {NATURAL: self.natural(frames)}),
        ]
        from .opens2v_models import Unavailable

        for group, fn in groups:
            wanted = [m for m in group if m in names]
            if not wanted:
                continue
            try:
                res = fn()
            except Unavailable as exc:
                res = {m: MetricResult.unavailable(str(exc)) for m in group}
            out.update({m: res[m] for m in wanted})
        return out

    # ---------------------------------------------------------------------------------------------- per metric
    @torch.inference_mode()
    def aesthetic(self, frames: np.ndarray) -> MetricResult:
        clip, head = self.models.aesthetic_clip, self.models.aesthetic_head
        pil = [Image.fromarray(frames[i]) for i in sample_indices(len(frames))]
        x = hf_clip_preprocess(pil).to(clip.device, clip.dtype)
        emb = clip.model.encode_image(x).float()
        emb = emb / torch.linalg.vector_norm(emb, dim=-1, keepdim=True)
        return aesthetic_value(head(emb.to(next(head.parameters()).device)).squeeze(1).cpu())

    def _face_reference(self, reference: Image.Image, key: str):
        if key not in self._ref_face:
            det, emb, cur_model, device = self.models.face
            crop = face_crop(det, emb, np.asarray(reference.convert("RGB")))
            self._ref_face[key] = None if crop is None else (
                curricular_embeddings(cur_model, [crop.cur_input], device)[0], crop.arc)
        return self._ref_face[key]

    def facesim(self, frames: np.ndarray, reference: Image.Image, key: str) -> dict[str, MetricResult]:
        det, emb, cur_model, device = self.models.face
        ref = self._face_reference(reference, key)
        if ref is None:
            reason = "no face detected in the reference image (OpenS2V leaves such a video out)"
            return {FACESIM_CUR: MetricResult.skipped(reason), FACESIM_ARC: MetricResult.skipped(reason)}
        crops = [face_crop(det, emb, frames[i]) for i in sample_indices(len(frames))]
        found = [c for c in crops if c is not None]
        cur_emb = iter(curricular_embeddings(cur_model, [c.cur_input for c in found], device))
        cur = [None if c is None else next(cur_emb) for c in crops]
        arc = [None if c is None else c.arc for c in crops]
        return facesim_values(ref[0], ref[1], cur, arc)

    def smoothness(self, frames: np.ndarray) -> MetricResult:
        scorer: WindowQualityScorer = self.models.qalign
        pil = [Image.fromarray(f) for f in frames]
        windows = [[pil[i] for i in idx] for idx in sliding_windows(len(pil))]
        return motion_smoothness(np.asarray(scorer.score_windows(windows), dtype=np.float64).tolist())

    def gme(self, frames: np.ndarray, prompt: str) -> MetricResult:
        gme = self.models.gme
        pil = [Image.fromarray(frames[i]) for i in sample_indices(len(frames))]
        text = gme.text_embeddings([prompt] * len(pil), instruction=GME_QUERY_INSTRUCTION)
        return gme_value(text[0], gme.image_embeddings(pil)) if len(pil) else gme_value(text[0], np.zeros((0, 1)))

    def nexus(self, frames: np.ndarray, reference: Image.Image, label: str | None) -> MetricResult:
        detector: SubjectDetector = self.models.nexus_detector
        gme = self.models.gme
        ref = reference.convert("RGB")
        label = label or "object"
        crops, confs, with_det = [], [], 0
        for i in sample_indices(len(frames)):
            frame = Image.fromarray(frames[i])
            dets = detector.detect(frame, ref)
            if dets:
                with_det += 1
            for d in dets:
                crops.append(frame.crop(tuple(float(v) for v in d.box)))
                confs.append(d.score)
        if not crops:
            return nexus_value([], [], [], 0)
        ref_emb = gme.image_embeddings([ref])[0]
        text_emb = gme.text_embeddings([label], instruction=GME_QUERY_INSTRUCTION)[0]
        crop_emb = gme.image_embeddings(crops)
        return nexus_value(confs, (crop_emb @ text_emb).tolist(), (crop_emb @ ref_emb).tolist(), with_det)

    def natural(self, frames: np.ndarray) -> MetricResult:
        from .opens2v_judge import natural_score

        judge = self.models.judge
        return natural_score(judge, frames, repeats=self.judge_repeats, prompt=self.models.judge_prompt)
