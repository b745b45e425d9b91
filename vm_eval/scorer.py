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
from .metrics import get_metric, metrics_for_video
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

    def metrics_for(self, kind: str, n_references: int = 1) -> tuple[str, ...]:
        return metrics_for_video(kind, self.flow_name, self.encoders.config.suites, n_references)

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
              video_fps: float | None = None, references: Sequence[Reference] = (),
              subject_prompts: Sequence[str] = ()) -> dict[str, MetricResult]:
        """Per-video results for ``metrics`` (default: those of ``kind``). ``dd_frames``: the frames flow is
        computed on when they differ from the scored ones (the paper ran DD on the saved GIFs). ``video_fps``: the
        frame rate of a non-GIF video file the frames were read from; the ``videomaker`` protocol then keeps every
        ``round(fps / 8)``-th frame for DD, as the authors' reader did. ``references``: all references of a video
        made from several (they add the multi-subject metrics, :mod:`vm_eval.multi_subject`); ``subject_prompts``:
        their detector prompts (object videos)."""
        wanted = tuple(metrics or self.metrics_for(kind, max(1, len(references))))
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
        families: dict[str, list[str]] = {}
        for m in wanted:
            families.setdefault(get_metric(m).family, []).append(m)
        results: dict[str, MetricResult] = {}
        pil = to_pil_list(frames) if {"clip", "dino"} & set(families) else []
        for family, names in families.items():
            if family == "multi":  # several references (vm_eval.multi_subject)
                results.update(self._multi(names, frames, references, kind, subject_prompts))
                continue
            try:
                results.update(self._score_family(family, names, frames, pil, prompt, reference, dd_frames,
                                                  video_fps, kind=kind))
            except Exception as exc:  # one family failing must not stop the others; the policy decides bugs
                internal = self.policy.check(exc, f"{family} scoring")
                if not internal:
                    logger.warning("%s metrics failed: %s: %s", family, type(exc).__name__, exc)
                detail = {"error_kind": INTERNAL_ERROR} if internal else {}
                for n in names:
                    results[n] = MetricResult.error(f"{family} scoring failed: {type(exc).__name__}: {exc}", **detail)
        return {m: results[m] for m in wanted}

    def _score_family(self, family, names, frames, pil, prompt, reference, dd_frames,
                      video_fps=None, kind: str = "human") -> dict[str, MetricResult]:
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
        if family == "opens2v":
            ref = reference.raw.convert("RGB") if reference.raw is not None else reference.image
            return self.encoders.opens2v.score(frames, tuple(names), prompt=prompt, reference=ref,
                                               reference_key=reference.key, label="human" if kind == "human" else None)
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

    def _multi(self, names, frames, references, kind, prompts) -> dict[str, MetricResult]:
        """The multi-subject metrics; a failure gives error results for them only (the policy decides bugs)."""
        try:
            embeddings = []
            for k, ref in enumerate(references):  # cached per reference, like every family's
                if kind == "human":
                    emb, reason = self._ref("face", ref)
                    if emb is None:
                        return {n: MetricResult.error(f"reference {k + 1} ({ref.key}): {reason}") for n in names}
                else:
                    emb = self._ref("dino", ref)
                embeddings.append(emb)
            embeddings = np.stack(embeddings) if embeddings else np.zeros((0, 0))
            return self.encoders.multi.score(frames, embeddings, kind, tuple(names), prompts=tuple(prompts))
        except Exception as exc:  # noqa: BLE001 - as any family
            internal = self.policy.check(exc, "multi-subject scoring")
            if not internal:
                logger.warning("multi-subject metrics failed: %s: %s", type(exc).__name__, exc)
            detail = {"error_kind": INTERNAL_ERROR} if internal else {}
            return {n: MetricResult.error(f"multi-subject scoring failed: {type(exc).__name__}: {exc}", **detail)
                    for n in names}

    def _clip(self, names, pil, prompt, reference) -> dict[str, MetricResult]:
        enc = self.encoders.clip
        frame_emb = enc.encode_images(pil)  # the one image forward per frame
        text_emb = self._text(prompt) if "clip_t" in names else None
        ref_emb = self._ref("clip", reference) if "clip_i" in names else None
        out = clip_metrics(frame_emb, text_emb, ref_emb)
        return {n: out[n] for n in names}
