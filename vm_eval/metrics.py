"""The metric registry: names, labels, families and whether higher is better.

Metrics compute per-video values only; all aggregation lives in :mod:`vm_eval.aggregate`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str  # as in the paper's tables
    family: str  # which encoder computes it: clip, dino, face, flow, toy
    higher_is_better: bool
    description: str
    paper_comparable: bool = True
    kinds: tuple[str, ...] = ("human", "object")  # benchmark kinds the metric applies to
    boolean: bool = False  # per-video value is 0/1 (dynamic or not); aggregated as a fraction
    aggregation: str = "fraction of dynamic videos"  # what a boolean metric's aggregate is


METRICS: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    if spec.name in METRICS:
        raise ValueError(f"metric {spec.name!r} is already registered")
    METRICS[spec.name] = spec
    return spec


register_metric(MetricSpec("clip_t", "CLIP-T", "clip", True,
                           "mean over frames of cos(CLIP image embedding, CLIP text embedding of the prompt)"))
register_metric(MetricSpec("face_sim", "Face Sim", "face", True,
                           "mean over frames with a face of cos(ArcFace(frame's largest face), ArcFace(reference))",
                           kinds=("human",)))
register_metric(MetricSpec("clip_i", "CLIP-I", "clip", True,
                           "mean over frames of cos(CLIP image embedding, CLIP embedding of the reference image)"))
register_metric(MetricSpec("dino_i", "DINO-I", "dino", True,
                           "mean over frames of the dot product of L2-normalised DINO ViT-S/16 CLS tokens with the "
                           "reference's"))
register_metric(MetricSpec("t_cons", "T.Cons", "clip", True,
                           "mean over consecutive frame pairs of cos(CLIP embeddings)"))
register_metric(MetricSpec("dd", "DD", "flow", True,
                           "dynamic degree (VBench rule on RAFT flow): 1 if the video is dynamic, else 0",
                           boolean=True))
register_metric(MetricSpec("dd_dis", "DD (DIS)", "flow", True,
                           "dynamic degree with OpenCV DIS flow instead of RAFT: weight-free, NOT comparable with the "
                           "paper's numbers", paper_comparable=False, boolean=True))
# The toy benchmark's metrics (vm_model.toy.metrics; subjects of kind "toy", docs/toy_customization.md).
register_metric(MetricSpec("toy_fidelity", "Fidelity err.", "toy", False,
                           "colour earth mover's distance (RGB 0..255) between the generated subject's pixels (all "
                           "frames) and the reference subject's: does the video wear the reference's colours",
                           paper_comparable=False, kinds=("toy",)))
register_metric(MetricSpec("toy_motion", "Motion dir.", "toy", True,
                           "1 if the subject's mean DIS optical flow points in the direction the caption names, else 0",
                           paper_comparable=False, kinds=("toy",), boolean=True,
                           aggregation="fraction of videos moving in the captioned direction"))

# The paper's column orders (and the toy benchmark's).
HUMAN_COLUMNS = ("clip_t", "face_sim", "clip_i", "dino_i", "t_cons", "dd")
OBJECT_COLUMNS = ("clip_t", "clip_i", "dino_i", "t_cons", "dd")
TOY_COLUMNS = ("toy_fidelity", "toy_motion")
KIND_COLUMNS = {"human": HUMAN_COLUMNS, "object": OBJECT_COLUMNS, "toy": TOY_COLUMNS}
KINDS = tuple(KIND_COLUMNS)
FAMILIES = ("clip", "dino", "face", "flow", "toy")


def get_metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def metrics_for(kind: str, flow: str = "raft") -> tuple[str, ...]:
    """The metrics scored for a subject of ``kind`` ('human', 'object' or 'toy') with the given flow backend."""
    dd = "dd" if flow == "raft" else "dd_dis"
    cols = KIND_COLUMNS.get(kind, OBJECT_COLUMNS)
    return tuple(dd if m == "dd" else m for m in cols)
