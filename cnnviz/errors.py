"""Error types shared by the core and the interface (no heavy imports)."""

from __future__ import annotations


class CnnvizError(Exception):
    """An error the user caused or can fix; its message is shown as it is, without traceback."""
