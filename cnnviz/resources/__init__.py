"""Files shipped with cnnviz: style sheet, icons, example architectures."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def path(relative: str) -> Path:
    """The absolute path of a shipped resource, e.g. ``path("icons/cnnviz.svg")``."""
    return _ROOT / relative


def read_text(relative: str) -> str:
    """The text of a shipped resource."""
    return path(relative).read_text(encoding="utf-8")
