"""Inference-only ablation of position-aware routing on the toy multi-subject runs (docs/multi_subject.md).

Takes the work folder of a finished ``benchmarks.toy_multi_subject`` run that trained ``routed`` and ``routed_nbhd``
and evaluates each with the *other* pooling setting at inference (the routers' ``neighbourhood`` attribute set after
loading): ``routed`` with the 3x3 pooling switched on, ``routed_nbhd`` with it switched off; soft and hard routing;
the same held-out pairs, sampling noise and metric as the experiment (its config defaults and ``--seed``). Separates
what the pooling does at inference from what training with it does.

    python -m benchmarks.toy_multi_subject_pool_ablation --work runs/toy_multi/toy_multi_work \\
        --out benchmarks/results/toy_multi_subject_neighbourhood_inference_ablation
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("toy_multi_subject_pool_ablation")

SWAPPED = (("routed", 3), ("routed_nbhd", 0))  # run, neighbourhood at inference (the other one than it trained with)


def run(work: Path, out: Path, seed: int) -> dict:
    from benchmarks import toy_multi_subject as toy
    from benchmarks.harness.device import cpu_model
    from benchmarks.harness.results import table, write_results
    from vm_model.routing import ROUTER_ATTR
    from vm_model.toy.multi import heldout_pairs, pair_references

    cfg = toy.MultiToyConfig(seed=seed)
    torch.set_num_threads(cfg.threads)
    pairs = heldout_pairs(cfg.eval_pairs, toy.SIZE, toy.FRAMES, cfg.seed)
    references = [pair_references(p, toy.FRAMES, toy.SIZE) for p in pairs]
    rows, metrics = [], {}
    for run_name, size in SWAPPED:
        if not toy.finished(work / "runs" / run_name, cfg.steps):
            raise FileNotFoundError(f"{work / 'runs' / run_name}: no finished {cfg.steps}-step run")
        pipe = toy.load_run(work / "runs" / run_name)
        routers = [m for m in (getattr(a, ROUTER_ATTR, None) for a in pipe.unet.modules()) if m is not None]
        for router in routers:
            router.neighbourhood = size
        accuracy = toy.router_accuracy(cfg, pipe, pairs, references)
        for mode in ("soft", "hard"):
            videos = toy.generate(cfg, pipe, pairs, references, None if mode == "soft" else "hard")
            scored = toy.score(videos, pairs, references, cfg.seed)
            key = f"{run_name}, neighbourhood {size} at inference, {mode}"
            metrics[key] = {**toy.aggregate(scored), "swaps": int(sum(r["swap"] for r in scored))}
            if mode == "soft":
                metrics[key]["router_accuracy"] = accuracy
            m = metrics[key]
            rows.append([key, f"{m['own_error']:.1f} ± {m['own_error_sem']:.1f}",
                         f"{m['other_error']:.1f} ± {m['other_error_sem']:.1f}", f"{m['swap_rate']:.3f}",
                         " / ".join(f"{a['subject_tokens']:.2f}" for a in accuracy.values()) if mode == "soft"
                         else "-"])
            logger.info("%s: own %.1f, other %.1f, swap rate %.3f", key, m["own_error"], m["other_error"],
                        m["swap_rate"])
        del pipe
    result = {"work": str(work), "seed": seed, "metrics": metrics,
              "device": f"CPU ({cpu_model()}), {cfg.threads} thread(s) per process"}
    lines = ["# Toy multi-subject: position-aware routing switched at inference only", "",
             f"Device: {result['device']}; the runs of {work} (seed {seed}), {cfg.eval_pairs} held-out pairs; "
             "router accuracy on subject tokens at t = 200 / 500 / 800 (chance 0.5).", ""]
    lines += table(["run, routing at inference", "own error", "other error", "swap rate",
                    "router accuracy (subject tokens)"], rows)
    write_results(out, result, "\n".join(lines) + "\n", sort_keys=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a toy_multi_subject work folder (OUT/toy_multi_work)")
    parser.add_argument("--out", type=Path, required=True, help="results path without extension (.json and .md)")
    parser.add_argument("--seed", type=int, default=0, help="the seed the experiment ran with")
    args = parser.parse_args(argv)
    run(args.work, args.out, args.seed)
    return 0


if __name__ == "__main__":
    from vm_common.logging_setup import setup_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    setup_logging()
    sys.exit(main())
