"""layout(): geometric invariants on real zoo graphs, collapsing, repeats and stability."""

from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.core.analysis import analyse
from cnnviz.core.graph import ArchGraph
from cnnviz.core.layout import (
    Layout,
    VisibleNode,
    collapse_to_depth,
    default_node_size,
    expand_all,
    find_repeats,
    layout,
)
from cnnviz.core.ops import shape_str
from cnnviz.core.sources import load_source

MARGIN = 4.0  # the least gap the tests accept between two node boxes
EPS = 1e-6

_cache: dict[str, ArchGraph] = {}


def zoo(name: str) -> ArchGraph:
    if name not in _cache:
        _cache[name] = load_source(name, size="original")
    return _cache[name]


# ----------------------------------------------------------------------------- checkers
def assert_no_overlap(lay: Layout) -> None:
    items = sorted(lay.items, key=lambda i: i.y)
    for k, a in enumerate(items):
        for b in items[k + 1 :]:
            if b.y >= a.bottom + MARGIN:
                break
            apart_x = a.x + a.width + MARGIN <= b.x + EPS or b.x + b.width + MARGIN <= a.x + EPS
            apart_y = a.bottom + MARGIN <= b.y + EPS or b.bottom + MARGIN <= a.y + EPS
            assert apart_x or apart_y, f"{a.id} and {b.id} overlap"


def assert_edges_downward(lay: Layout) -> None:
    for e in lay.edges:
        src, dst = lay.item(e.source), lay.item(e.target)
        pts = e.points
        assert len(pts) >= 2
        assert pts[0][1] == pytest.approx(src.bottom), e
        assert src.x - EPS <= pts[0][0] <= src.x + src.width + EPS, e
        assert pts[-1][1] == pytest.approx(dst.y), e
        assert dst.x - EPS <= pts[-1][0] <= dst.x + dst.width + EPS, e
        assert dst.y > src.bottom, e
        for (_, y0), (_, y1) in itertools.pairwise(pts):
            assert y1 >= y0 - EPS, e


def _segment_hits_box(p0, p1, x0, y0, x1, y1) -> bool:
    """Liang-Barsky: does the segment p0-p1 pass through the open rectangle?"""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    lo, hi = 0.0, 1.0
    for p, q in ((-dx, p0[0] - x0), (dx, x1 - p0[0]), (-dy, p0[1] - y0), (dy, y1 - p0[1])):
        if abs(p) < 1e-12:
            if q <= 0:
                return False
            continue
        t = q / p
        if p < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo >= hi:
            return False
    return True


def edges_through_boxes(lay: Layout, which=None) -> list[str]:
    """Edges (of ``which``, default all) with a segment through a box other than its ends."""
    items = sorted(lay.items, key=lambda i: i.y)
    tops = [i.y for i in items]
    tallest = max(i.height for i in items)
    bad = []
    for e in lay.edges:
        if which is not None and not which(e):
            continue
        for p0, p1 in itertools.pairwise(e.points):
            ylo, yhi = min(p0[1], p1[1]), max(p0[1], p1[1])
            start = bisect.bisect_left(tops, ylo - tallest)
            stop = bisect.bisect_right(tops, yhi)
            for it in items[start:stop]:
                if it.id in (e.source, e.target):
                    continue
                shrink = 0.5  # touching a border is not passing through
                if _segment_hits_box(
                    p0,
                    p1,
                    it.x + shrink,
                    it.y + shrink,
                    it.x + it.width - shrink,
                    it.bottom - shrink,
                ):
                    bad.append(f"{e.source}->{e.target} through {it.id}")
    return bad


