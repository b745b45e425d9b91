"""Issue 11 §7: user errors are one message and exit 2, internal errors are loud. A bug (TypeError, AttributeError
...) in a data loop - clip processing, the highlighter, the scorer - is never recorded as bad data: under the
``raise`` policy (the tests') it propagates; under ``record`` (the commands' default) it becomes an
``internal_error`` row and the command exits 1 saying how many."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from vm_data.synthetic import SyntheticSubject, make_synthetic_dataset, render_frames
from vm_data.testing import SyntheticColorDetector, SyntheticColorSegmenter


class BuggyDetector(SyntheticColorDetector):
    def detect(self, images, prompts):
        return None.boxes  # AttributeError: a bug in our code, not a bad image


class FlakyDetector(SyntheticColorDetector):
    def detect(self, images, prompts):
        raise RuntimeError("CUDA out of memory")  # a model failure on this input: recorded, never raised


def _frame():
    return render_frames(1, 96, [SyntheticSubject()], seed=0)[0][0]


def test_policy_classifies_bugs_and_bad_input(monkeypatch):
    from vm_common.error_policy import ErrorPolicy, is_bug

    assert is_bug(TypeError()) and is_bug(AttributeError()) and is_bug(KeyError())
    assert not is_bug(ValueError()) and not is_bug(OSError()) and not is_bug(RuntimeError())
    with pytest.raises(TypeError):
        try:
            raise TypeError("bug")
        except TypeError as exc:
            ErrorPolicy("raise").check(exc)
    assert ErrorPolicy("record").check(TypeError("bug")) is True
    assert ErrorPolicy("raise").check(ValueError("bad input")) is False
    monkeypatch.setenv("VM_ERROR_POLICY", "record")
    assert ErrorPolicy.from_env().mode == "record"


def test_highlighter_raises_a_bug_and_records_a_model_failure(monkeypatch):
    from vm_common.error_policy import ErrorPolicy
    from vm_data.highlight import HighlightConfig, SubjectHighlighter

    monkeypatch.setenv("VM_ERROR_POLICY", "raise")
    cfg = HighlightConfig(output_size=32)
    with pytest.raises(AttributeError):
        SubjectHighlighter(BuggyDetector(), SyntheticColorSegmenter(), cfg).highlight_batch([_frame()] * 2, ["x"] * 2)
    flaky = SubjectHighlighter(FlakyDetector(), SyntheticColorSegmenter(), cfg).highlight(_frame(), "x")
    assert flaky.status == "error" and not flaky.internal
    recorded = SubjectHighlighter(BuggyDetector(), SyntheticColorSegmenter(), cfg,
                                  policy=ErrorPolicy("record")).highlight(_frame(), "x")
    assert recorded.status == "error" and recorded.internal


def test_clip_processing_raises_a_bug(monkeypatch, tmp_path):
    from vm_common.error_policy import ErrorPolicy
    from vm_data import clip_processing
    from vm_data.clip_processing import ClipRules, prepare_clip
    from vm_data.sources import ClipSpec

    def buggy(spec, rules):
        return spec.no_such_field

    monkeypatch.setattr(clip_processing, "_prepare", buggy)
    spec = ClipSpec("c", str(tmp_path / "v.mp4"), caption="x")
    with pytest.raises(AttributeError):
        prepare_clip(spec, ClipRules(), ErrorPolicy("raise"))
    row = prepare_clip(spec, ClipRules(), ErrorPolicy("record")).row
    assert row.status == "error" and row.extra["error_kind"] == "internal_error"


def test_preprocess_with_a_bug_exits_1_saying_how_many(monkeypatch, tmp_path, caplog):
    """Under the commands' default policy the run finishes, records the rows, and exits 1 with the count."""
    from vm_data import filters
    from vm_data.preprocess import main

    make_synthetic_dataset(tmp_path / "syn", num_clips=2, num_frames=20, size=48, seed=1)

    def buggy_check(*args, **kwargs):
        raise TypeError("check_video() got an unexpected keyword argument")

    monkeypatch.setattr(filters, "check_video", buggy_check)
    monkeypatch.setenv("VM_ERROR_POLICY", "record")
    argv = ["--input", str(tmp_path / "syn" / "videos"), "--output", str(tmp_path / "out"), "--detector",
            "synthetic-color", "--segmenter", "synthetic-color", "--min-short-side", "32", "--num-workers", "0",
            "--no-require-caption"]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 1
    assert "2 internal error(s)" in caplog.text
    monkeypatch.setenv("VM_ERROR_POLICY", "raise")
    with pytest.raises(TypeError):
        main(argv[:3] + [str(tmp_path / "out2")] + argv[4:])


def test_scorer_raises_a_bug_and_records_it_as_internal_under_record(monkeypatch):
    from vm_common.error_policy import ErrorPolicy
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.scorer import Reference, VideoScorer

    encoders = Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu"))
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    ref = Reference("r", __import__("PIL.Image", fromlist=["Image"]).new("RGB", (32, 32)))

    def buggy(*args, **kwargs):
        raise TypeError("bug in a metric")

    scorer = VideoScorer(encoders, policy=ErrorPolicy("raise"))
    monkeypatch.setattr(scorer, "_clip", buggy)
    with pytest.raises(TypeError):
        scorer.score(frames, prompt="p", reference=ref, kind="object")
    recorder = VideoScorer(encoders, policy=ErrorPolicy("record"))
    monkeypatch.setattr(recorder, "_clip", buggy)
    results = recorder.score(frames, prompt="p", reference=ref, kind="object")
    assert results["clip_t"].status == "error" and results["clip_t"].detail["error_kind"] == "internal_error"


def test_user_errors_are_one_message_and_exit_2(tmp_path, capsys, caplog):
    """One convention for every command: a user error is a message naming the problem and exit 2, no traceback."""
    from vm_common.cli import main

    cases = [
        ["generate", "--preset", "tiny", "--image", str(tmp_path / "missing.png"), "--prompt", "x", "--out",
         str(tmp_path / "g")],
        ["bench", "report", str(tmp_path / "no-run"), "--out", str(tmp_path / "r")],
        ["bench", "score", "--manifest", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "s")],
        ["bench", "run", "--benchmark", "nope", "--out", str(tmp_path / "b")],
        ["preprocess-dataset", "--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "p")],
    ]
    for argv in cases:
        caplog.clear()
        assert main(argv) == 2, argv
        text = caplog.text + capsys.readouterr().err
        assert "Traceback" not in text and text.strip(), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing is written before validation passes"


def test_run_main_passes_internal_errors_through():
    from vm_common.errors import UserError, run_main

    class Bad(UserError, ValueError):
        pass

    assert run_main("vm x", lambda: (_ for _ in ()).throw(Bad("bad input"))) == 2
    with pytest.raises(ZeroDivisionError):
        run_main("vm x", lambda: 1 / 0)
