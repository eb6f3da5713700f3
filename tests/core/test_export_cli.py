"""``cnnviz export``: python, json and onnx output; clear messages for bad files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from cnnviz.cli import main
from cnnviz.core.build import build_module
from cnnviz.core.graph import SCHEMA_VERSION, ArchGraph, GraphFormatError
from cnnviz.core.sources import load_source


def test_export_python_writes_runnable_source(tmp_path: Path) -> None:
    out = tmp_path / "lenet.py"
    assert main(["export", "lenet5", "--format", "python", "-o", str(out)]) == 0
    ns: dict[str, Any] = {}
    exec(compile(out.read_text(), str(out), "exec"), ns)  # noqa: S102
    model = ns["build_model"]()
    graph = load_source("lenet5", size="teaching")
    want = {k: tuple(v.shape) for k, v in build_module(graph).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == want
    assert ns["INPUT_SHAPE"] == (1, 28, 28)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_export_json_then_load_is_the_same_graph(tmp_path: Path) -> None:
    out = tmp_path / "plain.json"
    assert main(["export", "plain20", "-o", str(out)]) == 0  # format from the suffix
    loaded = ArchGraph.load(out)
    assert loaded == load_source("plain20", size="teaching")
    # and a json file is itself a source
    again = tmp_path / "again.json"
    assert main(["export", str(out), "--format", "json", "-o", str(again)]) == 0
    assert json.loads(again.read_text()) == json.loads(out.read_text())


def test_export_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "lenet5"]) == 0
    text = capsys.readouterr().out
    assert "def build_model()" in text and "class LeNet5(nn.Module):" in text


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_extra_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "lenet5", "--format", "onnx", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnviz: error:") and "pip install cnnviz[onnx]" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"schema_version": 1, "nodes": [', "not valid JSON"),
        (json.dumps({"schema_version": SCHEMA_VERSION + 1, "nodes": []}), "newer cnnviz"),
        (json.dumps({"nodes": []}), "no 'schema_version'"),
        (json.dumps({"schema_version": 1, "nodes": [{"kind": "relu"}]}), "no 'name' field"),
        (json.dumps({"schema_version": 1, "nodes": "x"}), "'nodes' must be a list"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_broken_or_newer_files_give_a_clear_message(
    content: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(GraphFormatError, match=words):
        ArchGraph.load(path)
    assert main(["export", str(path), "-o", str(tmp_path / "x.py")]) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err and "Traceback" not in err


def test_unknown_source_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "resnet5O"]) == 2
    assert "unknown model" in capsys.readouterr().err
