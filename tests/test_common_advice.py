"""Issue 11 §10: advice that works. Every ``--flag`` and ``vm`` subcommand named in any string of the toolkit's
source (hints, error messages, help, docstrings) exists in the parsers the commands build; hints name ``hf
download``, the CLI installed with the pinned huggingface_hub; ``vm weights --command nonsense`` is refused."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path

import pytest

from vm_common.cli import COMMANDS, build_parser as root_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vm_common", "vm_data", "vm_eval", "vm_model")
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)")
COMMAND = re.compile(r"`vm ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?|\bvm ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
# flags of other programs that the docs and hints name: accelerate launch, pytest, git, hf download, the command
# lines of VBench's evaluate.py and OpenS2V-Eval's scripts that `vm bench export` writes; and the placeholders of
# vm_common.config's docstring
FOREIGN = {"multi_gpu", "num_processes", "mixed_precision", "cpu", "runslow", "help", "porcelain", "untracked-files",
           "config_file", "repo-type", "local-dir", "videos_path", "mode", "prompt_file", "dimension",
           "input_video_folder", "input_json_file", "input_image_folder", "flag", "no-flag"}
# entry points besides `vm` whose own parsers the strings may name (python -m / python benchmarks/...)
OTHER_ENTRY_POINTS = ("vm_model/toy/export.py", "benchmarks/toy_customization.py")
DECLARED = re.compile(r"add_argument\(\s*\"--([a-z0-9-]+)\"")
BENCH_SUBCOMMANDS = {"run", "score", "report", "export"}


def _strings(path: Path) -> list[str]:
    """Every string literal of a module, f-strings with their literal parts joined (placeholders as ``{}``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
    return out


def _source_strings() -> list[tuple[str, str]]:
    return [(str(p.relative_to(ROOT)), s) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            for s in _strings(p)]


def _options(parser: argparse.ArgumentParser) -> set[str]:
    flags = set()
    for action in parser._actions:
        flags.update(o[2:] for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _options(sub)
    return flags


@pytest.fixture(scope="module")
def command_flags() -> dict[str, set[str]]:
    flags = {name: _options(importlib.import_module(module).build_parser()) for name, (module, _) in COMMANDS.items()}
    flags["vm"] = _options(root_parser())
    flags["other entry points"] = {f for p in OTHER_ENTRY_POINTS for f in DECLARED.findall((ROOT / p).read_text())}
    return flags


def test_every_flag_named_in_the_source_exists(command_flags):
    known = set().union(*command_flags.values()) | FOREIGN
    unknown = sorted({(where, f"--{flag}") for where, text in _source_strings() for flag in FLAG.findall(text)
                      if flag not in known})
    assert not unknown, f"flags named in strings that no command has: {unknown}"


def test_every_vm_command_named_in_the_source_exists():
    bad = []
    for where, text in _source_strings():
        for m in COMMAND.finditer(text):
            name, sub = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            if name not in COMMANDS:
                bad.append((where, f"vm {name}"))
            elif name == "bench" and sub and sub not in BENCH_SUBCOMMANDS and not sub.startswith("-"):
                bad.append((where, f"vm bench {sub}"))
    assert not bad, f"vm commands named in strings that do not exist: {sorted(set(bad))}"


def test_hints_name_the_installed_hub_cli():
    stale = sorted({where for where, text in _source_strings() if "huggingface-cli" in text})
    assert not stale, f"huggingface-cli is not installed with the pinned hub (`hf` is): {stale}"
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert "huggingface-cli" not in doc.read_text(encoding="utf-8"), doc


def test_missing_weights_hint_is_hf_download_with_the_file(monkeypatch, tmp_path):
    from vm_common.weights import MissingWeightsError, resolve_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError) as exc:
        resolve_source("someone/missing-repo", what="test weights", filename="model.bin")
    assert "`hf download someone/missing-repo model.bin`" in str(exc.value)


def test_weights_command_rejects_an_unknown_command(capsys):
    from vm_common.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["weights", "--command", "nonsense"])
    assert exc.value.code == 2
    assert "nonsense" in capsys.readouterr().err
