"""Issue 11 §6: every number is validated where it is parsed - flags and YAML alike, by one mechanism
(vm_common.config: field metadata min/max/gt, finite floats, 64-bit ints, types), with a message naming the option,
before anything is written."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vm_common.config import ConfigError, add_dataclass_arguments, build_config


@dataclass
class Inner:
    rate: float = field(default=0.5, metadata={"min": 0, "max": 1})


@dataclass
class Options:
    steps: int = field(default=3, metadata={"min": 1})
    lr: float = field(default=1e-3, metadata={"gt": 0})
    seeds: list[int] = field(default_factory=lambda: [1], metadata={"flag": "seed", "min": 0})
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.steps == 13:
            raise ValueError("steps 13 is unlucky")


def _build(argv: list[str], yaml_text: str | None = None, tmp_path: Path | None = None) -> Options:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Options)
    yaml_path = None
    if yaml_text is not None:
        yaml_path = tmp_path / "c.yaml"
        yaml_path.write_text(yaml_text)
    return build_config(Options, parser.parse_args(argv), yaml_path)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps (YAML steps): must be >= 1, got 0"),
    (["--lr", "0"], "--lr (YAML lr): must be > 0"),
    (["--lr", "nan"], "--lr (YAML lr): must be a finite number"),
    (["--lr", "inf"], "must be a finite number"),
    (["--seed", "1", "-1"], "--seed (YAML seeds): must be >= 0, got -1"),
    (["--seed", str(2**70)], "does not fit in 64 bits"),
    (["--rate", "1.5"], "--rate (YAML inner.rate): must be <= 1"),
    (["--steps", "13"], "invalid configuration: steps 13 is unlucky"),
])
def test_flags_are_validated_with_the_option_named(argv, message):
    with pytest.raises(ConfigError) as exc:
        _build(argv)
    assert message in str(exc.value)


@pytest.mark.parametrize("text, message", [
    ("steps: ten\n", "--steps (YAML steps): must be an integer, got str 'ten'"),
    ("steps: 2.5\n", "must be an integer"),
    ("steps: true\n", "must be an integer"),
    ("lr: fast\n", "--lr (YAML lr): must be a number"),
    ("lr: .nan\n", "must be a finite number"),
    ("seeds: [1, x]\n", "--seed (YAML seeds): must be an integer"),
    ("inner: {rate: -1}\n", "--rate (YAML inner.rate): must be >= 0"),
    ("steps: null\n", "a value is required"),
])
def test_yaml_values_are_validated_like_flags(tmp_path, text, message):
    with pytest.raises(ConfigError) as exc:
        _build([], text, tmp_path)
    assert message in str(exc.value)


def test_valid_values_are_converted(tmp_path):
    cfg = _build([], "steps: 4\nlr: 1e-5\nseeds: 3\nlimit: null\ninner: {rate: 1}\n", tmp_path)
    assert cfg.steps == 4 and math.isclose(cfg.lr, 1e-5) and cfg.seeds == [3] and cfg.limit is None
    assert isinstance(cfg.inner.rate, float)


def test_command_options_are_validated_before_anything_is_written(tmp_path):
    """The commands' own options: preprocess thresholds and counts, bench sizes, generate's protocol and seeds."""
    from vm_data.preprocess import resolve_configs
    from vm_eval.bench import RUN_PRESETS, RunConfig, ScoreConfig, build_parser as bench_parser
    from vm_model.generate import GENERATE_PRESETS, GenerateConfig, build_parser as generate_parser

    base = ["--input", str(tmp_path), "--output", str(tmp_path / "out")]
    for bad in (["--min-duration", "nan"], ["--batch-clips", "0"], ["--num-workers", "-1"], ["--log-every", "0"],
                ["--box-threshold", "1.5"], ["--num-references", "2", "--min-references", "3"], ["--limit", "0"]):
        with pytest.raises(ConfigError):
            resolve_configs(base + bad)
    for bad in (["--batch-size", "0"], ["--threads", "0"]):
        with pytest.raises(ConfigError):
            build_config(RunConfig, bench_parser().parse_args(["run", *bad]), None, presets=RUN_PRESETS)
    (tmp_path / "c.yaml").write_text("batch_size: big\n")
    with pytest.raises(ConfigError, match="batch_size"):
        build_config(ScoreConfig, bench_parser().parse_args(["score"]), tmp_path / "c.yaml")
    img = ["--image", "x.png", "--out", str(tmp_path / "gen")]
    for bad in (["--steps", "0"], ["--fps", "0"], ["--seed", str(2**64)], ["--guidance-scale", "nan"]):
        with pytest.raises(ConfigError):
            build_config(GenerateConfig, generate_parser().parse_args(img + bad), None, presets=GENERATE_PRESETS)
    assert not (tmp_path / "out").exists() and not (tmp_path / "gen").exists()


def test_generate_cli_answers_a_bad_number_with_exit_2_and_writes_nothing(tmp_path, caplog):
    from vm_model.generate import main

    out = tmp_path / "out"
    rc = main(["--preset", "tiny", "--image", "missing.png", "--prompt", "x", "--out", str(out), "--fps", "0"])
    assert rc == 2 and not out.exists()
    assert "fps" in caplog.text
