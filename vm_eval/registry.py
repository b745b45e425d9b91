"""Pretrained weights used by vm_eval (``vm weights`` lists them). Tiny random stand-ins live in :mod:`vm_eval.tiny`."""

from __future__ import annotations

import os
from pathlib import Path

from vm_common.weights import MissingWeightsError, WeightSpec, register

BUFFALO_FILES = ("det_10g.onnx", "w600k_r50.onnx")
RAFT_LARGE_FILE = "raft_large_C_T_V1-22a6c225.pth"


def insightface_root() -> Path:
    return Path(os.environ.get("INSIGHTFACE_HOME", Path.home() / ".insightface")).expanduser()


def locate_insightface_pack(source: str) -> Path:
    """``source`` is a pack name under ``$INSIGHTFACE_HOME/models`` (default ~/.insightface) or a folder path."""
    expanded = Path(source).expanduser()
    folder = expanded if (os.sep in source or expanded.exists()) else insightface_root() / "models" / source
    missing = [f for f in BUFFALO_FILES if not (folder / f).is_file()]
    if missing:
        raise MissingWeightsError(
            "insightface model pack (SCRFD-10G detector + ArcFace R50)", source,
            [str(folder / f) for f in missing],
            "download buffalo_l.zip from the insightface model zoo (github.com/deepinsight/insightface/releases) on a "
            f"machine with network access and unzip it into {insightface_root() / 'models' / 'buffalo_l'}, "
            "or pass --face-weights /path/to/pack",
        )
    return folder


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def locate_raft(source: str) -> Path:
    """``source`` is a file name in torch hub's checkpoint folder or a path to a RAFT state dict."""
    path = Path(source).expanduser()
    candidates = [path] if (os.sep in source or path.exists()) else [torch_hub_checkpoints() / source]
    for c in candidates:
        if c.is_file():
            return c
    raise MissingWeightsError(
        "RAFT optical flow (raft-things weights, torchvision raft_large C_T_V1)", source, [str(c) for c in candidates],
        "on a machine with network access run `python -c \"import torchvision.models.optical_flow as o; "
        "o.raft_large(weights=o.Raft_Large_Weights.C_T_V1)\"` and copy the file from torch hub's checkpoints folder, "
        "or pass --raft-weights /path/to/file.pth; `--flow dis` needs no weights (not paper-comparable)",
    )


CLIP = register(WeightSpec(
    key="eval_clip_vit_b32",
    description="OpenAI CLIP ViT-B/32 (open_clip ViT-B-32-quickgelu + openai weights) for CLIP-T, CLIP-I, T.Cons",
    default="timm/vit_base_patch32_clip_224.openai",
    filename="open_clip_model.safetensors",
    used_by=("bench",),
))
DINO = register(WeightSpec(
    key="eval_dino_vits16",
    description="self-supervised DINO ViT-S/16 (timm vit_small_patch16_224.dino) for DINO-I",
    default="timm/vit_small_patch16_224.dino",
    filename="model.safetensors",
    used_by=("bench",),
))
FACE = register(WeightSpec(
    key="eval_insightface_buffalo_l",
    description="insightface buffalo_l pack (SCRFD-10G detector + ArcFace R50 w600k) for Face Sim",
    default="buffalo_l",
    used_by=("bench",),
    locate=locate_insightface_pack,
))
RAFT = register(WeightSpec(
    key="eval_raft_large",
    description="RAFT raft-things weights (torchvision raft_large C_T_V1) for dynamic degree",
    default=RAFT_LARGE_FILE,
    used_by=("bench",),
    locate=locate_raft,
))


# VBench's dimensions (vm_eval.vbench): the models VBench's own code loads.
def vbench_cache() -> Path:
    """VBench's cache folder (``$VBENCH_CACHE_DIR``, default ~/.cache/vbench), where its downloads live."""
    return Path(os.environ.get("VBENCH_CACHE_DIR", Path.home() / ".cache" / "vbench")).expanduser()


AESTHETIC_FILE = "sa_0_4_vit_l_14_linear.pth"


def locate_aesthetic(source: str) -> Path:
    """``source`` is a path to the LAION linear head, or its file name in VBench's cache
    (``aesthetic_model/emb_reader``)."""
    path = Path(source).expanduser()
    candidates = [path] if (os.sep in source or path.exists()) else [vbench_cache() / "aesthetic_model" / "emb_reader"
                                                                      / source]
    for c in candidates:
        if c.is_file():
            return c
    raise MissingWeightsError(
        "LAION aesthetic predictor (linear head on CLIP ViT-L/14, sa_0_4_vit_l_14_linear.pth)", source,
        [str(c) for c in candidates],
        "download https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth on a machine "
        "with network access and put it in that folder, or pass --aesthetic-weights /path/to/file.pth",
    )


