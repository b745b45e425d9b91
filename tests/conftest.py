"""Shared test setup: an isolated tiny-preset cache per session, offline hub, bugs raise in data loops, --runslow."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a bug in a data loop propagates instead of becoming an internal_error row (vm_common.error_policy)
os.environ.setdefault("VM_ERROR_POLICY", "raise")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _tiny_cache(tmp_path_factory):
    """Tiny components are built once per test session (per xdist worker) unless VM_TINY_DIR is given."""
    if "VM_TINY_DIR" not in os.environ:
        os.environ["VM_TINY_DIR"] = str(tmp_path_factory.getbasetemp() / "tiny-cache")
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module on one torch thread (tiny ops are dominated by thread hand-offs, which stall on a loaded
    machine); use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
