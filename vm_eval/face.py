"""Face Sim: insightface ``buffalo_l`` (SCRFD-10G detector + ArcFace R50), as the authors computed it.

The reference is resized to 512x512 and its first (highest-score) face is used; in each frame the face with the
largest box. Per video: the mean over frames that have a face of the cosine of the normed embeddings; frames
without a face are skipped (never scored 0) and a video without any face is ``skipped``.

``protocol='videomaker'`` reproduces the authors' quirk of feeding RGB arrays to insightface (whose models expect
BGR); ``protocol='corrected'`` feeds BGR. The detector is an interface: :class:`ScrfdDetector` (insightface's
SCRFD from an ONNX file) for real runs and :class:`GivenFaceDetector` for tests that supply the landmarks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from .results import MetricResult

logger = logging.getLogger(__name__)

PROTOCOLS = ("videomaker", "corrected")
DET_SIZE = 640
DET_THRESH = 0.5
REFERENCE_SIZE = 512


@dataclass(frozen=True)
class FaceBox:
    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    kps: np.ndarray  # (5, 2) eyes, nose, mouth corners
    score: float

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = (float(v) for v in self.bbox[:4])
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in an (H, W, 3) uint8 image, highest score first."""


class ScrfdDetector:
    """insightface's SCRFD loaded from an ONNX file (``det_10g.onnx`` of buffalo_l, or the tiny stand-in)."""

    def __init__(self, onnx_path: Path, *, det_size: int = DET_SIZE, det_thresh: float = DET_THRESH,
                 providers: Sequence[str] | None = None):
        import insightface

        kwargs = {"providers": list(providers)} if providers else {}
        model = insightface.model_zoo.get_model(str(onnx_path), **kwargs)
        if model is None or getattr(model, "taskname", "") != "detection":
            raise ValueError(f"{onnx_path}: not an insightface detection model")
        ctx = 0 if providers and "CUDAExecutionProvider" in providers else -1
        model.prepare(ctx, input_size=(det_size, det_size), det_thresh=det_thresh)
        self.model = model
        self.name = f"scrfd:{Path(onnx_path).name}@{det_size}"

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        det, kpss = self.model.detect(image, max_num=0, metric="default")
        if det is None or len(det) == 0:
            return []
        if kpss is None:
            raise ValueError(f"{self.name}: the detector gives no keypoints; ArcFace alignment needs them")
        faces = [FaceBox(det[i, :4].astype(np.float32), kpss[i].astype(np.float32), float(det[i, 4]))
                 for i in range(det.shape[0])]
        return sorted(faces, key=lambda f: -f.score)


class GivenFaceDetector:
    """Returns the faces a callable gives for each image (tests; externally detected landmarks)."""

    def __init__(self, lookup: Callable[[np.ndarray], Sequence[FaceBox]], name: str = "given"):
        self.lookup = lookup
        self.name = name

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        return sorted(self.lookup(image), key=lambda f: -f.score)


class ArcFaceEmbedder:
    """insightface's ArcFaceONNX: norm_crop alignment on the 5 keypoints, batched embeddings, L2-normalised."""

    def __init__(self, onnx_path: Path, providers: Sequence[str] | None = None):
        import insightface

        kwargs = {"providers": list(providers)} if providers else {}
        model = insightface.model_zoo.get_model(str(onnx_path), **kwargs)
        if model is None or getattr(model, "taskname", "") != "recognition":
            raise ValueError(f"{onnx_path}: not an insightface recognition (ArcFace) model")
        self.model = model
        self.name = f"arcface:{Path(onnx_path).name}"
        self.batched = not isinstance(model.input_shape[0], int) or model.input_shape[0] != 1

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[FaceBox]) -> np.ndarray:
        from insightface.utils import face_align

        if not faces:
            return np.zeros((0, 0), dtype=np.float32)
        size = self.model.input_size[0]
        crops = [face_align.norm_crop(img, landmark=f.kps, image_size=size) for img, f in zip(images, faces)]
        if self.batched:
            feats = self.model.get_feat(crops)
        else:
            feats = np.concatenate([self.model.get_feat(c) for c in crops])
        feats = np.asarray(feats, dtype=np.float32).reshape(len(crops), -1)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True).clip(min=1e-12)


class FaceEncoder:
    """Detector + embedder + the channel-order protocol."""

    def __init__(self, detector: FaceDetector, embedder: ArcFaceEmbedder, protocol: str = "videomaker",
                 model_id: str | None = None):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown face protocol {protocol!r}; expected one of {PROTOCOLS}")
        self.detector, self.embedder, self.protocol = detector, embedder, protocol
        self.model_id = model_id or f"{detector.name}+{embedder.name}"

    def _as_input(self, rgb: np.ndarray) -> np.ndarray:
        # videomaker: the authors passed RGB arrays straight in; corrected: insightface expects BGR
        return np.ascontiguousarray(rgb if self.protocol == "videomaker" else rgb[..., ::-1])

    def reference_embedding(self, reference: Image.Image) -> tuple[np.ndarray | None, str]:
        """(embedding, '') or (None, reason). The reference is resized to 512x512; its first face is used."""
        img = self._as_input(np.asarray(reference.convert("RGB").resize((REFERENCE_SIZE, REFERENCE_SIZE),
                                                                         Image.BICUBIC)))
        faces = self.detector.detect(img)
        if not faces:
            return None, "no face detected in the reference image"
        return self.embedder.embed([img], [faces[0]])[0], ""

    def frame_embeddings(self, frames: np.ndarray) -> list[np.ndarray | None]:
        """Per frame: the embedding of the largest face, or None when the frame has no face."""
        images = [self._as_input(f) for f in frames]
        chosen: list[tuple[int, FaceBox]] = []
        for i, img in enumerate(images):
            faces = self.detector.detect(img)
            if faces:
                chosen.append((i, max(faces, key=lambda f: f.area)))
        out: list[np.ndarray | None] = [None] * len(images)
        if chosen:
            emb = self.embedder.embed([images[i] for i, _ in chosen], [f for _, f in chosen])
            for (i, _), e in zip(chosen, emb):
                out[i] = e
        return out

    def frame_faces(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame every face: (boxes (N, 4) xyxy, embeddings (N, D)); N = 0 for a frame without a face."""
        images = [self._as_input(f) for f in frames]
        found = [self.detector.detect(img) for img in images]
        flat = [(i, f) for i, faces in enumerate(found) for f in faces]
        emb = self.embedder.embed([images[i] for i, _ in flat], [f for _, f in flat]) if flat else None
        out, k = [], 0
        for faces in found:
            boxes = np.asarray([f.bbox[:4] for f in faces], np.float32).reshape(-1, 4)
            out.append((boxes, emb[k:k + len(faces)] if emb is not None else np.zeros((0, 0), np.float32)))
            k += len(faces)
        return out


def face_metric(ref_emb: np.ndarray | None, ref_reason: str, frame_embs: Sequence[np.ndarray | None]) -> MetricResult:
    n = len(frame_embs)
    with_face = [e for e in frame_embs if e is not None]
    detail = {"n_frames": n, "frames_with_face": len(with_face)}
    if ref_emb is None:
        return MetricResult.error(ref_reason or "reference has no face embedding", **detail)
    if not with_face:
        return MetricResult.skipped(f"no face detected in any of the {n} frames", **detail)
    sims = np.stack(with_face) @ ref_emb
    return MetricResult.ok(float(np.mean(sims)), **detail)