VBENCH_DINO = register(WeightSpec(
    key="eval_vbench_dino_vitb16",
    description="self-supervised DINO ViT-B/16 (timm vit_base_patch16_224.dino = facebookresearch/dino dino_vitb16) "
                "for VBench subject consistency",
    default="timm/vit_base_patch16_224.dino",
    filename="model.safetensors",
    used_by=("bench",),
))
CLIP_L14 = register(WeightSpec(
    key="eval_clip_vit_l14",
    description="OpenAI CLIP ViT-L/14 (open_clip ViT-L-14-quickgelu + openai weights) for VBench aesthetic quality",
    default="timm/vit_large_patch14_clip_224.openai",
    filename="open_clip_model.safetensors",
    used_by=("bench",),
))
AESTHETIC = register(WeightSpec(
    key="eval_laion_aesthetic",
    description="LAION aesthetic predictor linear head (sa_0_4_vit_l_14_linear.pth) for VBench aesthetic quality",
    default=AESTHETIC_FILE,
    used_by=("bench",),
    locate=locate_aesthetic,
))


# OpenS2V-Eval's metrics (vm_eval.opens2v; opt-in with --suites ...,opens2v). Each is optional: a missing one skips
# its metric with this message as the reason (vm_eval.opens2v_models).
OPENS2V_WEIGHTS_REPO = "BestWishYsh/OpenS2V-Weight"
CURRICULARFACE = register(WeightSpec(
    key="eval_opens2v_curricularface",
    description="CurricularFace IR-101 (glint360k_curricular_face_r101_backbone.bin of BestWishYsh/OpenS2V-Weight) "
                "for OpenS2V FaceSim-Cur",
    default=OPENS2V_WEIGHTS_REPO,
    filename="glint360k_curricular_face_r101_backbone.bin",
    used_by=("bench",),
))
OPENS2V_AESTHETIC = register(WeightSpec(
    key="eval_opens2v_aesthetic",
    description="OpenS2V aesthetic MLP head (aesthetic-model.pth of BestWishYsh/OpenS2V-Weight) on CLIP ViT-L/14 "
                "for OpenS2V Aesthetics",
    default=OPENS2V_WEIGHTS_REPO,
    filename="aesthetic-model.pth",
    used_by=("bench",),
))
GME = register(WeightSpec(
    key="eval_opens2v_gme",
    description="GME-Qwen2-VL-7B-Instruct (Alibaba-NLP/gme-Qwen2-VL-7B-Instruct) for OpenS2V GmeScore and NexusScore",
    default="Alibaba-NLP/gme-Qwen2-VL-7B-Instruct",
    used_by=("bench",),
))
def _hub_or_vbench_cache(what: str, filename: str, cache_folder: str, how: str):
    """A locator: a path (file, or folder holding ``filename``) or a Hugging Face id; for the default hub id, VBench's
    own download in its cache (``<cache>/<cache_folder>/<filename>``) is also accepted."""
    from vm_common.weights import looks_like_path, resolve_source

    def locate(source: str) -> Path:
        try:
            return resolve_source(source, what=what, filename=filename, how=how)
        except MissingWeightsError as exc:
            if looks_like_path(source):
                raise
            cached = vbench_cache() / cache_folder / filename
            if cached.is_file():
                return cached
            raise MissingWeightsError(what, source, [*exc.looked, str(cached)], exc.how) from None
    return locate


AMT_S_WHAT = "AMT-S frame interpolation (amt-s.pth, the checkpoint VBench downloads) for VBench motion smoothness"
AMT_S_WEIGHTS = register(WeightSpec(
    key="eval_amt_s",
    description=AMT_S_WHAT,
    default="lalala125/AMT",
    filename="amt-s.pth",
    used_by=("bench",),
    locate=_hub_or_vbench_cache(
        AMT_S_WHAT, "amt-s.pth", "amt_model",
        "run `hf download lalala125/AMT amt-s.pth` on a machine with network access and copy the Hugging Face cache "
        "(~/.cache/huggingface), or put VBench's download in ~/.cache/vbench/amt_model/, or pass --amt-weights "
        "/path/to/amt-s.pth"),
))
MUSIQ_FILE = "musiq_spaq_ckpt-358bb6af.pth"
MUSIQ_WHAT = (f"MUSIQ trained on SPAQ (pyiqa {MUSIQ_FILE}, the checkpoint VBench downloads) for VBench imaging "
              "quality")
MUSIQ_SPAQ_WEIGHTS = register(WeightSpec(
    key="eval_musiq_spaq",
    description=MUSIQ_WHAT,
    default="chaofengc/IQA-PyTorch-Weights",
    filename=MUSIQ_FILE,
    used_by=("bench",),
    locate=_hub_or_vbench_cache(
        MUSIQ_WHAT, MUSIQ_FILE, "pyiqa_model",
        f"run `hf download chaofengc/IQA-PyTorch-Weights {MUSIQ_FILE}` on a machine with network access and copy "
        "the Hugging Face cache (~/.cache/huggingface), or put VBench's download in ~/.cache/vbench/pyiqa_model/, "
        f"or pass --musiq-weights /path/to/{MUSIQ_FILE}"),
))