def assert_frames_nest(lay: Layout) -> None:
    frames = {f.group: f for f in lay.frames}

    def inside(ax, ay, aw, ah, f) -> bool:
        return (
            f.x - EPS <= ax
            and f.y - EPS <= ay
            and ax + aw <= f.x + f.width + EPS
            and ay + ah <= f.y + f.height + EPS
        )

    for it in lay.items:
        g = it.container
        while g:
            assert inside(it.x, it.y, it.width, it.height, frames[g]), (it.id, g)
            g = g.rsplit(".", 1)[0] if "." in g else ""
    for f in lay.frames:
        parent = f.group.rsplit(".", 1)[0] if "." in f.group else ""
        if parent:
            assert inside(f.x, f.y, f.width, f.height, frames[parent]), (f.group, parent)
    by_parent: dict[str, list] = {}
    for f in lay.frames:
        by_parent.setdefault(f.group.rsplit(".", 1)[0] if "." in f.group else "", []).append(f)
    for sibs in by_parent.values():
        for a, b in itertools.combinations(sibs, 2):
            apart = (
                a.x + a.width <= b.x + EPS
                or b.x + b.width <= a.x + EPS
                or a.y + a.height <= b.y + EPS
                or b.y + b.height <= a.y + EPS
            )
            assert apart, (a.group, b.group)


def assert_valid(lay: Layout) -> None:
    assert_no_overlap(lay)
    assert_edges_downward(lay)
    assert_frames_nest(lay)
    assert lay.width >= max(i.x + i.width for i in lay.items)
    assert lay.height >= max(i.bottom for i in lay.items)


def visible_pairs_by_hand(graph: ArchGraph, owner) -> set[tuple[str, str]]:
    """(source item, target item) pairs: every graph edge mapped through ``owner``."""
    pairs = set()
    for n in graph:
        for i in n.inputs:
            a, b = owner(i), owner(n.name)
            if a != b:
                pairs.add((a, b))
    return pairs


# ----------------------------------------------------------------------------- small graphs
def test_lenet5_expanded_and_collapsed():
    g = zoo("lenet5")
    full = layout(g, expand_all(), analysis=analyse(g))
    assert_valid(full)
    assert {i.id for i in full.items} == set(g.nodes)
    assert len(full.edges) == 12
    assert {f.group for f in full.frames} == {"features", "classifier"}
    # a chain is one straight column: every node has the same centre
    assert len({round(i.cx, 6) for i in full.items}) == 1
    # tensor shapes on the edges, by hand: 1x32x32 -> C1 (5x5, 6 maps) -> 6x28x28
    c1 = next(e for e in full.edges if e.source == "features.c1")
    assert c1.shape == "(6, 28, 28)"
    flat = next(e for e in full.edges if e.source == "flatten")
    assert flat.shape == "(120)"  # shape_str writes 1-d shapes without a comma

    small = layout(g, collapse_to_depth(g, 0))
    assert_valid(small)
    assert [i.id for i in small.items] == ["input", "features", "flatten", "classifier"]
    assert [i.kind for i in small.items] == ["input", "group", "flatten", "group"]
    assert small.item("features").nodes == tuple(g.nodes_in_group("features"))
    assert [(e.source, e.target) for e in small.edges] == [
        ("input", "features"),
        ("features", "flatten"),
        ("flatten", "classifier"),
    ]
    assert small.frames == ()
    # each item is one layer below the one before
    assert [i.layer for i in small.items] == [0, 1, 2, 3]


def test_collapse_helpers():
    g = zoo("resnet50")
    assert expand_all() == set()
    assert collapse_to_depth(g, 0) == set(g.groups())
    one = collapse_to_depth(g, 1)
    assert "layer1" not in one and "layer1.0" in one and "layer1.0.downsample" in one


def test_node_size_is_used():
    g = zoo("lenet5")
    seen: list[VisibleNode] = []

    def size(vn: VisibleNode) -> tuple[float, float]:
        seen.append(vn)
        return (200.0, 50.0) if vn.is_group else (100.0, 20.0)

    lay = layout(g, {"features"}, size)
    assert {v.id for v in seen} == {i.id for i in lay.items}
    assert lay.item("features").width == 200 and lay.item("features").height == 50
    assert lay.item("flatten").width == 100 and lay.item("flatten").height == 20
    assert default_node_size(seen[0])[0] > 0


