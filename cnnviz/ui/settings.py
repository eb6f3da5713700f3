"""The app's persistent settings: one INI file in the user's data directory."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from cnnviz import paths

MAX_RECENT_FILES = 10


def settings() -> QSettings:
    """The settings store (honours ``CNNVIZ_DATA_DIR``, so tests never touch the real one)."""
    return QSettings(str(paths.data_dir() / "settings.ini"), QSettings.Format.IniFormat)


def recent_files() -> list[str]:
    """The most recently opened files, newest first."""
    value = settings().value("recent_files", [])
    if isinstance(value, str):  # QSettings returns a bare string for a one-item list
        value = [value]
    return [str(v) for v in value or []]


def add_recent_file(path: str) -> list[str]:
    """Put ``path`` first in the recent files and return the new list."""
    files = [path] + [f for f in recent_files() if f != path]
    files = files[:MAX_RECENT_FILES]
    settings().setValue("recent_files", files)
    return files


def clear_recent_files() -> None:
    """Forget every recent file."""
    settings().remove("recent_files")
