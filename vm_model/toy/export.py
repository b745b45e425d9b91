"""Export a trained toy VideoMaker as the files ``builtin:toy`` ships (layout: :mod:`.shipped`).

From a finished toy experiment's work folder (``benchmarks/toy_customization.py``: ``base/``, ``motion_adapter/``,
``runs/base`` = stage 1, ``runs/full`` = stage 2 with PISA + GIRL):

- ``base/unet``, ``motion_adapter``: the stage-1 text-to-video UNet split back into its 2D UNet and its motion
  modules (the toy analogue of SD 1.5 + AnimateDiff); the split is checked to rebuild the stage-1 model exactly;
- ``base/vae`` (trained on the domain), ``base/text_encoder`` (random, frozen), ``base/scheduler`` (v prediction);
- ``videomaker.safetensors``: the stage-2 'full' run's weights;
- ``toy.json``: how they were made (recipe, domain, seeds, steps, commit, versions, measured fidelity, timings) and
  the size and sha256 of every file.

The experiment's ``--export DIR`` calls :func:`export_toy_model` at the end of a run;
``python -m vm_model.toy.export --work W --result R --out DIR`` does the same for a finished run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from .shipped import BASE_PARTS, MOTION_ADAPTER, RECORD, VIDEOMAKER_WEIGHTS

logger = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 20 * 1024 * 1024  # the shipped toy must stay small (package data)
FORMAT_VERSION = 1


def _stage1_unet(work: Path):
    """The stage-1 UNetMotionModel: the base folder's UNet + motion adapter with the stage-1 weights loaded."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from vm_model.checkpoint import latest_checkpoint, load_videomaker_weights

    unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_pretrained(work / "base" / "unet"),
                                       MotionAdapter.from_pretrained(work / "motion_adapter"))
    stage1 = latest_checkpoint(work / "runs" / "base")
    if stage1 is not None:
        report = load_videomaker_weights(unet, stage1 / "trainable.safetensors")
        if report.unexpected or any(report.not_covered.values()):
            raise ValueError(f"stage-1 weights do not cover the toy UNet exactly: {report.summary()}")
    else:
        logger.warning("no stage-1 checkpoint in %s: exporting the base folder's UNet as it is", work / "runs")
    return unet.eval()


def split_motion_unet(unet, unet_config_dir: Path, adapter_config_dir: Path, out_unet: Path,
                      out_adapter: Path) -> None:
    """Save a UNetMotionModel as a 2D UNet (``out_unet``) and a motion adapter (``out_adapter``), with the
    configs of ``unet_config_dir`` / ``adapter_config_dir``; checked to rebuild ``unet`` exactly."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    state = unet.state_dict()
    unet2d = UNet2DConditionModel.from_pretrained(unet_config_dir)
    adapter = MotionAdapter.from_pretrained(adapter_config_dir)
    unet2d.load_state_dict({k: v for k, v in state.items() if "motion_modules" not in k}, strict=True)
    adapter.load_state_dict({k: v for k, v in state.items() if "motion_modules" in k}, strict=True)
    unet2d.save_pretrained(out_unet)
    adapter.save_pretrained(out_adapter)
    rebuilt = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_pretrained(out_unet),
                                          MotionAdapter.from_pretrained(out_adapter)).state_dict()
    differ = [k for k, v in state.items() if not torch.equal(v, rebuilt[k])]
    if set(rebuilt) != set(state) or differ:
        raise RuntimeError(f"the exported UNet + motion adapter do not rebuild the model (first: {differ[:3]})")


def _file_table(folder: Path) -> dict[str, dict]:
    return {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size,
                                               "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != RECORD}


def _measured(result: dict) -> dict:
    """The toy experiment's measurements of the exported model (its 'full' and 'reference_zeroed' variants)."""
    metrics = result.get("metrics", {})
    out = {variant: {k: metrics[variant][k] for k in ("fidelity_error", "fidelity_error_sem", "motion_accuracy", "n")
                     if k in metrics[variant]}
           for variant in ("full", "reference_zeroed") if variant in metrics}
    for key in ("targets", "calibration"):
        if key in result:
            out[key] = result[key]
    if "heldout_denoising_mse" in metrics.get("full", {}):
        out["heldout_denoising_mse_ratio"] = metrics["full"]["heldout_denoising_mse"]["ratio"]
    return out


