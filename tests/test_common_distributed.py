"""vm_common.distributed / devices / status: one rule for processes, work split, shard names, device and statuses."""

from __future__ import annotations

import typing

import pytest

from vm_common import devices, distributed
from vm_common.distributed import (ProcessInfo, parse_shard_name, process_info, shard_files, shard_name, shard_path,
                                   split_for_process)
from vm_common.status import CLIP_STATUSES, RESULT_STATUSES, ClipStatus


@pytest.mark.parametrize("n_items", [0, 1, 5, 12, 13])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_split_covers_every_item_exactly_once(n_items, count):
    items = [f"item{i}" for i in range(n_items)]
    shares = [split_for_process(items, ProcessInfo(index, count)) for index in range(count)]
    flat = [x for share in shares for x in share]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    for index, share in enumerate(shares):
        assert share == [x for i, x in enumerate(items) if i % count == index]  # round robin, input order kept
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_split_takes_any_iterable():
    assert split_for_process(iter(range(7)), ProcessInfo(1, 3)) == [1, 4]


def test_process_info_rejects_an_index_outside_the_count():
    with pytest.raises(ValueError):
        ProcessInfo(2, 2)
    with pytest.raises(ValueError):
        ProcessInfo(0, 0)


def test_lone_process_by_default(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    proc = process_info()
    assert (proc.index, proc.count, proc.is_main, proc.device) == (0, 1, True, "cpu")
    proc.barrier()
    proc.finish()  # no-ops for a lone process
    assert process_info("cuda:3").device == "cuda:3"  # an explicit device is kept


def test_launched_processes_use_partial_state_on_cpu_when_asked(monkeypatch):
    import accelerate

    seen = {}

    class FakeState:
        def __init__(self, cpu):
            seen["cpu"] = cpu
            self.process_index, self.num_processes, self.device = 1, 3, "cpu"

        def wait_for_everyone(self):
            seen["barrier"] = seen.get("barrier", 0) + 1

        def destroy_process_group(self):
            seen["shutdown"] = True

    monkeypatch.setattr(accelerate, "PartialState", FakeState)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    proc = process_info()
    assert seen["cpu"] is True and (proc.index, proc.count, proc.is_main) == (1, 3, False)
    proc.finish()
    assert seen["barrier"] == 1 and seen["shutdown"] is True
    monkeypatch.setenv("ACCELERATE_USE_CPU", "0")
    process_info("cpu")  # --device cpu says the same
    assert seen["cpu"] is True


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False),
                                             ("false", False), ("", False)])
def test_accelerate_use_cpu_is_honoured(monkeypatch, value, expected):
    monkeypatch.setenv("ACCELERATE_USE_CPU", value)
    assert devices.cpu_requested() is expected
    if expected:
        assert devices.use_cpu() and devices.default_device() == "cpu"


def test_device_flag_asks_for_cpu(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert devices.cpu_requested("cpu") and devices.cpu_requested("CPU:0")
    assert not devices.cpu_requested("cuda:1") and not devices.cpu_requested(None)


def test_no_gpu_means_cpu(monkeypatch):
    import torch

    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.use_cpu() and devices.default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not devices.use_cpu() and devices.default_device() == "cuda"


def test_shard_names_round_trip(tmp_path):
    for kind, index, suffix in (("samples", 0, ".jsonl"), ("clips", 12345, ".jsonl"), ("stats", 7, ".json")):
        name = shard_name(kind, index, suffix)
        assert parse_shard_name(name) == (kind, index, suffix)
        assert shard_path(tmp_path, kind, index, suffix) == tmp_path / distributed.SHARD_DIR / name
    assert shard_name("samples", 3) == "samples-00003.jsonl"
    for bad in ("samples.jsonl", ".samples-00001.jsonl.tmp1234", "notes.txt", "samples-00001"):
        assert parse_shard_name(bad) is None, bad
    with pytest.raises(ValueError):
        shard_name("bad-kind", 0)
    with pytest.raises(ValueError):
        shard_name("samples", -1)


def test_old_shard_names_are_read(tmp_path):
    shards = tmp_path / distributed.SHARD_DIR
    assert shard_files(tmp_path, "samples") == []  # no shard folder yet
    shards.mkdir()
    for name in ("samples.001.jsonl", "samples-00000.jsonl", "samples-00002.jsonl", "rank-00003.jsonl",
                 "clips-00001.jsonl", "stats-00000.json", ".samples-00004.jsonl.tmp1", "samples.jsonl"):
        (shards / name).write_text("{}\n")
    assert [p.name for p in shard_files(tmp_path, "samples")] == [
        "samples-00000.jsonl", "samples.001.jsonl", "samples-00002.jsonl"]
    assert [p.name for p in shard_files(tmp_path, "samples", index=1)] == ["samples.001.jsonl"]
    assert [p.name for p in shard_files(tmp_path, "clips", old_kinds=("rank",))] == [
        "clips-00001.jsonl", "rank-00003.jsonl"]
    assert [p.name for p in shard_files(tmp_path, "stats", ".json")] == ["stats-00000.json"]


def test_one_status_vocabulary_with_the_words_files_hold():
    assert RESULT_STATUSES == ("ok", "skipped", "error")
    assert CLIP_STATUSES == ("kept", "rejected", "error")
    assert typing.get_args(ClipStatus) == CLIP_STATUSES
