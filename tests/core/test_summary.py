"""`cnnviz summary`: the JSON contract, the table's totals, CSV and sources."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cnnviz.core import sources, summary
from cnnviz.core.analysis import analyse
from cnnviz.core.trace import from_torchvision
from cnnviz.errors import CnnvizError
from tests.core.test_graph import lenet

RF_KEYS = {"size", "jump", "padding", "global"}
LAYER_KEYS = {"name", "kind", "output_shape", "params", "macs", "rf"}


def _check_layer(layer: dict) -> None:
    assert set(layer) == LAYER_KEYS
    assert isinstance(layer["name"], str) and isinstance(layer["kind"], str)
    assert layer["output_shape"] is None or all(
        isinstance(v, (int, list)) for v in layer["output_shape"]
    )
    assert isinstance(layer["params"], int) and isinstance(layer["macs"], int)
    assert set(layer["rf"]) == RF_KEYS and isinstance(layer["rf"]["global"], bool)
    for key in ("size", "jump", "padding"):
        v = layer["rf"][key]
        assert v is None or (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v))


def test_json_contract():
    graph = from_torchvision("resnet18", (3, 64, 64))
    data = json.loads(summary.render(graph, analyse(graph), fmt="json"))
    assert set(data) == {"model", "input_shape", "totals", "layers", "groups"}
    assert data["model"] == "resnet18" and data["input_shape"] == [3, 64, 64]
    assert set(data["totals"]) == {"params", "trainable_params", "macs"}
    assert data["totals"]["params"] == 11_689_512
    assert all(isinstance(v, int) for v in data["totals"].values())
    for layer in data["layers"] + data["groups"]:
        _check_layer(layer)
    layers = {layer["name"]: layer for layer in data["layers"]}
    conv = layers["layer4.1.conv2"]
    assert conv["kind"] == "conv2d" and conv["output_shape"] == [512, 2, 2]
    assert conv["params"] == 512 * 512 * 9
    assert layers["conv1"]["rf"] == {
        "size": [7, 7],
        "jump": [2, 2],
        "padding": [3, 3],
        "global": False,
    }
    assert layers["fc"]["rf"]["global"] is True and layers["fc"]["rf"]["size"] is None
    groups = {g["name"]: g for g in data["groups"]}
    assert groups["layer1"]["params"] == sum(
        v["params"] for k, v in layers.items() if k.startswith("layer1.")
    )
    assert sum(v["params"] for v in layers.values()) == data["totals"]["params"]
    assert sum(v["macs"] for v in layers.values()) == data["totals"]["macs"]


def test_inception_groups_are_named_like_the_modules():
    graph = from_torchvision("inception_v3", (3, 299, 299))
    data = json.loads(summary.render(graph, fmt="json"))
    assert "Mixed_5b" in {g["name"] for g in data["groups"]}
    assert "Mixed_5b.branch1x1.conv" in {layer["name"] for layer in data["layers"]}


@pytest.mark.parametrize("source", ["torchvision:resnet50", "resnet50"])
def test_resnet50_table_totals(source):
    if source == "resnet50" and "resnet50" not in sources.zoo_names():
        pytest.skip("the zoo has no resnet50")
    text = summary.main(source, None, None, "table")
    assert "Total params: 25,557,032" in text
    assert "Total MACs: 4.09 GMACs" in text
    assert "Trainable params: 25,557,032" in text and "Non-trainable params: 0" in text
    assert "Input size: (3, 224, 224)" in text
    assert "Estimated activation memory" in text
    # 176 nodes: the command folds the bottleneck blocks so that the table fits a slide
    assert "    conv1" not in text and "\n  0 " in text
    assert text.endswith("Groups nested deeper than 2 are folded; --depth N shows more levels.")
    full = summary.main(source, None, 9, "table")
    assert "    conv1" in full  # layer1.0.conv1, indented two levels
    assert "folded" not in full


def test_auto_depth_keeps_small_tables_whole():
    graph = lenet()
    a = analyse(graph)
    assert summary.auto_depth(graph, a) is None
    big = from_torchvision("resnet18", (3, 64, 64))
    a = analyse(big)
    rows = {d: len(summary._table_rows(big, a, d)) for d in (1, 2, 3)}
    assert rows[1] < rows[2] <= summary.MAX_TABLE_ROWS < rows[3]
    assert summary.auto_depth(big, a) == 2
    assert summary.auto_depth(big, a, max_rows=rows[3]) is None


def test_depth_folds_groups():
    graph = from_torchvision("resnet18", (3, 64, 64))
    full = summary.render(graph, fmt="table")
    one = summary.render(graph, fmt="table", depth=1)
    assert "downsample" in full and "downsample" not in one
    rows = [line.split()[0] for line in one.splitlines()[4:15]]
    assert rows[:5] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert "layer1" in rows
    assert "Total params: 11,689,512" in one
    two = summary.render(graph, fmt="table", depth=2)
    assert "downsample" not in two and "\n  0 " in two


def test_csv_has_one_row_per_layer():
    graph = lenet()
    rows = list(csv.DictReader(io.StringIO(summary.render(graph, fmt="csv"))))
    assert len(rows) == len(graph)
    c1 = rows[1]
    assert c1["name"] == "features.c1" and c1["output_shape"] == "6x28x28"
    assert c1["params"] == "156" and c1["macs"] == "117600"
    assert (c1["rf_size_h"], c1["rf_jump_w"], c1["rf_global"]) == ("5", "1", "false")


def test_problems_are_listed_in_the_table():
    graph = lenet()
    graph["classifier.f5"].params["in_features"] = 300
    text = summary.render(graph, fmt="table")
    assert "Problems:" in text and "in_features should be 400" in text


def test_sources(tmp_path):
    path = tmp_path / "lenet.json"
    lenet().save(path)
    graph = sources.load_source(str(path))
    assert graph == lenet()
    assert sources.load_source(str(path), (1, 28, 28)).input_shape == (1, 28, 28)
    assert sources.load_source("torchvision:squeezenet1_1").input_shape == (3, 224, 224)
    model_file = tmp_path / "net.py"
    model_file.write_text(
        "from torch import nn\n"
        "class Net(nn.Sequential):\n"
        "    input_shape = (1, 8, 8)\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Conv2d(1, 2, 3), nn.ReLU())\n"
    )
    assert analyse(sources.load_source(f"{model_file}:Net")).nodes["0"].output_shape == (2, 6, 6)
    assert sources.load_source(f"{model_file}:Net", (1, 10, 10)).input_shape == (1, 10, 10)


def test_zoo_source():
    if "lenet5" not in sources.zoo_names():
        pytest.skip("the zoo has no lenet5 yet")
    graph = sources.load_source("lenet5")
    assert analyse(graph).ok


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("resnet5O", r"Did you mean .*resnet50"),
        ("torchvision:resnet5O", "did you mean resnet50"),
        ("missing.json", "no such architecture file"),
        ("model.py", "name the model class or factory"),
        ("nowhere.py:Net", "no such file"),
    ],
)
def test_source_errors(spec, needle):
    with pytest.raises(CnnvizError, match=needle):
        summary.main(spec, None, None, "table")


def test_bad_format_and_depth():
    with pytest.raises(CnnvizError, match="unknown format"):
        summary.main("torchvision:alexnet", None, None, "xml")
    with pytest.raises(CnnvizError, match="depth"):
        summary.render(lenet(), fmt="table", depth=0)
