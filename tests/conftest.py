"""Settings for the whole suite. No Qt here: tests/core must run without it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Settings, logs and recovery files go to a temporary folder, never the user's."""
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path_factory.mktemp("cnnviz-data")))
