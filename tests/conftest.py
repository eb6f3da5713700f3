"""Settings for the whole suite. No Qt here: tests/core must run without it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Settings, logs and recovery files go to a temporary folder, never the user's."""
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path_factory.mktemp("cnnviz-data")))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures(...)``).

    Tiny batches gain nothing from threads, and on a shared 2-core machine OpenMP threads
    waiting for each other can make a 0.3 s test take 10 s.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
