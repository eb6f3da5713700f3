"""Where cnnviz keeps its files on the user's machine (no heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """The user's data directory for cnnviz (``CNNVIZ_DATA_DIR`` overrides it, e.g. in tests)."""
    override = os.environ.get("CNNVIZ_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("cnnviz", "cnnviz"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_file() -> Path:
    """The log file that unhandled errors are written to."""
    logs = data_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / "cnnviz.log"
