"""`vm weights`: what each command needs, where it comes from, and whether it is present locally."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .weights import all_specs

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vm weights", description=__doc__)
    from .cli import COMMANDS

    p.add_argument("--command", default=None, choices=[c for c in COMMANDS if c != "weights"],
                   help="only the weights this command needs (e.g. generate)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    for spec in all_specs():
        if args.command and args.command not in spec.used_by:
            continue
        present, where = spec.is_present()
        rows.append({
            "key": spec.key, "description": spec.description, "default": spec.default,
            "file": spec.filename, "used_by": list(spec.used_by), "present": present, "where": where,
            "how": spec.how,
        })
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    width = max([len(r["key"]) for r in rows] + [3])
    lines = []
    for r in rows:
        mark = "present" if r["present"] else "MISSING"
        src = r["default"] + (f" [{r['file']}]" if r["file"] else "")
        lines.append(f"{r['key']:<{width}}  {mark:<7}  {src}\n{'':<{width}}  used by: {', '.join(r['used_by'])}"
                     f"\n{'':<{width}}  {'at' if r['present'] else 'looked in'}: {r['where']}")
    lines.append("\nEvery command also accepts --preset tiny, which builds random tiny components offline.")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    from .logging_setup import setup_logging

    setup_logging()
    sys.exit(main())
