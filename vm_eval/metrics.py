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

# VBench's dimensions that accept your own videos (vm_eval.vbench; opt-in with --suites ...,vbench).
register_metric(MetricSpec("vbench_subject_consistency", "VBench Subject Cons.", "vbench", True,
                           "VBench subject consistency: DINO ViT-B/16 CLS features; mean over frames i>=1 of "
                           "(max(0, cos(f[i-1], f[i])) + max(0, cos(f[0], f[i]))) / 2", paper_comparable=False))
register_metric(MetricSpec("vbench_background_consistency", "VBench Background Cons.", "vbench", True,
                           "VBench background consistency: the same scheme on CLIP ViT-B/32 image features",
                           paper_comparable=False))
register_metric(MetricSpec("vbench_aesthetic", "VBench Aesthetic", "vbench", True,
                           "VBench aesthetic quality: LAION aesthetic linear head on CLIP ViT-L/14 image features, "
                           "/10, mean over frames", paper_comparable=False))
register_metric(MetricSpec("vbench_motion_smoothness", "VBench Motion Smooth.", "vbench", True,
                           "VBench motion smoothness: AMT-S interpolates the odd frames from the even ones; "
                           "(255 - mean |real - interpolated|) / 255", paper_comparable=False))
register_metric(MetricSpec("vbench_imaging_quality", "VBench Imaging Quality", "vbench", True,
                           "VBench imaging quality: MUSIQ (SPAQ) per frame (longer side capped at 512), mean over "
                           "frames, /100", paper_comparable=False))

# A copy-paste measure that needs no judge (vm_eval.copy_paste; opt-in with --suites ...,copy).
register_metric(MetricSpec("copy_paste", "Copy-paste", "copypaste", False,
                           "mean over frames of the best normalised cross-correlation of the reference image (grey, "
                           "any of 15 scales, any position) with the frame: ~1 when the reference is pasted in its "
                           "own pose, lower when the subject is re-imagined", paper_comparable=False))

# OpenS2V-Eval's metrics (vm_eval.opens2v; opt-in with --suites ...,opens2v), as its eval scripts compute them.
_O = dict(paper_comparable=False)
register_metric(MetricSpec("opens2v_aesthetic", "OpenS2V Aesthetics", "opens2v", True,
                           "OpenS2V Aesthetics: MLP aesthetic head on normalised CLIP ViT-L/14 features of 32 frames, "
                           "mean raw score (about 4..7)", **_O))
register_metric(MetricSpec("opens2v_motion_smoothness", "OpenS2V MotionSmoothness", "opens2v", True,
                           "OpenS2V MotionSmoothness: 1 - fraction of frames beside a Q-Align quality jump > 0.025 "
                           "(3-frame windows)", **_O))
register_metric(MetricSpec("opens2v_motion", "OpenS2V MotionScore", "opens2v", True,
                           "OpenS2V MotionScore (motion amplitude): |mean| of Farneback flow over all frame pairs, "
                           "maps resized to width 16", **_O))
register_metric(MetricSpec("opens2v_facesim_cur", "OpenS2V FaceSim-Cur", "opens2v", True,
                           "OpenS2V FaceSim-Cur: mean over 32 frames of max(0, cos) of CurricularFace IR-101 "
                           "embeddings (zeros dropped)", kinds=("human",), **_O))
register_metric(MetricSpec("opens2v_facesim_arc", "OpenS2V FaceSim-Arc", "opens2v", True,
                           "OpenS2V's ArcFace similarity beside FaceSim-Cur: mean over 32 frames of max(0, cos) of "
                           "buffalo_l ArcFace embeddings (det size 320, BGR)", kinds=("human",), **_O))
register_metric(MetricSpec("opens2v_gme", "OpenS2V GmeScore", "opens2v", True,
                           "OpenS2V GmeScore: mean over 32 frames of GME-Qwen2-VL text-frame similarity", **_O))
register_metric(MetricSpec("opens2v_nexus", "OpenS2V NexusScore", "opens2v", True,
                           "OpenS2V NexusScore: GME similarity of YOLO-World image-prompt detections to the reference,"
                           " gated by detector and text confidence, / frames with a detection", kinds=("object",),
                           **_O))
register_metric(MetricSpec("opens2v_natural", "OpenS2V NaturalScore", "opens2v", True,
                           "OpenS2V NaturalScore: a vision-language judge's 1..5 realism rating of 16 frames, mean of "
                           "3 ratings (judge configured by the user; off by default)", **_O))