def test_parallel_edges_merge_with_count():
    g = ArchGraph("t")
    g.add_input("x", (3, 8, 8))
    g.add("a.c1", "relu", ["x"], group="a")
    g.add("a.c2", "relu", ["x"], group="a")
    g.add("a.s", "add", ["a.c1", "a.c2"], group="a")
    g.add("y", "add", ["a.c1", "a.s"])
    g.add("z", "add", ["y", "y"])
    lay = layout(g, {"a"})
    counts = {(e.source, e.target): e.count for e in lay.edges}
    assert counts == {("x", "a"): 2, ("a", "y"): 2, ("y", "z"): 2}
    assert_valid(lay)
    # expanded: the two edges into the group enter by one port on the frame's top
    lay = layout(g)
    assert_valid(lay)
    frame = lay.frames[0]
    ends = {e.points[0] for e in lay.edges if e.source == "x"}
    assert len(ends) == 1
    crossing = [
        p for e in lay.edges if e.source == "x" for p in e.points if abs(p[1] - frame.y) < EPS
    ]
    assert len({p[0] for p in crossing}) == 1


def test_block_named_like_a_node_gets_its_own_id():
    g = ArchGraph("clash")
    g.add_input("x", (3, 8, 8))
    g.add("a", "relu", ["x"])
    g.add("a.y", "relu", ["a"], group="a")
    lay = layout(g, {"a"})
    assert [i.id for i in lay.items] == ["x", "a", "a/"]
    assert lay.item("a/").group == "a" and lay.item("a/").kind == "group"
    assert lay.item_of_node("a.y").id == "a/" and lay.item_of_node("a").id == "a"
    assert [(e.source, e.target) for e in lay.edges] == [("x", "a"), ("a", "a/")]


def test_broken_graphs_still_lay_out():
    g = ArchGraph("cyc")
    g.add_input("x", (3, 8, 8))
    g.add("a", "relu", ["x", "c"])
    g.add("b", "relu", ["a"])
    g.add("c", "relu", ["b", "missing"])
    lay = layout(g)
    assert {i.id for i in lay.items} == {"x", "a", "b", "c"}
    assert_no_overlap(lay)
    assert layout(ArchGraph("empty")).items == ()


# ----------------------------------------------------------------------------- GoogLeNet
INCEPTION_BRANCH_STARTS = (
    "inception3a.branch1.conv",
    "inception3a.branch2.0.conv",
    "inception3a.branch3.0.conv",
    "inception3a.branch4.0",
)


def assert_side_by_side(boxes) -> None:
    assert len({round(b.y, 6) for b in boxes}) == 1
    boxes = sorted(boxes, key=lambda b: b.x)
    for a, b in itertools.pairwise(boxes):
        assert a.x + a.width + MARGIN <= b.x


def test_googlenet_collapsed_modules():
    g = zoo("googlenet")
    collapsed = collapse_to_depth(g, 0)
    lay = layout(g, collapsed)
    assert_valid(lay)

    def owner(name: str) -> str:
        grp = g[name].group
        return grp.split(".")[0] if grp else name

    got = {(e.source, e.target) for e in lay.edges}
    assert got == visible_pairs_by_hand(g, owner)
    assert ("maxpool2", "inception3a") in got and ("inception3a", "inception3b") in got
    assert all(lay.item(i).kind == "group" for i in ("inception3a", "inception5b"))


