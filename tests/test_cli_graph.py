"""``cnnviz graph SOURCE -o FILE``: headless images of the layer graph."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from cnnviz import cli

SVG = "{http://www.w3.org/2000/svg}"


def test_graph_svg_in_process(tmp_path, capsys):
    out = tmp_path / "googlenet.svg"
    code = cli.main(
        ["graph", "googlenet", "-o", str(out), "--depth", "0", "--expand", "inception3a"]
    )
    assert code == 0
    texts = {"".join(t.itertext()).strip() for t in ET.parse(out).getroot().iter(f"{SVG}text")}
    # inception3a is open (its branches are blocks), inception3b is one block
    assert {"inception3b", "branch1", "branch4", "concatenate"} <= {
        t.split(" ")[0] for t in texts
    } | texts
    assert "boxes" in capsys.readouterr().out


def test_graph_png_without_a_display(tmp_path):
    """A fresh interpreter with no QT_QPA_PLATFORM and no DISPLAY still draws the image."""
    out = tmp_path / "lenet.png"
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnviz", "graph", "lenet5", "-o", str(out), "--input", "1x32x32"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "lenet5" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lenet5", "-o", "x.gif"], ".png or .svg"),
        (["lenet5", "-o", "x.png", "--expand", "nope"], "no group 'nope'"),
        (["no_such_model", "-o", "x.png"], "unknown model"),
    ],
)
def test_graph_errors_are_messages(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["graph", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnviz: error:") and message in err
