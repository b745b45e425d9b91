"""Issue 16: the report groups the new columns by suite, each labelled with the suite and protocol it reproduces, and
draws a bar chart per method (chart_<kind>.png beside report.html, embedded in it)."""

from __future__ import annotations

import base64
import json

import numpy as np
from PIL import Image

from vm_eval.charts import PANEL_W, SUITE_COLOURS, chart_data, draw_chart
from vm_eval.report import write_report
from vm_eval.tables import table_blocks

SUBJECT, AESTHETIC = "vbench_subject_consistency", "vbench_aesthetic"
VALUES = {"Ours": {"clip_t": 0.30, "face_sim": 0.60, SUBJECT: 1.00, AESTHETIC: 0.80, "copy_paste": 0.9},
          "Baseline": {"clip_t": 0.10, "face_sim": 0.20, SUBJECT: 0.25, AESTHETIC: 0.20, "copy_paste": 0.3}}


def _rows():
    rows = []
    for method, metrics in VALUES.items():
        for i in range(2):
            for metric, value in metrics.items():
                rows.append({"method": method, "sample_id": f"s{i}/p01/s42", "subject": f"s{i}", "kind": "human",
                             "category": "clothing", "prompt": "p", "metric": metric, "value": value,
                             "status": "ok", "reason": "", "detail": {}, "video": "missing.gif"})
    return rows


def _summary():
    from vm_eval.aggregate import aggregate

    return aggregate(_rows())


def test_blocks_are_grouped_by_suite_and_labelled_with_their_protocol():
    blocks = table_blocks(_summary())
    assert [b["suite"] for b in blocks] == ["paper", "vbench", "copy"]
    assert "arXiv 2412.19645" in blocks[0]["title"] and "authors' evaluation scripts" in blocks[0]["title"]
    assert "VBench's own protocol" in blocks[1]["title"] and "Copy-paste" in blocks[2]["title"]


def test_chart_data_holds_every_method_and_metric_by_suite():
    data = chart_data(_summary())["human"]
    assert data["methods"] == ["Ours", "Baseline"]
    assert [(s, [m for m, _, _ in ms]) for s, _, ms in data["sections"]] == [
        ("paper", ["clip_t", "face_sim"]), ("vbench", [SUBJECT, AESTHETIC]), ("copy", ["copy_paste"])]
    subject = next(ms for s, _, ms in data["sections"] if s == "vbench")[0]
    assert subject == (SUBJECT, 1.0, [1.0, 0.25])


def test_an_out_of_range_metric_gets_its_own_axis():
    summary = _summary()
    for g in summary["groups"]:
        g["metrics"]["clip_t"]["value"] *= 20  # 6.0 and 2.0: not in [0, 1]
    clip_t = chart_data(summary)["human"]["sections"][0][2][0]
    assert clip_t[0] == "clip_t" and clip_t[1] == 6.0


def _colour_pixels(img: Image.Image, colour, panel: int) -> int:
    arr = np.asarray(img)[:, 10 + panel * PANEL_W: 10 + (panel + 1) * PANEL_W]
    return int((arr == np.array(colour, dtype=np.uint8)).all(axis=-1).sum())


def test_each_method_has_a_panel_whose_bars_follow_its_values():
    img = draw_chart(chart_data(_summary())["human"], "t")
    assert img.width >= 2 * PANEL_W  # a panel per method, side by side
    for suite in ("paper", "vbench", "copy"):
        ours, base = (_colour_pixels(img, SUITE_COLOURS[suite], p) for p in (0, 1))
        assert ours > 2 * base > 0, suite  # Ours' values are 2-4x the baseline's in every suite


def test_report_writes_the_chart_next_to_the_page_and_embeds_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    write_report([run], run)
    png = run / "chart_human.png"
    img = Image.open(png)
    assert img.format == "PNG" and img.width >= 2 * PANEL_W
    page = (run / "report.html").read_text()
    embedded = base64.b64encode(png.read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{embedded}"' in page and 'href="chart_human.png"' in page
    assert page.index("chart_human") > page.index("VBench (custom-input dimensions")  # after the summary tables
