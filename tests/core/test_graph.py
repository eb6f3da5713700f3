"""The ArchGraph: structure, validation and JSON files."""

from __future__ import annotations

import json

import pytest

from cnnviz.core.graph import SCHEMA_VERSION, ArchGraph, GraphFormatError, Node
from cnnviz.errors import CnnvizError


def lenet() -> ArchGraph:
    g = ArchGraph("lenet5")
    g.add_input("input", (1, 32, 32))
    g.add(
        "features.c1", "conv2d", ["input"], "features", in_channels=1, out_channels=6, kernel_size=5
    )
    g.add("features.relu1", "relu", ["features.c1"], "features")
    g.add("features.s2", "max_pool2d", ["features.relu1"], "features", kernel_size=2)
    g.add(
        "features.c3",
        "conv2d",
        ["features.s2"],
        "features",
        in_channels=6,
        out_channels=16,
        kernel_size=5,
    )
    g.add("features.relu3", "relu", ["features.c3"], "features")
    g.add("features.s4", "max_pool2d", ["features.relu3"], "features", kernel_size=2)
    g.add("flatten", "flatten", ["features.s4"])
    g.add("classifier.f5", "linear", ["flatten"], "classifier", in_features=400, out_features=120)
    g.add("classifier.relu5", "relu", ["classifier.f5"], "classifier")
    g.add(
        "classifier.f6",
        "linear",
        ["classifier.relu5"],
        "classifier",
        in_features=120,
        out_features=84,
    )
    g.add("classifier.relu6", "relu", ["classifier.f6"], "classifier")
    g.add(
        "classifier.out",
        "linear",
        ["classifier.relu6"],
        "classifier",
        in_features=84,
        out_features=10,
    )
    g.outputs = ["classifier.out"]
    return g


def test_structure_queries():
    g = lenet()
    assert g.input_shape == (1, 32, 32)
    assert g.topological_order()[0] == "input"
    assert g.successors("features.s2") == ["features.c3"]
    assert g.predecessors("flatten") == ["features.s4"]
    assert g.groups() == ["features", "classifier"]
    assert g.nodes_in_group("classifier")[0] == "classifier.f5"
    assert "flatten" in g.nodes_in_group("", recursive=False)
    assert g.validate() == []
    g.input_shape = (1, 28, 28)
    assert g["input"].params["shape"] == [1, 28, 28]


def test_nested_groups_include_ancestors():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add(
        "layer1.0.conv1",
        "conv2d",
        ["input"],
        "layer1.0",
        in_channels=3,
        out_channels=3,
        kernel_size=1,
    )
    assert g.groups() == ["layer1", "layer1.0"]
    assert g.nodes_in_group("layer1") == ["layer1.0.conv1"]
    assert g.nodes_in_group("layer1", recursive=False) == []


def test_topological_order_does_not_trust_insertion_order():
    g = ArchGraph()
    g.add("b", "relu", ["a"])
    g.add_input("a", (3, 4, 4))
    g.add("c", "add", ["a", "b"])
    assert g.topological_order() == ["a", "b", "c"]


def test_copy_and_equality():
    g = lenet()
    h = g.copy()
    assert h == g and h is not g
    h["features.c1"].params["kernel_size"] = 3
    assert h != g
    assert g["features.c1"].params["kernel_size"] == 5


def test_json_round_trip(tmp_path):
    g = lenet()
    path = tmp_path / "lenet.json"
    g.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["input_shape"] == [1, 32, 32]
    again = ArchGraph.load(path)
    assert again == g
    assert again.outputs == ["classifier.out"]
    assert again["features.c1"].group == "features"


def test_json_round_trip_keeps_tuples_equal():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add("c", "conv2d", ["input"], in_channels=3, out_channels=3, kernel_size=(3, 1))
    assert ArchGraph.from_json(g.to_json()) == g


@pytest.mark.parametrize(
    "data,needle",
    [
        ([], "expected a JSON object"),
        ({"nodes": []}, "no 'schema_version'"),
        ({"schema_version": 2, "nodes": []}, "newer cnnviz (schema_version 2"),
        ({"schema_version": "1", "nodes": []}, "must be an integer"),
        ({"schema_version": 1}, "'nodes' must be a list"),
        ({"schema_version": 1, "nodes": [{"kind": "relu"}]}, "node 0 has no 'name'"),
        ({"schema_version": 1, "nodes": [{"name": "a", "kind": 3}]}, "'kind' must be a string"),
        (
            {"schema_version": 1, "nodes": [{"name": "a", "kind": "relu", "inputs": "b"}]},
            "'inputs' must be a list",
        ),
        (
            {"schema_version": 1, "nodes": [{"name": "a", "kind": "relu", "params": []}]},
            "'params' must be an object",
        ),
        ({"schema_version": 1, "nodes": [{"name": "a", "kind": "relu"}] * 2}, "appears twice"),
    ],
)
def test_malformed_files_raise_graph_format_error(tmp_path, data, needle):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GraphFormatError) as e:
        ArchGraph.load(path)
    assert needle in str(e.value)
    assert isinstance(e.value, CnnvizError)


def test_not_json_at_all(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(GraphFormatError, match="not valid JSON"):
        ArchGraph.load(path)
    with pytest.raises(GraphFormatError, match="cannot read"):
        ArchGraph.load(tmp_path / "missing.json")


def test_validate_names_node_and_problem():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add("a", "conv2b", ["input"])
    g.add("b", "relu", ["ghost"])
    g.add("c", "conv2d", ["input"], in_channels=3, out_channels=0, kernel_size=3)
    g.add("d", "add", [])
    g.add("e", "relu", ["f"])
    g.add("f", "relu", ["e"])
    g.add("h", "relu", ["input"], inplace=object())
    g.outputs = ["zzz"]
    issues = {(i.node, i.message) for i in g.validate()}
    text = "\n".join(f"{n}: {m}" for n, m in issues)
    assert "a: unknown kind 'conv2b'; did you mean conv2d" in text
    assert "b: input 'ghost' does not exist" in text
    assert "c: out_channels=0 is below the minimum 1" in text
    assert "d: add takes 1 or more inputs, got 0" in text
    assert "cycle through e, f" in text
    assert "h: params.inplace is a object, not a plain JSON value" in text
    assert "output 'zzz' names no node" in text
    with pytest.raises(ValueError, match="cycle"):
        g.topological_order()


def test_duplicate_node_is_refused():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    with pytest.raises(ValueError, match="exists already"):
        g.add_node(Node("input", "relu"))


def test_opaque_module_is_not_serialised():
    g = ArchGraph()
    g.add_input("input", (3, 8, 8))
    g.add_node(
        Node(
            "x",
            "opaque",
            {"type": "Foo", "num_params": 0},
            ["input"],
            module=object(),
            measured_shape=(3, 8, 8),
        )
    )
    data = g.to_dict()
    assert "module" not in data["nodes"][1]
    again = ArchGraph.from_dict(data)
    assert again["x"].measured_shape == (3, 8, 8)
    assert again["x"].module is None
