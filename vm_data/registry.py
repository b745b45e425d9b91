"""Pretrained weights used by vm_data (subject highlight: Grounding DINO detector + Segment Anything)."""

from __future__ import annotations

import os
from pathlib import Path

from vm_common.weights import MissingWeightsError, WeightSpec, register, resolve_source

GROUNDING_DINO_DEFAULT = "IDEA-Research/grounding-dino-tiny"
SAM_DEFAULT_FILENAME = "sam_vit_h_4b8939.pth"
SAM_DEFAULT = os.environ.get("VM_SAM_CHECKPOINT", f"~/.cache/videomaker/weights/{SAM_DEFAULT_FILENAME}")
SAM_HOW = (
    "download the official checkpoint (vit_h: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth, "
    "vit_l: sam_vit_l_0b3195.pth, vit_b: sam_vit_b_01ec64.pth from the same address) on a machine with network "
    f"access and put it at ~/.cache/videomaker/weights/{SAM_DEFAULT_FILENAME}, or set $VM_SAM_CHECKPOINT to its "
    "path (every command); `vm preprocess-dataset` also takes --segmenter PATH (a local .pth file) or --segmenter "
    "OWNER/REPO/FILE.pth (a file in a Hugging Face repo)"
)


def locate_sam_checkpoint(source: str) -> Path:
    """A SAM checkpoint from a local file, or ``owner/repo[/path/in/repo.pth]`` on the Hugging Face hub.

    ``owner/repo`` alone means the file ``sam_vit_h_4b8939.pth`` at the root of that repo.
    """
    source = str(source)
    expanded = Path(os.path.expanduser(source))
    if expanded.exists():
        if expanded.is_dir():
            found = sorted(p for p in expanded.iterdir() if p.suffix in (".pth", ".pt", ".bin"))
            if len(found) == 1:
                return found[0]
            raise MissingWeightsError(
                "Segment Anything checkpoint", source, [str(expanded.resolve())],
                f"the folder holds {len(found)} checkpoint files ({', '.join(p.name for p in found) or 'none'}); "
                "pass the file itself",
            )
        return expanded
    parts = source.split("/")
    is_local = source.startswith(("/", "./", "../", "~")) or len(parts) < 2 or (
        len(parts) == 2 and parts[1].endswith((".pth", ".pt", ".bin"))
    )
    if is_local:
        raise MissingWeightsError("Segment Anything checkpoint", source, [str(expanded.resolve())], SAM_HOW)
    repo = "/".join(parts[:2])
    filename = "/".join(parts[2:]) or SAM_DEFAULT_FILENAME
    try:
        return resolve_source(repo, what="Segment Anything checkpoint", filename=filename, how=SAM_HOW)
    except MissingWeightsError as exc:
        raise MissingWeightsError(exc.what, source, [str(expanded.resolve())] + exc.looked, exc.how) from exc


GROUNDING_DINO = register(WeightSpec(
    key="grounding_dino",
    description="Grounding DINO open-set detector (transformers GroundingDinoForObjectDetection: model + processor)",
    default=GROUNDING_DINO_DEFAULT,
    used_by=("preprocess-dataset", "generate", "bench"),
    how=(f"run `hf download {GROUNDING_DINO_DEFAULT}` on a machine with network access and copy the Hugging Face "
         "cache (~/.cache/huggingface); `vm preprocess-dataset` also takes --detector with a local folder holding "
         "config.json, model.safetensors and the processor files"),
))

SAM = register(WeightSpec(
    key="sam",
    description="Segment Anything (segment-anything package) checkpoint; vit_h / vit_l / vit_b detected from the file",
    default=SAM_DEFAULT,
    used_by=("preprocess-dataset", "generate", "bench"),
    how=SAM_HOW,
    locate=locate_sam_checkpoint,
))
