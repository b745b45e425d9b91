"""benchmarks.eval_dimension_cost: every metric timed alone, all together, and a metric that was not computed is
listed with its reason instead of a time."""

from __future__ import annotations

from benchmarks.eval_dimension_cost import measure, render_markdown
from benchmarks.harness.provenance import device_info


def test_measure_times_each_metric_and_all_together():
    r = measure("tiny", ("copy",), "dis", n_videos=1, frames=3, res=64, repeats=1)
    assert list(r["metrics"]) == ["copy_paste"]
    m = r["metrics"]["copy_paste"]
    assert m["status"] == "ok" and m["seconds_per_video"] > 0 and m["suite"] == "copy"
    assert r["all_together_seconds_per_video"] > 0 and set(r["wall_s"]) == {"copy_paste", "all together"}
    r["device"] = device_info("cpu")
    r["metrics"]["vbench_aesthetic"] = {"label": "VBench Aesthetic", "suite": "vbench", "seconds_per_video": 0.0,
                                        "cpu_seconds_per_video": 0.0, "status": "skipped",
                                        "reason": "aesthetic head not found"}
    md = render_markdown(r)
    assert "| copy | Copy-paste | `copy_paste` |" in md
    assert "not computed (skipped: aesthetic head not found)" in md
