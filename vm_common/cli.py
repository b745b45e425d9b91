"""The `vm` command: one root with subcommands, each a ``main(argv) -> int`` in its own module.

Subcommand modules are imported lazily, so ``vm --help`` is instant and a broken optional dependency of one
command never stops the others. Each module is also runnable as ``python -m <module>`` (what
``accelerate launch -m`` needs).

Exit codes (:mod:`vm_common.errors`): 0 done; 2 a user error, reported as one message without a traceback (a
:class:`~vm_common.errors.UserError` that reaches this level included); 1 an internal error (the traceback shows).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import run_main
from .logging_setup import setup_logging

COMMANDS: dict[str, tuple[str, str]] = {
    "preprocess-dataset": ("vm_data.preprocess", "subject-highlight preprocessing of a video dataset -> manifest"),
    "cache-latents": ("vm_model.cache_latents", "encode a manifest's clips once (VAE latents, text embeddings) for "
                                                "`vm train --latent-cache`"),
    "train": ("vm_model.train", "train VideoMaker (PISA + GIRL) on a manifest, one or many GPUs"),
    "generate": ("vm_model.generate", "generate videos of a subject from a reference image and prompts"),
    "export-weights": ("vm_model.export_weights", "a training run's weights (LoRA merged) in the official release's "
                                                  "state-dict layout"),
    "bench": ("vm_eval.bench", "run / score / report the paper's benchmarks (run, score, report)"),
    "weights": ("vm_common.weights_cmd", "list the pretrained weights each command needs and whether they are here"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vm",
        description="VideoMaker toolkit: zero-shot customized video generation.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<20} {desc}" for name, (_, desc) in COMMANDS.items())
        + "\n\nRun `vm COMMAND --help` for a command's options.",
    )
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default: $VM_LOG_LEVEL or INFO)")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def run_command(command: str, argv: list[str]) -> int:
    module = importlib.import_module(COMMANDS[command][0])
    return run_main(f"vm {command}", lambda: module.main(argv))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level)
    return run_command(args.command, args.args)


if __name__ == "__main__":
    sys.exit(main())
