"""Guards against PySide6 6.12.0 on Python 3.11, which aborts after a few thousand
repaints of Python paint() overrides (a reference to None dropped per call)."""

import subprocess
import sys
from pathlib import Path

REPAINTS = 20_000
ITEMS = 5


def test_python_paint_overrides_survive_20000_repaints():
    script = Path(__file__).with_name("repaint_stress.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(REPAINTS)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"repaint loop crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    paint_calls = int(proc.stdout.split()[-1])
    # every repaint of the view paints each of its cards once
    assert paint_calls >= REPAINTS * ITEMS