def test_googlenet_one_module_expanded_has_branches_side_by_side():
    g = zoo("googlenet")
    collapsed = collapse_to_depth(g, 0) - {"inception3a"}
    lay = layout(g, collapsed)
    assert_valid(lay)
    branches = [lay.item(f"inception3a.branch{k}") for k in range(1, 5)]
    assert all(b.kind == "group" for b in branches)
    assert_side_by_side(branches)
    # the module's input fans out into the four blocks; the blocks meet at its concatenation
    cat = next(i for i in lay.items if i.container == "inception3a" and i.kind == "cat")
    assert {e.source for e in lay.edges if e.target == cat.id} == {b.id for b in branches}
    assert {e.target for e in lay.edges if e.source == "maxpool2"} == {b.id for b in branches}

    def owner(name: str) -> str:
        grp = g[name].group
        if grp.startswith("inception3a."):
            return ".".join(grp.split(".")[:2])
        return grp.split(".")[0] if grp and grp != "inception3a" else name

    assert {(e.source, e.target) for e in lay.edges} == visible_pairs_by_hand(g, owner)


def test_googlenet_fully_expanded():
    g = zoo("googlenet")
    lay = layout(g, analysis=analyse(g))
    assert_valid(lay)
    assert edges_through_boxes(lay) == []
    assert_side_by_side([lay.item(n) for n in INCEPTION_BRANCH_STARTS])
    assert len(lay.items) == len(g)


# ----------------------------------------------------------------------------- ResNet-50
def test_resnet50_fully_expanded():
    g = zoo("resnet50")
    lay = layout(g)
    assert_valid(lay)
    # shortcuts (edges into the residual adds that span several layers) avoid every box,
    # and so does every other edge
    shortcuts = [
        e for e in lay.edges if lay.item(e.target).kind == "add" and not e.source.endswith(".bn3")
    ]
    assert len(shortcuts) == 16  # one per bottleneck block: 3 + 4 + 6 + 3
    assert edges_through_boxes(lay, lambda e: e in shortcuts) == []
    assert edges_through_boxes(lay) == []
    # the identity shortcut of layer1.1 runs in a channel right of the block's main path
    sc = next(
        e for e in lay.edges if e.source == "layer1.0.relu_2" and lay.item(e.target).kind == "add"
    )
    main = [i for i in lay.items if i.container == "layer1.1"]
    first, last = lay.item("layer1.1.conv1"), lay.item("layer1.1.bn3")
    beside = [x for x, y in sc.points if first.y <= y <= last.bottom]
    assert beside and min(beside) > max(i.x + i.width for i in main)
    # the main path of a bottleneck block is one straight column
    chain = ["conv1", "bn1", "relu", "conv2", "bn2", "relu_1", "conv3", "bn3"]
    assert len({round(lay.item(f"layer2.1.{n}").cx, 6) for n in chain}) == 1
    # a projection shortcut sits beside the main path, on the side its lane runs, and hangs
    # down beside it rather than stretching the main path's rows
    ds = lay.item("layer2.0.downsample.0")
    assert ds.x > lay.item("layer2.0.conv1").x + lay.item("layer2.0.conv1").width
    path = [lay.item(f"layer2.0.{n}") for n in chain]
    gaps = {round(b.y - a.bottom, 6) for a, b in itertools.pairwise(path)}
    assert len(gaps) == 1
    assert lay.item("layer2.0.downsample.1").bottom > lay.item("layer2.0.bn1").y


def test_resnet50_repeat_collapse():
    g = zoo("resnet50")
    runs = find_repeats(g)
    assert ("layer3.1", "layer3.2", "layer3.3", "layer3.4", "layer3.5") in runs
    assert set(runs) == {
        ("layer1.1", "layer1.2"),
        ("layer2.1", "layer2.2", "layer2.3"),
        ("layer3.1", "layer3.2", "layer3.3", "layer3.4", "layer3.5"),
        ("layer4.1", "layer4.2"),
    }
    # by hand: the merged blocks really are the same operations with the same parameters
    for run in runs:
        seqs = [[(g[n].kind, g[n].params) for n in g.nodes_in_group(grp)] for grp in run]
        assert all(s == seqs[0] for s in seqs)

    lay = layout(g, collapse_to_depth(g, 1), repeat_collapse=True)
    assert_valid(lay)
    block = lay.item("layer3.1")
    assert block.repeat == 5 and "x5" in block.label and block.kind == "group"
    assert lay.repeats["layer3.1"] == ("layer3.1", "layer3.2", "layer3.3", "layer3.4", "layer3.5")
    assert set(block.nodes) == {n for k in range(1, 6) for n in g.nodes_in_group(f"layer3.{k}")}
    ids = {i.id for i in lay.items}
    assert not ids & {"layer3.2", "layer3.3", "layer3.4", "layer3.5"}
    assert "layer3.0" in ids and lay.item("layer3.0").repeat == 1
    pairs = {(e.source, e.target) for e in lay.edges}
    assert ("layer3.0", "layer3.1") in pairs and ("layer3.1", "layer4.0") in pairs
    # without the option nothing merges
    plain = layout(g, collapse_to_depth(g, 1))
    assert {"layer3.2", "layer3.5"} <= {i.id for i in plain.items} and not plain.repeats


