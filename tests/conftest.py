"""Shared fixtures. Real-data tests find files through TSDIFF_DATA (set by `make test` / .ci/run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs one worker per core), give each worker its share of
    the cores: torch's default of one thread per core in every worker oversubscribes the CPU."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // int(workers)))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data directory. Missing setting: fail in CI, skip (with the reason) elsewhere."""
    value = os.environ.get("TSDIFF_DATA")
    if not value:
        msg = "TSDIFF_DATA is not set; point it at the data directory (e.g. ../shared/data) to run real-data tests"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"TSDIFF_DATA={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def aqi36(data_dir):
    """The AQI-36 protocol built from the real files (built once per session)."""
    from tsdiff.data import build_protocol

    return build_protocol("aqi36", data_dir)


@pytest.fixture
def record_calls(monkeypatch):
    """``record_calls(obj, "method")`` wraps the method for the test and returns the list of
    the keyword arguments of every call (the method still runs)."""

    def wrap(obj, name: str) -> list[dict]:
        calls: list[dict] = []
        method = getattr(obj, name)

        def spy(*args, **kwargs):
            calls.append(kwargs)
            return method(*args, **kwargs)

        monkeypatch.setattr(obj, name, spy)
        return calls

    return wrap
