"""Score one video: every frame through each encoder once, reference and prompt embeddings cached.

One CLIP image forward per frame serves CLIP-T, CLIP-I and T.Cons; DINO and ArcFace embed each frame once; the
reference's CLIP / DINO / face embeddings are computed once per subject and the prompt's text embedding once per
prompt. A failure inside one family gives ``error`` results for that family's metrics only. A bug in our code is
not a failure of the video: the :class:`~vm_common.error_policy.ErrorPolicy` decides (``raise``: it propagates;
``record``: ``error`` results with ``detail["error_kind"] == "internal_error"``, which make the command exit 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from PIL import Image

from vm_common.error_policy import INTERNAL_ERROR, ErrorPolicy, resolve_policy

from .clip import clip_metrics, clip_resize_crop
from .dino import dino_metric
from .encoders import Encoders
from .face import face_metric
from .flow import DynamicRule, dynamic_degree
from .imaging import to_pil_list
from .metrics import get_metric, metrics_for
from .results import MetricResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """A subject's reference image as scored (read from its file at native size) and a cache key.

    ``image``: the corrected reading (EXIF orientation applied, transparency composited on white, RGB);
    ``raw``: the file as stored (its own mode, no EXIF transpose), which the ``videomaker`` protocol scores as the
    authors' scripts did (None for an in-memory reference: ``image`` is used)."""

    key: str
    image: Image.Image
    raw: Image.Image | None = None


class VideoScorer:
    def __init__(self, encoders: Encoders, rule: DynamicRule = DynamicRule(), policy: ErrorPolicy | None = None):
        self.encoders = encoders
        self.rule = rule
        self.policy = resolve_policy(policy)
        self.protocol = encoders.config.scoring  # the scoring protocol's choices (vm_eval.scoring_protocol)
        self._ref_cache: dict[tuple[str, str], object] = {}
        self._text_cache: dict[str, np.ndarray] = {}

    @property
    def flow_name(self) -> str:
        return self.encoders.config.flow

    def metrics_for(self, kind: str) -> tuple[str, ...]:
        return metrics_for(kind, self.flow_name, self.encoders.config.suites)

    # ----------------------------------------------------------------------------------------- cached embeddings
    def reference_image(self, family: str, ref: Reference) -> Image.Image:
        """The reference as ``family``'s encoder gets it under the scoring protocol. ``raw`` reading (videomaker):
        the stored file without EXIF transpose; CLIP resizes and crops it in the file's own mode before PIL's
        ``convert("RGB")`` (OpenAI CLIP's preprocess on an opened file), DINO and face convert it first; either
        way transparency is dropped, not composited. Otherwise the corrected ``ref.image``."""
        if self.protocol.reference_reading != "raw" or ref.raw is None:
            return ref.image
        if family == "clip":
            return clip_resize_crop(ref.raw).convert("RGB")  # the encoder's own resize/crop is then a no-op
        return ref.raw.convert("RGB")

    def _ref(self, family: str, ref: Reference):
        key = (family, ref.key)
        if key not in self._ref_cache:
            if family == "clip":
                self._ref_cache[key] = self.encoders.clip.encode_images([self.reference_image(family, ref)])[0]
            elif family == "dino":
                self._ref_cache[key] = self.encoders.dino.encode_images([self.reference_image(family, ref)])[0]
            elif family == "face":
                self._ref_cache[key] = self.encoders.face.reference_embedding(self.reference_image(family, ref))
            else:
                raise KeyError(family)
        return self._ref_cache[key]

    def _text(self, prompt: str) -> np.ndarray:
        if prompt not in self._text_cache:
            self._text_cache[prompt] = self.encoders.clip.encode_texts([prompt])[0]
        return self._text_cache[prompt]

    # ------------------------------------------------------------------------------------------------- scoring
    def score(self, frames: np.ndarray, *, prompt: str, reference: Reference, kind: str = "human",
              metrics: Sequence[str] | None = None, dd_frames: np.ndarray | None = None,
              video_fps: float | None = None) -> dict[str, MetricResult]:
        """Per-video results for ``metrics`` (default: those of ``kind``). ``dd_frames``: the frames flow is
        computed on when they differ from the scored ones (the paper ran DD on the saved GIFs). ``video_fps``: the
        frame rate of a non-GIF video file the frames were read from; the ``videomaker`` protocol then keeps every
        ``round(fps / 8)``-th frame for DD, as the authors' reader did."""
        wanted = tuple(metrics or self.metrics_for(kind))
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
        families: dict[str, list[str]] = {}
        for m in wanted:
            families.setdefault(get_metric(m).family, []).append(m)
        results: dict[str, MetricResult] = {}
        pil = to_pil_list(frames) if {"clip", "dino"} & set(families) else []
        for family, names in families.items():
            try:
                results.update(self._score_family(family, names, frames, pil, prompt, reference, dd_frames,
                                                  video_fps))
            except Exception as exc:  # one family failing must not stop the others; the policy decides bugs
                internal = self.policy.check(exc, f"{family} scoring")
                if not internal:
                    logger.warning("%s metrics failed: %s: %s", family, type(exc).__name__, exc)
                detail = {"error_kind": INTERNAL_ERROR} if internal else {}
                for n in names:
                    results[n] = MetricResult.error(f"{family} scoring failed: {type(exc).__name__}: {exc}", **detail)
        return {m: results[m] for m in wanted}

    def _score_family(self, family, names, frames, pil, prompt, reference, dd_frames,
                      video_fps=None) -> dict[str, MetricResult]:
        if family == "clip":
            return self._clip(names, pil, prompt, reference)
        if family == "dino":
            emb = self.encoders.dino.encode_images(pil)
            return {"dino_i": dino_metric(emb, self._ref("dino", reference))}
        if family == "face":
            ref_emb, reason = self._ref("face", reference)
            return {"face_sim": face_metric(ref_emb, reason, self.encoders.face.frame_embeddings(frames))}
        if family == "toy":
            return self.encoders.toy.score(frames, reference.image, prompt, tuple(names))
        if family == "vbench":
            return self.encoders.vbench.score(frames, tuple(names))
        if family == "copypaste":
            return self.encoders.copypaste.score(frames, reference.image)
        if family == "flow":
            src = frames if dd_frames is None else dd_frames
            interval = self.protocol.dd_frame_interval(video_fps)
            src = src[::interval]
            n, h, w = src.shape[:3]
            scores = self.encoders.flow.pair_scores(src, self.rule.top_fraction) if n >= 2 else []
            res = dynamic_degree(scores, h, w, n, self.flow_name, self.rule, frozen=self.protocol.frozen_video_dd)
            if video_fps is not None:
                res = replace(res, detail={**res.detail, "source_fps": video_fps, "frame_interval": interval})
            return {name: res for name in names}
        raise KeyError(f"unknown metric family {family!r}")

    def _clip(self, names, pil, prompt, reference) -> dict[str, MetricResult]:
        enc = self.encoders.clip
        frame_emb = enc.encode_images(pil)  # the one image forward per frame
        text_emb = self._text(prompt) if "clip_t" in names else None
        ref_emb = self._ref("clip", reference) if "clip_i" in names else None
        out = clip_metrics(frame_emb, text_emb, ref_emb)
        return {n: out[n] for n in names}