def _order_facts(lay: Layout, ignore) -> tuple[set, set]:
    """Pairs (a above b) and (a left of b), judged where the two meet in the group tree.

    For items a and b, take the two children of their deepest common container that hold them
    (an item or an expanded group's frame): those are in different layers (one above the other)
    or side by side in one layer (one left of the other). Only these relations are promised to
    survive opening another group: two nodes in two parallel boxes have no fixed vertical order.
    """
    frames = {f.group: f for f in lay.frames}
    items = [i for i in lay.items if not ignore(i)]

    def chain(i) -> list[str]:
        parts = i.container.split(".") if i.container else []
        return [".".join(parts[: k + 1]) for k in range(len(parts))]

    chains = {i.id: chain(i) for i in items}

    def rect(i, ch: list[str], k: int) -> tuple[float, float, float, float]:
        if k < len(ch):
            f = frames[ch[k]]
            return f.x, f.y, f.x + f.width, f.y + f.height
        return i.x, i.y, i.x + i.width, i.bottom

    above, left = set(), set()
    for a, b in itertools.permutations(items, 2):
        ca, cb = chains[a.id], chains[b.id]
        k = 0
        while k < len(ca) and k < len(cb) and ca[k] == cb[k]:
            k += 1
        ax0, ay0, ax1, ay1 = rect(a, ca, k)
        bx0, by0, bx1, by1 = rect(b, cb, k)
        if ay1 <= by0 + EPS:
            above.add((a.id, b.id))
        elif by1 > ay0 + EPS and ax1 <= bx0 + EPS:
            left.add((a.id, b.id))
    return above, left


@pytest.mark.parametrize(
    ("name", "depth", "group"),
    [("resnet50", 1, "layer2.1"), ("googlenet", 0, "inception4a"), ("resnet50", 0, "layer3")],
)
def test_expanding_a_group_keeps_the_order_of_the_rest(name, depth, group):
    g = zoo(name)
    before_set = collapse_to_depth(g, depth)
    after_set = before_set - {group}
    before = layout(g, before_set)
    after = layout(g, after_set)
    assert_valid(after)
    prefix = group + "."

    def ignore(i) -> bool:
        return i.id == group or i.group == group or i.group.startswith(prefix)

    above0, left0 = _order_facts(before, ignore)
    above1, left1 = _order_facts(after, ignore)
    assert above0 <= above1
    assert left0 == left1
    # things above the group do not move up or down at all
    top = before.item(group).y
    for i in before.items:
        if not ignore(i) and i.y <= top:
            assert after.item(i.id).y == pytest.approx(i.y), i.id
    # and the group only grew: what is below it moved down by the same amount
    below = [i for i in before.items if not ignore(i) and i.y > before.item(group).bottom]
    shifts = {round(after.item(i.id).y - i.y, 6) for i in below if i.container == ""}
    assert len(shifts) <= 1


