"""Aggregation as the paper, tables from a committed samples.jsonl, and independence from how work was split."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from vm_common.io_utils import read_jsonl
from vm_eval.aggregate import aggregate
from vm_eval.bench import main as bench_main
from vm_eval.tables import to_csv, to_latex, to_markdown

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture()
def rows():
    return list(read_jsonl(ASSETS / "eval_samples.jsonl"))


def _group(summary, method, kind="human"):
    return next(g for g in summary["groups"] if g["method"] == method and g["kind"] == kind)


def test_nan_subject_is_left_out_of_the_mean(rows):
    g = _group(aggregate(rows), "VideoMaker")
    face = g["metrics"]["face_sim"]
    # s1: mean(0.80, 0.60) = 0.70; s2: 0.70 (its other video has no face); s3: no face at all -> left out
    assert face["value"] == pytest.approx(0.70)
    assert face["n_subjects"] == 2 and face["n_subjects_total"] == 3
    assert face["n_valid"] == 3 and face["n_total"] == 6
    assert face["face_detection"]["frames_with_face"] == 48 and face["face_detection"]["frames"] == 80


def test_per_subject_then_mean_and_dd_flat_fraction(rows):
    g = _group(aggregate(rows), "VideoMaker")
    # CLIP-T: s1 0.26, s2 0.27, s3 0.24 (its second video is an error and is not scored) -> 0.2567
    assert g["metrics"]["clip_t"]["value"] == pytest.approx((0.26 + 0.27 + 0.24) / 3)
    # DD: 2 dynamic of the 5 scored videos (flat, not per subject)
    assert g["metrics"]["dd"]["value"] == pytest.approx(0.4)
    assert g["metrics"]["dd"]["n_valid"] == 5 and g["metrics"]["dd"]["statuses"]["error"] == 1
    assert g["categories"]["accessory"]["clip_t"]["value"] == pytest.approx((0.27 + 0.28) / 2)


def test_aggregation_does_not_depend_on_order_or_sharding(rows):
    ref = aggregate(rows)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    # a "resumed" run with a duplicate row of the same key (the last one wins, identical value)
    again = aggregate(shuffled + rows[:3])
    for g_ref in ref["groups"]:
        g = _group(again, g_ref["method"])
        for m, s in g_ref["metrics"].items():
            assert g["metrics"][m]["value"] == pytest.approx(s["value"]) if s["value"] is not None else \
                g["metrics"][m]["value"] is None


def test_committed_samples_render_to_expected_table(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ASSETS / "eval_samples.jsonl", run / "samples.jsonl")
    assert bench_main(["report", str(run), "--out", str(run)]) == 0
    assert (run / "table.md").read_text() == (ASSETS / "eval_expected_table.md").read_text()


def test_best_bold_second_underlined(rows):
    md = to_markdown(aggregate(rows))
    line = next(ln for ln in md.splitlines() if ln.startswith("| VideoMaker"))
    assert "**0.2567**" in line and "**0.7000**" in line and "<u>0.9833</u>" in line
    tex = to_latex(aggregate(rows))
    assert "\\textbf{0.2567}" in tex and "\\underline{0.9833}" in tex
    csv_text = to_csv(aggregate(rows))
    assert "VideoMaker,all,face_sim,Face Sim,0.700000,3,6,2,1" in csv_text


def test_report_command_side_by_side_and_ablation(tmp_path, rows):
    a, b = tmp_path / "runA", tmp_path / "runB"
    for d, method in ((a, "VideoMaker"), (b, "IP-Adapter")):
        d.mkdir()
        with open(d / "samples.jsonl", "w") as fh:
            import json

            for r in rows:
                if r["method"] == method:
                    fh.write(json.dumps(r) + "\n")
    out = tmp_path / "report"
    assert bench_main(["report", str(a), str(b), "--out", str(out), "--layout", "ablation"]) == 0
    md = (out / "table.md").read_text()
    assert "Ablation (Table 3 layout, human)" in md
    assert md.index("| VideoMaker") < md.index("| IP-Adapter")  # rows in the order given
    for name in ("samples.jsonl", "summary.json", "table.md", "table.csv", "table.tex", "report.html", "run.json"):
        assert (out / name).is_file(), name
    assert bench_main(["report", str(tmp_path / "nope"), "--out", str(out)]) == 2
