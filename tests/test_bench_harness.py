"""The shared benchmark harness (benchmarks/harness/): device naming, side-by-side timing, result files, peak
memory, FLOP counting, provenance, and jobs run in-process and in a fresh process (with the memory guard)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.harness import cli, device, flops, jobs, memory, provenance, results, timing

JOB_MODULE = '''
import time

import torch


def echo(spec):
    return {"spec": spec, "threads": torch.get_num_threads()}


def hold(spec):
    time.sleep(30)
    return {}


JOBS = {"echo": echo, "hold": hold}
'''


def test_device_tag_slug_matches_committed_result_names(monkeypatch):
    monkeypatch.setattr(device, "cpu_model", lambda: "Intel(R) Xeon(R) Processor")
    assert device.device_tag("cpu", 1) == "cpu-intel-xeon-processor-1t"
    assert device.slug("NVIDIA H200 (TM)") == "nvidia-h200"
    assert device.torch_dtype("bfloat16") is torch.bfloat16
    assert cli.default_dtype("cuda:0", None) == "float16" and cli.default_dtype("cpu", None) == "float32"


@pytest.mark.parametrize("order, expected", [
    ("fixed", [["a", "b", "c"]] * 3),
    ("rotate", [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]),
    ("alternate", [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]),
])
def test_side_by_side_interleaves_in_the_given_order(order, expected):
    seen, before = [], []
    calls = {name: (lambda name=name: seen.append(name) or name.upper()) for name in "abc"}
    runs = timing.side_by_side(calls, 3, order=order, before=before.append)
    assert runs.orders == expected
    assert seen == before == [name for repeat in expected for name in repeat]
    assert runs.last == {"a": "A", "b": "B", "c": "C"}
    assert all(len(t) == 3 and min(t) >= 0 for t in runs.wall_s.values())
    assert set(runs.medians()) == {"a", "b", "c"} and set(runs.cpu_s) == {"a", "b", "c"}
    with pytest.raises(ValueError):
        timing.repeat_order(["a"], 0, "shuffle")


def test_timed_calls_sync_around_the_call():
    events = []
    t = timing.timed(lambda: events.append("call") or 7, sync=lambda: events.append("sync"))
    assert events == ["sync", "call", "sync"] and t.value == 7 and t.wall_s >= 0 and t.cpu_s >= 0
    assert timing.median([3.0, 1.0, 2.0]) == 2.0


def test_write_results_json_and_markdown(tmp_path):
    result = {"b": np.float32(1.5), "a": np.arange(3), "path": tmp_path, "flag": np.bool_(True)}
    js, md = results.write_results(tmp_path / "sub" / "bench_cpu-x-1t", result, "# table\n", sort_keys=True)
    assert js.name == "bench_cpu-x-1t.json" and md.name == "bench_cpu-x-1t.md"
    assert json.loads(js.read_text()) == {"a": [0, 1, 2], "b": 1.5, "flag": True, "path": str(tmp_path)}
    assert list(json.loads(js.read_text())) == ["a", "b", "flag", "path"] and md.read_text() == "# table\n"
    js2, md2 = results.write_results(tmp_path / "ordered", {"z": 1, "a": 2})
    assert list(json.loads(js2.read_text())) == ["z", "a"] and md2 is None
    assert results.table(["x", "y"], [[1, "2"]]) == ["| x | y |", "|---|---|", "| 1 | 2 |"]
    assert results.notes_section([]) == [] and results.notes_section(["n"]) == ["## Notes", "", "- n"]
    assert results.gib(2**30) == "1.00" and results.gib_or_na(None) == "n/a"


def test_provenance_comes_from_vm_common():
    prov = provenance.provenance()
    assert {"time_utc", "git_commit", "versions", "python", "platform"} <= set(prov)
    info = provenance.device_info("cpu", prov)
    assert info["torch"] == torch.__version__ and info["python"] == prov["python"] and info["cpu_model"]
    code = provenance.code_version(("vm_model/pisa.py",))
    if code:  # a git checkout
        assert not code["commit"].endswith("-dirty") and isinstance(code["modified_measured_files"], list)


def test_peak_memory_sees_a_tensor_allocated_inside():
    with memory.PeakMemory("cpu") as mem:
        x = torch.ones(16 * 2**20 // 4)  # 16 MiB
        del x
    assert mem.peak_bytes >= 16 * 2**20 and mem.rss_peak_bytes is not None and mem.method
    fields = memory.peak_fields(mem)
    assert fields["peak_bytes"] == mem.peak_bytes and set(fields) >= {"rss_peak_bytes", "baseline_bytes"}


def test_flop_counter_and_attention_recorder():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    counter = flops.flop_counter()
    with counter:
        a @ b
    assert counter.get_total_flops() == 2 * 8 * 16 * 4
    q = torch.randn(1, 2, 32, 8)
    counter, recorder = flops.flop_counter(), flops.AttentionRecorder()
    with torch.inference_mode(), counter, recorder:  # as the benchmarks record it
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() > 0  # counted whichever CPU kernel ran
    assert sum(n for k, n in recorder.sorted_counts().items() if k.startswith("sdpa_")) == 1


@pytest.fixture()
def job_module(tmp_path, monkeypatch):
    (tmp_path / "bench_harness_jobs.py").write_text(JOB_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # for the fresh process (run_job adds the repository)
    return "bench_harness_jobs"


def test_jobs_in_process_and_in_a_fresh_process(job_module, tmp_path):
    spec = {"x": 1, "threads": 1, "device": "cpu"}
    assert jobs.run_job(job_module, "echo", spec, False, tmp_path)["spec"] == spec
    isolated = jobs.run_job(job_module, "echo", spec, True, tmp_path)
    assert isolated == {"spec": spec, "threads": 1}  # the worker applied the spec's thread count


def test_memory_guard_stops_an_isolated_job(job_module, tmp_path):
    with pytest.raises(MemoryError, match="memory guard"):
        jobs.run_job(job_module, "hold", {"device": "cpu", "max_rss_gb": 0.01}, True, tmp_path)