# ----------------------------------------------------------------------------- DenseNet
def test_densenet121_fully_expanded():
    g = zoo("densenet121")
    lay = layout(g)
    assert_valid(lay)
    assert edges_through_boxes(lay) == []
    # every dense connection is drawn: one edge per (source, cat) pair of the graph
    pairs = {(e.source, e.target) for e in lay.edges}
    assert pairs == visible_pairs_by_hand(g, lambda n: n)
    # each dense block is much narrower than its connection count: lanes are shared by source
    block = next(f for f in lay.frames if f.group == "features.denseblock3")
    assert block.width < 1000


def test_densenet121_collapsed_blocks():
    g = zoo("densenet121")
    lay = layout(g, collapse_to_depth(g, 1))
    assert_valid(lay)

    def owner(name: str) -> str:
        grp = g[name].group
        return ".".join(grp.split(".")[:2]) if grp.count(".") >= 1 else name

    assert {(e.source, e.target) for e in lay.edges} == visible_pairs_by_hand(g, owner)


def test_edge_shapes_come_from_the_analysis():
    g = zoo("resnet50")
    an = analyse(g)
    lay = layout(g, collapse_to_depth(g, 1), analysis=an)
    for e in lay.edges:
        src = lay.item(e.source)
        if src.kind != "group":
            assert e.shape == shape_str(an[src.id].output_shape)
    e = next(e for e in lay.edges if e.source == "layer1.2")
    assert e.shape == "(256, 56, 56)"  # torchvision: layer1 ends with 256 maps at 56x56


# ----------------------------------------------------------------------------- any collapse set
@pytest.mark.parametrize("name", ["googlenet", "resnet50"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_collapse_set_is_valid_and_expanding_is_stable(name, data):
    g = zoo(name)
    groups = g.groups()
    collapsed = set(data.draw(st.lists(st.sampled_from(groups), max_size=12), label="collapsed"))
    repeat = data.draw(st.booleans(), label="repeat_collapse")
    lay = layout(g, collapsed, repeat_collapse=repeat)
    assert_valid(lay)
    assert edges_through_boxes(lay) == []
    # every node is drawn exactly once
    drawn = [n for i in lay.items for n in i.nodes]
    assert sorted(drawn) == sorted(g.nodes)
    # open one visible block: the rest keeps its order
    blocks = [i for i in lay.items if i.kind == "group" and i.repeat == 1]
    if not blocks:
        return
    block = data.draw(st.sampled_from(blocks), label="expanded")
    after = layout(g, collapsed - {block.group}, repeat_collapse=repeat)
    assert_valid(after)
    prefix = block.group + "."

    def ignore(i) -> bool:
        return i.id == block.id or i.group == block.group or i.group.startswith(prefix)

    above0, left0 = _order_facts(lay, ignore)
    above1, left1 = _order_facts(after, ignore)
    # A training-only side branch (GoogLeNet's auxiliary classifiers) ends nowhere on the main
    # path: it hangs beside it, and opening a block in it lengthens it past main-path items
    # that it used to end above, and it comes beside others. Its order against the main path
    # is therefore not promised.
    aux = {i.id for i in lay.items if all(g[n].training_only for n in i.nodes)}

    def promised(pairs: set) -> set:
        return {(a, b) for a, b in pairs if (a in aux) == (b in aux)}

    above0, left0, above1, left1 = map(promised, (above0, left0, above1, left1))
    assert above0 <= above1
    assert left0 == left1


def test_an_unrolled_run_shows_its_groups_and_known_runs_are_used():
    g = zoo("resnet50")
    runs = find_repeats(g)
    collapsed = collapse_to_depth(g, 1)
    merged = layout(g, collapsed, repeat_collapse=True, runs=runs)
    assert merged.item("layer3.1").repeat == 5
    opened = layout(g, collapsed, repeat_collapse=True, unrolled={"layer3.1"}, runs=runs)
    assert_valid(opened)
    assert {f"layer3.{k}" for k in range(1, 6)} <= {i.id for i in opened.items}
    assert opened.item("layer2.1").repeat == 3 and "layer3.1" not in opened.repeats
    # runs handed in are the runs used: none given, none merged
    assert not layout(g, collapsed, repeat_collapse=True, runs=[]).repeats