def export_toy_model(work: str | Path, result: dict, out: str | Path, *, command: str | None = None,
                     max_total_bytes: int = MAX_TOTAL_BYTES) -> dict:
    """Write the shipped toy files from a finished experiment (``work`` folder and its result dict) into ``out``
    (replaced atomically); returns the record written as ``out/toy.json``."""
    from vm_model.checkpoint import latest_checkpoint

    work, out = Path(work), Path(out)
    stage2 = latest_checkpoint(work / "runs" / "full")
    if stage2 is None:
        raise FileNotFoundError(f"no stage-2 'full' checkpoint under {work / 'runs' / 'full'}: train it first")
    config = result.get("config", {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        split_motion_unet(_stage1_unet(work), work / "base" / "unet", work / "motion_adapter",
                          tmp / "base" / "unet", tmp / MOTION_ADAPTER)
        for part in BASE_PARTS:
            if part != "unet":
                shutil.copytree(work / "base" / part, tmp / "base" / part)
        shutil.copyfile(stage2 / "trainable.safetensors", tmp / VIDEOMAKER_WEIGHTS)
        tokenizer = json.loads((work / "base" / "tokenizer" / "tokenizer_config.json").read_text())
        files = _file_table(tmp)
        total = sum(f["bytes"] for f in files.values())
        if total > max_total_bytes:
            raise ValueError(f"the exported toy model is {total / 2**20:.1f} MB, over the "
                             f"{max_total_bytes / 2**20:.0f} MB limit")
        record = {
            "format": FORMAT_VERSION,
            "description": "toy VideoMaker trained on CPU by benchmarks/toy_customization.py "
                           "(docs/toy_customization.md): base (stage 1), motion adapter, VideoMaker weights (stage 2, "
                           "PISA + GIRL, whole UNet)",
            "command": command,
            "domain": {"size": config.get("size"), "num_frames": config.get("num_frames"),
                       "ranges": {"radius": config.get("radius"), "cell": config.get("cell"),
                                  "travel": config.get("travel"), "jitter": config.get("jitter"),
                                  "lanes": config.get("lanes"), "colours": config.get("colours")},
                       "seed": config.get("seed")},
            "base": {"max_tokens": int(tokenizer["model_max_length"]),
                     "prediction_type": config.get("prediction_type"),
                     "tokenizer": "the full CLIP BPE tokenizer, written from open_clip's vocabulary at unpack time"},
            "generation": {"num_frames": config.get("num_frames"), "height": config.get("size"),
                           "width": config.get("size"), "steps": config.get("inference_steps"),
                           "guidance_scale": config.get("guidance_scale"), "negative_prompt": "none"},
            "steps": {"vae": config.get("vae_steps"), "base": config.get("base_steps"),
                      "videomaker": config.get("steps"), "videomaker_checkpoint": stage2.name},
            "seeds": {"data_training_sampling": config.get("seed"), "heldout_subjects": [config.get("seed"), 1]},
            "recipe": config,
            "provenance": result.get("provenance"),
            "measured": _measured(result),
            "timings": result.get("timings"),
            "files": files,
            "total_bytes": total,
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        for path in [tmp, *tmp.rglob("*")]:  # package data: readable by everyone (mkdtemp and some writers use 0600)
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported the toy model to %s (%.1f MB)", out, total / 2**20)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="the experiment's work folder (OUT/toy_work)")
    parser.add_argument("--result", type=Path, required=True, help="its OUT/toy_customization.json")
    parser.add_argument("--out", type=Path, required=True, help="where to write the shipped files")
    parser.add_argument("--command", default=None, help="the experiment's command line, for the record")
    args = parser.parse_args(argv)
    export_toy_model(args.work, json.loads(args.result.read_text()), args.out, command=args.command)
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