# Several subjects from several references (vm_eval.multi_subject): scored for every video with several references.
register_metric(MetricSpec("multi_sim", "Multi-subj. Sim", "multi", True,
                           "per frame, detected subjects (faces: ArcFace; objects: detector boxes, DINO crops) matched "
                           "to the references by Hungarian assignment on cosine similarity; mean over references of "
                           "the mean similarity to their matched detection", paper_comparable=False))
register_metric(MetricSpec("id_swap", "ID swap rate", "multi", False,
                           "fraction of frames where a position-tracked subject is matched to another reference than "
                           "its track's dominant one (one-to-one over the video)", paper_comparable=False))

# The paper's column orders (and the toy benchmark's).
HUMAN_COLUMNS = ("clip_t", "face_sim", "clip_i", "dino_i", "t_cons", "dd")
OBJECT_COLUMNS = ("clip_t", "clip_i", "dino_i", "t_cons", "dd")
TOY_COLUMNS = ("toy_fidelity", "toy_motion")
KIND_COLUMNS = {"human": HUMAN_COLUMNS, "object": OBJECT_COLUMNS, "toy": TOY_COLUMNS}
KINDS = tuple(KIND_COLUMNS)
FAMILIES = ("clip", "dino", "face", "flow", "toy", "vbench", "copypaste", "opens2v")
VBENCH_COLUMNS = ("vbench_subject_consistency", "vbench_background_consistency", "vbench_motion_smoothness",
                  "vbench_aesthetic", "vbench_imaging_quality")
# Metric suites a scoring run can select (--suites): the paper's metrics (the default) and VBench's dimensions.
OPENS2V_COLUMNS = ("opens2v_aesthetic", "opens2v_motion_smoothness", "opens2v_motion", "opens2v_facesim_cur",
                   "opens2v_facesim_arc", "opens2v_gme", "opens2v_nexus", "opens2v_natural")
SUITES = ("paper", "vbench", "copy", "opens2v")
# the paper's columns depend on the kind; a suite's metric is scored for the kinds its spec lists
SUITE_COLUMNS = {"vbench": VBENCH_COLUMNS, "copy": ("copy_paste",), "opens2v": OPENS2V_COLUMNS}
SUITE_LABELS = {"paper": "VideoMaker paper's metrics (arXiv 2412.19645, the authors' evaluation scripts)",
                "vbench": "VBench (custom-input dimensions, VBench's own protocol)",
                "copy": "Copy-paste (reference pixels recurring in the reference's pose; no judge, no weights)",
                "opens2v": "OpenS2V-Eval (its eval scripts' metrics and protocol, raw per-video values)"}
DEFAULT_SUITES = ("paper",)


def parse_suites(text: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"paper,vbench"`` (or a sequence) -> ("paper", "vbench") in canonical order; empty -> the default."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    names = {s.strip().lower() for s in items if s and s.strip()}
    unknown = sorted(names - set(SUITES))
    if unknown:
        raise ValueError(f"unknown metric suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    return tuple(s for s in SUITES if s in names) or DEFAULT_SUITES


def suite_of(metric: str) -> str:
    """The suite a metric belongs to ('paper' unless one of the optional suites lists it)."""
    return next((s for s, cols in SUITE_COLUMNS.items() if metric in cols), "paper")


def get_metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def metrics_for(kind: str, flow: str = "raft", suites: tuple[str, ...] = DEFAULT_SUITES) -> tuple[str, ...]:
    """The metrics scored for a subject of ``kind`` ('human', 'object' or 'toy') with the given flow backend and
    metric suites (toy subjects always get the toy metrics only)."""
    dd = "dd" if flow == "raft" else "dd_dis"
    cols = KIND_COLUMNS.get(kind, OBJECT_COLUMNS)
    if kind == "toy":
        return cols
    out = tuple(dd if m == "dd" else m for m in cols) if "paper" in suites else ()
    return out + tuple(m for s in SUITES if s in suites for m in SUITE_COLUMNS.get(s, ())
                       if kind in get_metric(m).kinds)


# The multi-subject metrics: not a selectable suite, scored whenever a video has several references.
MULTI_COLUMNS = ("multi_sim", "id_swap")
SUITE_COLUMNS["multi"] = MULTI_COLUMNS
SUITE_LABELS["multi"] = "Several subjects (per-subject similarity after Hungarian matching, identity-swap rate)"


def metrics_for_video(kind: str, flow: str = "raft", suites: tuple[str, ...] = DEFAULT_SUITES,
                      n_references: int = 1) -> tuple[str, ...]:
    """:func:`metrics_for`, plus the multi-subject metrics for a (human or object) video with several references."""
    base = metrics_for(kind, flow, suites)
    return base + MULTI_COLUMNS if n_references > 1 and kind != "toy" else base
