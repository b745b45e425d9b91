"""The README's promise: its Quickstart holds exactly two commands, the install + main job and the test command,
and the main job works (run here exactly as written, with its output folder moved into a temporary one)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quickstart_has_install_main_job_and_tests():
    install_and_run, tests = quickstart_commands()
    assert install_and_run.startswith('pip install -e ".[dev]" -c constraints.txt && vm bench run ')
    assert tests.splitlines()[0] == "python -m pytest -n 2 -q --runslow"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert 'pip install -e ".[dev]" -c constraints.txt' in ci and tests.splitlines()[0] in ci


def test_quickstart_main_job_is_the_toy_benchmark():
    argv = shlex.split(quickstart_commands()[0].split("&&", 1)[1])
    assert argv[:2] == ["vm", "bench"] and "run" in argv
    assert argv[argv.index("--preset") + 1] == "toy" and argv[argv.index("--benchmark") + 1] == "toy"


@pytest.mark.slow  # about a minute on two cores
def test_quickstart_main_job_runs(tmp_path):
    main_job = quickstart_commands()[0].split("&&", 1)[1].strip()
    argv = shlex.split(main_job)
    out = argv.index("--out")
    argv[out + 1] = str(tmp_path / "toy")
    vm = Path(sys.executable).with_name("vm")
    result = subprocess.run([str(vm)] + argv[1:], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    produced = {p.name for p in (tmp_path / "toy").iterdir()}
    assert {"samples.jsonl", "summary.json", "table.md", "table.csv", "table.tex", "report.html",
            "run.json"} <= produced
    run = json.loads((tmp_path / "toy" / "run.json").read_text())
    assert run.get("random_weights") is False  # the shipped toy model is trained
    # the report shows the model next to the same model with the reference zeroed; the model wears the colours
    summary = json.loads((tmp_path / "toy" / "summary.json").read_text())
    toy = {g["method"]: g["metrics"] for g in summary["groups"] if g["kind"] == "toy"}
    model, zeroed = toy["VideoMaker (toy)"], toy["VideoMaker (toy): reference zeroed"]
    assert model["toy_fidelity"]["value"] < 0.7 * zeroed["toy_fidelity"]["value"]
    assert model["toy_motion"]["value"] >= 0.75
    assert "VideoMaker (toy): reference zeroed" in (tmp_path / "toy" / "report.html").read_text()
