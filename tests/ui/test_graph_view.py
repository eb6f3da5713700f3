"""The graph view: what it draws, selection, opening and closing groups, find, keys, zoom."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QContextMenuEvent, QWheelEvent

from cnnviz.core.analysis import analyse
from cnnviz.core.graph import ArchGraph
from cnnviz.core.layout import collapse_to_depth, layout
from cnnviz.core.sources import load_source
from cnnviz.ui.graph_items import LAYOUT_GAPS, card_size, card_text
from cnnviz.ui.graph_view import GraphView, initial_depth
from tests.core.test_layout import assert_side_by_side, assert_valid, edges_through_boxes

_cache: dict[tuple[str, str], tuple[ArchGraph, object]] = {}


def model(name: str, size: str = "original"):
    if (name, size) not in _cache:
        g = load_source(name, size=size)
        _cache[(name, size)] = (g, analyse(g))
    return _cache[(name, size)]


@pytest.fixture
def view(qtbot) -> GraphView:
    v = GraphView()
    qtbot.addWidget(v)
    v.resize(900, 700)
    v.show()
    qtbot.waitExposed(v)
    return v


def viewport_point(v: GraphView, item_id: str) -> QPoint:
    card = v.graph_scene.cards[item_id]
    it = card.item
    return v.mapFromScene(QPointF(it.cx, it.y + it.height / 2))


def show_card(v: GraphView, item_id: str) -> QPoint:
    v.set_zoom(1.0)
    v.centerOn(v.graph_scene.cards[item_id].item.cx, v.graph_scene.cards[item_id].item.y)
    return viewport_point(v, item_id)


# ----------------------------------------------------------------------------- drawing
def test_lenet5_every_node_is_a_card_with_its_numbers(view):
    g, a = model("lenet5")
    view.set_model(g, a)
    assert set(view.graph_scene.cards) == set(g.nodes)  # 13 layers: opens fully
    c1 = view.graph_scene.cards["features.c1"].text
    # by hand: a 32x32 image through a 5x5 convolution with 6 filters gives 6 maps of 28x28
    assert c1.title == "c1" and c1.lines == ("5×5 conv, 6", "6×28×28")
    assert c1.family == "convolution"
    s2 = view.graph_scene.cards["features.s2"].text
    assert s2.lines == ("2×2 max pool, /2", "6×14×14") and s2.family == "pooling"
    assert view.graph_scene.cards["classifier.f6"].text.lines == ("fully connected, 84", "84")
    # every edge has its arrowhead on the target and one bundle per source
    arrows = sum(len(c.arrows) for c in view.graph_scene.cards.values())
    assert arrows == len(view.graph_scene.layout.edges) == len(g) - 1  # a chain
    assert set(view.graph_scene.bundles) == {e.source for e in view.graph_scene.layout.edges}
    # the tensor that leaves c1 is written beside its edge
    assert [t for _, _, t in view.graph_scene.cards["features.c1"].labels] == ["6×28×28"]
    assert view.graph_scene.families()[:3] == ["convolution", "pooling", "activation"]


def test_nodes_with_errors_are_drawn_as_errors(view):
    g = ArchGraph("broken")
    g.add_input("x", (3, 16, 16))
    g.add("conv", "conv2d", ["x"], in_channels=4, out_channels=8, kernel_size=3)
    g.add("relu", "relu", ["conv"])
    a = analyse(g)
    view.set_model(g, a)
    card = view.graph_scene.cards["conv"]
    assert card.text.error and a["conv"].error in card.text.tooltip
    assert view.tooltip_at(viewport_point(view, "conv")) == card.text.tooltip
    assert not view.graph_scene.cards["relu"].text.error  # downstream: unknown, not wrong
    assert view.graph_scene.cards["relu"].text.lines[-1] == "?"


def test_initial_depth_keeps_the_first_view_small():
    assert initial_depth(model("lenet5")[0]) is None
    g = model("resnet50")[0]
    d = initial_depth(g)
    lay = layout(g, collapse_to_depth(g, d))
    assert len(lay.items) <= 40 < len(layout(g, collapse_to_depth(g, d + 1)).items)


# ----------------------------------------------------------------------------- selection
def test_click_selects_and_background_click_clears(view, qtbot):
    g, a = model("lenet5")
    view.set_model(g, a)
    pos = show_card(view, "features.c3")
    with qtbot.waitSignal(view.sig_selected) as sig:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert sig.args == ["features.c3", False]
    assert view.selected() == "features.c3"
    assert view.graph_scene.cards["features.c3"].selected
    with qtbot.waitSignal(view.sig_selected) as sig:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert sig.args == ["", False] and view.selected() == ""


def test_select_opens_what_hides_the_node_and_does_not_emit(view, qtbot):
    g, a = model("googlenet")
    view.set_model(g, a, depth=0)
    name = "inception4c.branch2.1.conv"
    assert name not in view.graph_scene.cards
    with qtbot.assertNotEmitted(view.sig_selected):
        assert view.select(name)
    assert name in view.graph_scene.cards and view.graph_scene.cards[name].selected
    assert {"inception4c", "inception4c.branch2"} <= set(view.graph_scene.frames)
    assert "inception4b" in view.graph_scene.cards  # the rest stays closed
    assert not view.select("no.such.layer")


def test_context_menu_names_the_item(view, qtbot):
    g, a = model("lenet5")
    view.set_model(g, a)
    pos = show_card(view, "classifier.f6")
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, view.viewport().mapToGlobal(pos))
    with qtbot.waitSignal(view.sig_context_menu) as sig:
        view.contextMenuEvent(event)
    assert sig.args[:2] == ["classifier.f6", False]


# ----------------------------------------------------------------------------- open and close
def test_double_click_opens_a_block_in_place_and_closes_it_again(view, qtbot):
    g, a = model("googlenet")
    view.set_model(g, a, depth=0)
    view.set_zoom(0.8)
    before = show_card(view, "inception3a")
    top = view.mapFromScene(
        QPointF(
            view.graph_scene.cards["inception3a"].item.cx,
            view.graph_scene.cards["inception3a"].item.y,
        )
    )
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=before)
    assert "inception3a" in view.graph_scene.frames
    assert "inception3a" not in view.graph_scene.cards
    assert "inception3b" in view.graph_scene.cards
    f = view.graph_scene.frames["inception3a"].frame
    now = view.mapFromScene(QPointF(f.x + f.width / 2, f.y))
    assert abs(now.x() - top.x()) <= 2 and abs(now.y() - top.y()) <= 2  # kept in place
    # the four branches, side by side
    assert_side_by_side(
        [view.graph_scene.cards[f"inception3a.branch{k}"].item for k in range(1, 5)]
    )
    # double-click on the frame's empty corner closes it again
    corner = view.mapFromScene(QPointF(f.x + 4, f.y + 4))
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=corner)
    assert "inception3a" in view.graph_scene.cards and "inception3a" not in view.graph_scene.frames


def test_expand_all_and_collapse_to_depth(view):
    g, a = model("resnet18", "teaching")
    view.set_model(g, a, depth=1)
    runs = [c.item for c in view.graph_scene.cards.values() if c.item.repeat > 1]
    assert runs and all(c.kind == "group" for c in runs)
    view.expand_all()
    assert set(view.graph_scene.cards) == set(g.nodes)
    view.collapse_to_depth(0)
    groups = {c.item.group for c in view.graph_scene.cards.values() if c.is_group}
    assert groups == {"layer1", "layer2", "layer3", "layer4"}
    assert not view.graph_scene.frames
    assert [a.text() for a in view.depth_menu.actions()][0].startswith("0")


def test_a_repeated_block_unrolls(view):
    g, a = model("resnet50")
    view.set_model(g, a, depth=1)
    block = view.graph_scene.cards["layer3.1"]
    assert block.item.repeat == 5 and block.text.repeat == 5
    assert view.toggle("layer3.1")
    ids = set(view.graph_scene.cards)
    assert {f"layer3.{k}" for k in range(1, 6)} <= ids
    assert all(view.graph_scene.cards[f"layer3.{k}"].item.repeat == 1 for k in range(1, 6))
    assert view.graph_scene.cards["layer2.1"].item.repeat == 3  # other runs stay merged


def test_refresh_keeps_what_is_open_and_the_viewport(view):
    g, a = model("googlenet")
    view.set_model(g, a, depth=0)
    view.expand("inception4a")
    view.set_zoom(1.0)
    view.centerOn(view.graph_scene.cards["inception4a.branch3"].item.cx, 2000)
    view.select("inception4a.branch3", True)
    h, v = view.horizontalScrollBar().value(), view.verticalScrollBar().value()
    view.refresh(g, a)
    assert "inception4a" in view.graph_scene.frames and "inception4b" in view.graph_scene.cards
    assert (view.horizontalScrollBar().value(), view.verticalScrollBar().value()) == (h, v)
    assert view.selected() == "inception4a.branch3" and view.zoom() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- find and keys
def test_find_by_name_with_completion(view, qtbot):
    g, a = model("googlenet")
    view.set_model(g, a, depth=0)
    qtbot.keyClick(view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.find_bar.isVisible()
    view.find_bar.completer.setCompletionPrefix("branch4.1.c")
    completions = {
        view.find_bar.completer.completionModel().index(i, 0).data()
        for i in range(view.find_bar.completer.completionCount())
    }
    assert "inception5b.branch4.1.conv" in completions
    with qtbot.waitSignal(view.sig_selected) as sig:
        qtbot.keyClicks(view.find_bar.edit, "INCEPTION5B.branch4.1.CONV")
        view.find_bar.completer.popup().hide()
        qtbot.keyClick(view.find_bar.edit, Qt.Key.Key_Return)
    assert sig.args == ["inception5b.branch4.1.conv", False]
    assert "inception5b.branch4.1.conv" in view.graph_scene.cards
    assert not view.find("no such layer") and view.find_bar.status.text()
    assert view.find("maxpool3") and view.selected() == "maxpool3"


def test_arrow_keys_walk_along_the_edges(view, qtbot):
    g, a = model("googlenet")
    view.set_model(g, a, depth=0)
    view.expand("inception3a")
    view.select("maxpool2")
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)  # into one of the four branches
    first = view.selected()
    assert first.startswith("inception3a.branch")
    assert view.graph_scene.layout.item(first).container == "inception3a"
    row = sorted(
        (view.graph_scene.cards[f"inception3a.branch{k}"].item for k in range(1, 5)),
        key=lambda i: i.x,
    )
    k = [i.id for i in row].index(first)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.selected() == row[min(k + 1, 3)].group
    qtbot.keyClick(view, Qt.Key.Key_Left)
    assert view.selected() == row[k].group
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.selected() == "maxpool2"
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.selected() == "conv3"  # maxpool2's only input (a closed block)


# ----------------------------------------------------------------------------- zoom
def test_zoom_keys_wheel_fit_and_level_of_detail(view, qtbot):
    g, a = model("googlenet")
    view.set_model(g, a, depth=None)
    view.set_zoom(1.0)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom() == pytest.approx(1.25)
    qtbot.keyClick(view, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom() == pytest.approx(1.0)
    assert not view.graph_scene.sketch_mode
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(
        centre,
        QPointF(view.viewport().mapToGlobal(centre.toPoint())),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    view.wheelEvent(wheel)
    assert view.zoom() == pytest.approx(1.25)  # one notch: one step
    view.set_zoom(1.0)
    view.fit()
    seen = view.mapToScene(view.viewport().rect()).boundingRect()
    assert seen.contains(view.graph_scene.sceneRect().adjusted(1, 1, -1, -1))
    assert view.zoom() < 0.1 and view.graph_scene.sketch_mode  # plain rectangles now
    assert view.overview.isHidden()  # everything is on screen: no overview needed
    view.set_zoom(1.0)
    assert not view.graph_scene.sketch_mode and view.overview.isVisible()


# ------------------------------------------------------------ layout with the real cards
@pytest.mark.parametrize(
    ("name", "depth"), [("googlenet", None), ("googlenet", 0), ("resnet50", 1), ("resnet50", None)]
)
def test_layout_invariants_with_the_views_card_sizes(name, depth):
    g, a = model(name)

    def size(vn):
        return card_size(card_text(vn, g, a), vn.is_group)

    collapsed = collapse_to_depth(g, depth) if depth is not None else set()
    lay = layout(g, collapsed, size, analysis=a, repeat_collapse=depth is not None, **LAYOUT_GAPS)
    assert_valid(lay)
    assert edges_through_boxes(lay) == []
    if name == "googlenet" and depth is None:
        starts = ["inception4a.branch1.conv", "inception4a.branch2.0.conv"]
        starts += ["inception4a.branch3.0.conv", "inception4a.branch4.0"]
        assert_side_by_side([lay.item(n) for n in starts])


# ----------------------------------------------------------------------------- model picker
def test_model_picker_offers_the_classes_of_a_python_file_without_running_it(tmp_path):
    from cnnviz.ui.model_picker import python_candidates

    src = tmp_path / "nets.py"
    src.write_text(
        "import torch.nn as nn\n"
        "raise SystemExit('a parsed file is never run')\n"
        "class Helper:\n    pass\n"
        "class TinyNet(nn.Module):\n    pass\n"
        "def build():\n    return TinyNet()\n"
        "def _private():\n    pass\n"
    )
    assert python_candidates(str(src)) == ["TinyNet", "Helper", "build"]
    (tmp_path / "bad.py").write_text("def (:\n")
    assert python_candidates(str(tmp_path / "bad.py")) == []
    assert python_candidates(str(tmp_path / "missing.py")) == []


# ----------------------------------------------------------------------------- in the window
def test_the_window_shows_the_graph_and_shares_its_selection(qtbot):
    from cnnviz.ui.main_window import MainWindow

    window = MainWindow(model="lenet5")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.core_ready, timeout=60_000)
    view = window.graph_view
    assert window.model_tabs.currentWidget() is view
    assert set(view.graph_scene.cards) == set(window.graph.nodes)
    # graph -> window -> inspector and table
    with qtbot.waitSignal(window.sig_selection_changed) as sig:
        view.sig_selected.emit("features.c3", False)
    assert sig.args == ["features.c3", False]
    assert "features.c3" in window.inspector.toPlainText()
    assert window.layer_table.currentItem() is window.layer_table.items["features.c3"]
    # window -> graph
    window.select_item("classifier", True)
    assert view.selected() == "classifier" and view.selected_is_group()
    texts = [a.text() for a in window.view_menu.actions()]
    assert {"Zoom &in", "&Fit to window", "&Expand all", "&Find layer…"} <= set(texts)
    assert window.act_export_image in window.file_menu.actions()
    window.close()
