"""Rule 1 of DESIGN.md: importing every module of cnnviz.core loads no Qt."""

import subprocess
import sys
import textwrap


def test_importing_all_of_core_loads_no_qt():
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import cnnviz.core
        names = ["cnnviz.core"] + [
            m.name for m in pkgutil.walk_packages(cnnviz.core.__path__, "cnnviz.core.")
        ]
        for name in names:
            importlib.import_module(name)
        qt = sorted(
            m for m in sys.modules
            if m.split(".")[0] in {"PySide6", "shiboken6", "PyQt5", "PyQt6", "pyqtgraph"}
            or m.startswith("cnnviz.ui")
        )
        print(len(names))
        print(",".join(qt))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert int(out[0]) >= 2, "the walk found no core modules"
    assert out[1] == "", f"Qt modules loaded by cnnviz.core: {out[1]}"
