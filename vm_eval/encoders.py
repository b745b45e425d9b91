"""Load each evaluation model once and share it: CLIP, DINO, face (detector + ArcFace), optical flow, and the toy
benchmark's weight-free metrics.

``preset='full'`` resolves the real weights (``vm weights`` lists them; a clear error names what is missing);
``preset='tiny'`` builds tiny random stand-ins (:mod:`vm_eval.tiny`) that load through the same code. On CUDA the
CLIP and DINO encoders run in fp16; flow stays fp32 (its threshold decisions are sensitive).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import torch

from vm_common.devices import default_device

logger = logging.getLogger(__name__)

FLOWS = ("raft", "dis")


@dataclass
class EncoderConfig:
    preset: str = "full"
    device: str | None = None  # None: cuda when available, else cpu
    protocol: str = "videomaker"
    flow: str = "raft"
    clip_weights: str | None = None
    dino_weights: str | None = None
    face_weights: str | None = None
    raft_weights: str | None = None
    vbench_dino_weights: str | None = None  # VBench subject consistency's DINO ViT-B/16
    clip_l14_weights: str | None = None  # VBench aesthetic quality's CLIP ViT-L/14
    aesthetic_weights: str | None = None  # the LAION aesthetic linear head
    amt_weights: str | None = None  # VBench motion smoothness's AMT-S (missing: that dimension is skipped)
    musiq_weights: str | None = None  # VBench imaging quality's MUSIQ (SPAQ) (missing: that dimension is skipped)
    suites: tuple[str, ...] = ("paper",)  # metric suites scored (vm_eval.metrics.SUITES)
    subject_detector: str | None = None  # multi-subject object metrics: vm_data detector weights or backend name
    opens2v: object | None = None  # vm_eval.opens2v_models.OpenS2VOptions (None: the defaults)
    batch_size: int = 16
    flow_pair_batch: int = 4

    def __post_init__(self) -> None:
        if self.preset not in ("tiny", "full"):
            raise ValueError(f"unknown preset {self.preset!r}; expected 'tiny' or 'full'")
        if self.flow not in FLOWS:
            raise ValueError(f"unknown flow backend {self.flow!r}; expected one of {FLOWS}")
        from .face import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {PROTOCOLS}")
        from .metrics import parse_suites

        self.suites = parse_suites(self.suites)

    @property
    def scoring(self):
        """The :class:`~vm_eval.scoring_protocol.ScoringProtocol` named by ``protocol`` (its choices)."""
        from .scoring_protocol import scoring_protocol

        return scoring_protocol(self.protocol)


class Encoders:
    """The models of one scoring session, each loaded on first use and then reused."""

    def __init__(self, config: EncoderConfig | None = None):
        self.config = config or EncoderConfig()
        dev = self.config.device or default_device()
        self.device = torch.device(dev)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32

    @property
    def random_weights(self) -> bool:
        return self.config.preset == "tiny"

    def _onnx_providers(self) -> list[str]:
        import onnxruntime

        avail = onnxruntime.get_available_providers()
        if self.device.type == "cuda" and "CUDAExecutionProvider" in avail:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    @cached_property
    def clip(self):
        from .clip import FULL_MODEL_NAME, ClipEncoder

        c = self.config
        if c.preset == "tiny":
            from .tiny import TINY_CLIP_NAME, tiny_clip

            folder = tiny_clip()
            return ClipEncoder.load(folder / "open_clip_model.safetensors", TINY_CLIP_NAME, config_dir=folder,
                                    device=self.device, dtype=self.dtype, model_id=f"tiny-random:{TINY_CLIP_NAME}",
                                    batch_size=c.batch_size)
        from .registry import CLIP

        path = CLIP.resolve(c.clip_weights)
        return ClipEncoder.load(path, FULL_MODEL_NAME, device=self.device, dtype=self.dtype,
                                model_id=f"open_clip:{FULL_MODEL_NAME}:{c.clip_weights or CLIP.default}",
                                batch_size=c.batch_size)

    @cached_property
    def dino(self):
        from .dino import MODEL_NAME, DinoEncoder

        c = self.config
        if c.preset == "tiny":
            from .tiny import tiny_dino

            return DinoEncoder.load(tiny_dino() / "model.safetensors", device=self.device, dtype=self.dtype,
                                    model_id=f"tiny-random:{MODEL_NAME}", batch_size=c.batch_size,
                                    layernorm_eps=c.scoring.dino_layernorm_eps)
        from .registry import DINO

        return DinoEncoder.load(DINO.resolve(c.dino_weights), device=self.device, dtype=self.dtype,
                                model_id=f"timm:{MODEL_NAME}:{c.dino_weights or DINO.default}", batch_size=c.batch_size,
                                layernorm_eps=c.scoring.dino_layernorm_eps)

    @cached_property
    def face(self):
        from .face import ArcFaceEmbedder, FaceEncoder, ScrfdDetector

        c = self.config
        if c.preset == "tiny":
            from .tiny import tiny_face_pack

            folder, label = tiny_face_pack(), "tiny-random:buffalo_l-layout"
        else:
            from .registry import FACE

            folder, label = FACE.resolve(c.face_weights), f"insightface:{c.face_weights or FACE.default}"
        providers = self._onnx_providers()
        det = ScrfdDetector(folder / "det_10g.onnx", providers=providers)
        emb = ArcFaceEmbedder(folder / "w600k_r50.onnx", providers=providers)
        return FaceEncoder(det, emb, protocol=c.protocol, model_id=f"{label} (det_10g@640, w600k_r50)")

    @cached_property
    def flow(self):
        from .flow import DisFlow, RaftFlow

        c = self.config
        if c.flow == "dis":
            return DisFlow()
        if c.preset == "tiny":
            from .tiny import tiny_raft

            f = RaftFlow.load(tiny_raft(), arch="raft_small", device=self.device, pair_batch=c.flow_pair_batch)
            f.model_id = "tiny-random:torchvision:raft_small"
            return f
        from .registry import RAFT

        return RaftFlow.load(RAFT.resolve(c.raft_weights), arch="raft_large", device=self.device,
                             pair_batch=c.flow_pair_batch)

    @cached_property
    def toy(self):
        """The toy benchmark's metrics (no weights: exact colour distances and OpenCV DIS flow)."""
        from .toy import ToyMetrics

        return ToyMetrics()

    @cached_property
    def vbench(self):
        """VBench's dimensions (:mod:`vm_eval.vbench`); each model loads on first use."""
        from .vbench import VBenchScorer
        from .vbench_models import VBenchModels

        return VBenchScorer(VBenchModels(self), batch_size=self.config.batch_size)

    @cached_property
    def opens2v(self):
        """OpenS2V-Eval's metrics (:mod:`vm_eval.opens2v`); each model loads on first use, a missing one skips its
        metric with the reason."""
        from .opens2v import OpenS2VScorer
        from .opens2v_models import OpenS2VModels

        models = OpenS2VModels(self, self.config.opens2v)
        return OpenS2VScorer(models, judge_repeats=models.options.natural_repeats)

    @cached_property
    def subject_detector(self):
        """The open-set detector of the multi-subject object metrics: vm_data's (Grounding DINO; the tiny preset's
        tiny random one; ``synthetic-color`` for tests)."""
        from vm_data.highlight import HighlightConfig, build_detector

        detector, _ = build_detector(self.config.subject_detector, preset=self.config.preset, device=str(self.device),
                                     config=HighlightConfig())
        return detector

    @cached_property
    def multi(self):
        """The multi-subject metrics (:mod:`vm_eval.multi_subject`): faces for human videos, the detector and DINO
        crops for object videos; each model loads on first use."""
        from vm_data.highlight import HighlightConfig

        from .multi_subject import FaceSubjects, MultiSubjectScorer, ObjectSubjects

        cfg = HighlightConfig()

        def subjects_for(kind: str):
            if kind == "human":
                return FaceSubjects(self.face)
            return ObjectSubjects(self.subject_detector, self.dino, box_threshold=cfg.box_threshold,
                                  nms_iou=cfg.nms_iou)

        det = self.config.subject_detector or "grounding-dino"
        return MultiSubjectScorer(subjects_for, model_id=f"faces: face encoder; objects: {det} boxes + DINO crops")

    @cached_property
    def copypaste(self):
        """The copy-paste measure (:mod:`vm_eval.copy_paste`; no weights)."""
        from .copy_paste import CopyPaste

        return CopyPaste()

    def check_available(self, families: set[str]) -> None:
        """Resolve (without loading) the weights the given metric families need; raise MissingWeightsError early."""
        if self.config.preset == "tiny":
            return
        from .registry import AESTHETIC, CLIP, CLIP_L14, DINO, FACE, RAFT, VBENCH_DINO

        needed = {"clip": (CLIP, self.config.clip_weights), "dino": (DINO, self.config.dino_weights),
                  "face": (FACE, self.config.face_weights)}
        if self.config.flow == "raft":
            needed["flow"] = (RAFT, self.config.raft_weights)
        for fam in sorted(families):
            if fam in needed:
                spec, src = needed[fam]
                spec.resolve(src)
        if "vbench" in families:
            c = self.config
            for spec, src in ((VBENCH_DINO, c.vbench_dino_weights), (CLIP, c.clip_weights),
                              (CLIP_L14, c.clip_l14_weights), (AESTHETIC, c.aesthetic_weights)):
                spec.resolve(src)

    def describe(self, families: set[str]) -> dict[str, str]:
        """Model ids of the loaded (or to-be-loaded) encoders, for run.json."""
        out = {}
        for fam in sorted(families):
            enc = getattr(self, fam)
            out[fam] = enc.model_id
        out["device"] = str(self.device)
        out["dtype"] = str(self.dtype).replace("torch.", "")
        return out
