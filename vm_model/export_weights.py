"""`vm export-weights`: a training run's weights as one state dict in the official release's layout.

    vm export-weights --weights runs/lora --out videomaker_lora_merged.bin
    vm export-weights --weights runs/celebv/checkpoints/step-00050000 --out step50k.safetensors

The run's UNet is rebuilt (base model + motion adapter, from the run's ``config.json`` unless given as flags),
its weights are applied as ``vm generate`` applies them (a LoRA run: start weights, then the LoRA matrices merged
in), and the paper's trainable set is written: every spatial self-attention (``attn1``) and motion-module
parameter, with no prefix, the layout of ``human_pytorch_model.bin``. ``.bin`` is written with ``torch.save``
(as the release is), ``.safetensors`` with safetensors. The file loads with ``--weights FILE`` everywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vm_common.config import add_dataclass_arguments, build_config
from vm_common.io_utils import atomic_output
from vm_common.weights import MissingWeightsError

from .checkpoint import clean_parameter_name, weights_file
from .presets import PRESET_HELP, PRESETS, presets_for
from .sources import ModelSources

logger = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    preset: str = field(default="full", metadata={"help": PRESET_HELP, "choices": sorted(PRESETS)})
    sources: ModelSources = field(default_factory=ModelSources, metadata={
        "group": "model sources", "help": "--weights: the run, checkpoint folder or weights file to export "
                                          "(base model and motion adapter default to the run's)"})


EXPORT_PRESETS = presets_for(keys=("sources",))


def release_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The paper's trainable set (spatial ``attn1`` + motion modules) as the release keys it: no prefix."""
    from .train import trainable_parameter_names

    wanted = set(trainable_parameter_names(unet, train_motion_modules=True))
    return {clean_parameter_name(n): p.detach().to("cpu", torch.float32).contiguous()
            for n, p in unet.named_parameters() if n in wanted}


def write_state_dict(state: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> Path:
    """``.safetensors`` (with JSON metadata) or anything else as a ``torch.save`` pickle of tensors only."""
    if path.suffix == ".safetensors":
        from .training.files import save_tensors

        return save_tensors(state, path, metadata)
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    return path


def run_sources(weights: str) -> dict:
    """The model sources recorded in the run that holds ``weights`` (``{}`` when there is no run config)."""
    path = Path(weights).expanduser()
    if not path.exists():
        return {}
    folder = weights_file(path).parent
    for candidate in (folder, *folder.parents)[:4]:  # file -> step-N -> checkpoints -> run
        config = candidate / "config.json"
        if config.exists():
            recorded = json.loads(config.read_text()).get("sources", {})
            return {k: v for k, v in recorded.items() if k in ("base_model", "motion_adapter", "vae")}
    return {}


def export_weights(cfg: ExportConfig, out: Path) -> Path:
    from .checkpoint import load_videomaker_weights
    from .components import load_base_components, resolve_videomaker_weights

    if not cfg.sources.videomaker_weights:
        raise ValueError("--weights: name the run, checkpoint folder or weights file to export")
    unet = load_base_components(cfg.sources, dtype=torch.float32)["unet"]
    report = load_videomaker_weights(unet, resolve_videomaker_weights(cfg.sources.videomaker_weights))
    state = release_state_dict(unet)
    write_state_dict(state, out, {"source": cfg.sources.videomaker_weights, "base_model": cfg.sources.base_model,
                                  "motion_adapter": cfg.sources.motion_adapter, "weights_report": report.summary()})
    logger.info("wrote %d tensors (%.1f M parameters) to %s", len(state),
                sum(v.numel() for v in state.values()) / 1e6, out)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vm export-weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output file: .bin (torch.save, as the release) "
                                                                 "or .safetensors")
    parser.add_argument("--config", type=Path, default=None, help="YAML file of ExportConfig keys")
    add_dataclass_arguments(parser, ExportConfig, presets=EXPORT_PRESETS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        weights = getattr(args, "sources.videomaker_weights", None)
        base = {"sources": run_sources(weights)} if weights else {}
        cfg = build_config(ExportConfig, args, args.config, presets=EXPORT_PRESETS, base=base)
        export_weights(cfg, args.out)
    except (ValueError, FileNotFoundError, MissingWeightsError) as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
