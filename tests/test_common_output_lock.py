"""One writer per output folder; data-only training state; files that honour the umask."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import pytest

from vm_common.io_utils import atomic_output, atomic_write_json
from vm_common.output_lock import LOCK_NAME, OutputFolderBusy, clear_folder, folder_has_outputs, hold_output_folder

HOLD = """
import sys, time
from vm_common.output_lock import hold_output_folder
with hold_output_folder(sys.argv[1], "holder-under-test"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """A separate process holding tmp_path/out."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_second_writer_is_refused_naming_the_holder(tmp_path, holder):
    with pytest.raises(OutputFolderBusy, match=f"pid {holder.pid} .*holder-under-test"):
        with hold_output_folder(tmp_path / "out", "second"):
            pass


def test_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path, holder, caplog):
    holder.kill()
    holder.wait()
    with caplog.at_level("WARNING"):
        with hold_output_folder(tmp_path / "out", "after"):
            holder_info = json.loads((tmp_path / "out" / LOCK_NAME).read_text())
            assert holder_info["pid"] == os.getpid() and holder_info["command"] == "after"
    assert f"pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        with hold_output_folder(tmp_path / "out", "again"):  # released cleanly: nothing stale
            pass
    assert "no longer running" not in caplog.text


def test_every_command_refuses_a_held_folder(tmp_path, holder):
    from vm_eval.bench import main as bench_main
    from vm_model.generate import main as generate_main
    from vm_model.train import main as train_main

    out = str(tmp_path / "out")
    image = tmp_path / "i.png"
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(image)
    assert generate_main(["--preset", "tiny", "--image", str(image), "--prompt", "x", "--out", out]) == 2
    assert bench_main(["run", "--preset", "tiny", "--benchmark", "demo", "--out", out]) == 2
    assert bench_main(["report", out, "--out", out]) == 2
    assert train_main(["--preset", "tiny", "--data", "synthetic", "--output-dir", out, "--resume"]) == 2
    assert not folder_has_outputs(tmp_path / "out")  # nothing was written by the refused commands


def test_clear_folder_keeps_the_lock(tmp_path):
    with hold_output_folder(tmp_path / "o"):
        (tmp_path / "o" / "a").mkdir()
        (tmp_path / "o" / "b.txt").write_text("x")
        assert folder_has_outputs(tmp_path / "o")
        clear_folder(tmp_path / "o")
        assert [p.name for p in (tmp_path / "o").iterdir()] == [LOCK_NAME]


def test_atomic_writes_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with atomic_output(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"1")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_json(tmp_path / "c.json", {"x": 1})
        assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-state-file",))


def test_resume_refuses_a_training_state_that_would_run_code(tmp_path, monkeypatch):
    from vm_model.train import load_training_state

    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "state.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"step": 1, "optimizer": {}, "lr_scheduler": {}, "rng": _RunsCode()}, fh)
    with pytest.raises(ValueError, match="data-only"):
        load_training_state(bad)
    time.sleep(0.1)
    assert not (tmp_path / "pwned-by-state-file").exists()
