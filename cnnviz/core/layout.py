"""Layered top-to-bottom drawing coordinates for an :class:`~cnnviz.core.graph.ArchGraph`.

Plain numbers only (no Qt): the graph view turns a :class:`Layout` into scene items.

The drawing is *compound*: every expanded group is laid out on its own, inside a box, and that box
is placed as one unit in its parent's layering. Expanding a group therefore only grows its box and
shifts what comes after it; the layering and the left-to-right order of everything else stay as
they were, so the picture does not reshuffle under the user's eyes.

Inside one box (a *level*) the classic layered (Sugiyama) steps run on the box's children:

1. layers by longest path from the box's entry, sources with no input pulled down next to their
   first consumer;
2. crossing reduction by barycentre sweeps that keep the best order seen;
3. x-coordinates by weighted isotonic regression per layer (pool-adjacent-violators), sweeping
   down and up; the unique longest chain ("spine", e.g. ResNet's main path) gets a large weight
   so it stays a straight column while side branches move;
4. rows as horizontal bands, items aligned on their first inner row; a tall box beside the spine
   (a projection shortcut) hangs down beside the following rows when nothing there is in its way,
   instead of stretching the main path;
5. edges spanning one layer are drawn across the gap between the layers; longer edges run in a
   vertical *lane*: straight down from the source when that column is free (a projection
   shortcut beside the block), otherwise in a channel to the right of everything in the layers
   they pass (identity shortcuts, DenseNet's dense connections). All edges from one source share
   one lane, so a DenseNet block needs one lane per feature map, not one per connection.

Edges that cross a box's border go through *ports*: one entry port on the box's top edge per
outside source and one exit port on its bottom edge per inside source; an edge's polyline is the
concatenation of its pieces in each box it passes.

Coordinates: x grows to the right, y grows downwards (scene convention); every rectangle is given
by its **top-left corner** ``(x, y)`` with ``width`` and ``height``. Edges leave the bottom of
their source and enter the top of their target, so along each polyline y never decreases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cnnviz.core.graph import ArchGraph

if TYPE_CHECKING:
    from cnnviz.core.analysis import Analysis

__all__ = [
    "EdgePath",
    "GroupFrame",
    "Item",
    "Layout",
    "VisibleNode",
    "collapse_to_depth",
    "default_node_size",
    "expand_all",
    "find_repeats",
    "layout",
]

# Weight of a spine item in the x-placement: high enough that side branches always give way.
_SPINE_WEIGHT = 1000.0
_SWEEPS = 4


# --------------------------------------------------------------------------- public results
@dataclass(frozen=True)
class VisibleNode:
    """What the caller's ``node_size`` function is asked about: one item that will be drawn.

    Attributes:
        id: Item id: the node name, or the group path for a collapsed block (the path followed
            by ``"/"`` in the rare case that a node has the same name as the group).
        label: Text to show: the node name without its group prefix, or the group path; a
            repeated run reads ``"layer3.1..5 x5"``.
        kind: The node's operation kind, or ``"group"`` for a collapsed block.
        group: For a node, its group path; for a block, the (first) group it stands for.
        nodes: Names of the graph nodes the item stands for (one for a plain node).
        repeat: How many identical groups a block stands for (1 unless repeat-collapsed).
    """

    id: str
    label: str
    kind: str
    group: str
    nodes: tuple[str, ...]
    repeat: int = 1

    @property
    def is_group(self) -> bool:
        """True for a collapsed block."""
        return self.kind == "group"


@dataclass(frozen=True)
class Item:
    """One drawn box: a node or a collapsed block, with its place.

    Attributes:
        id: As in :class:`VisibleNode`.
        label: As in :class:`VisibleNode`.
        kind: As in :class:`VisibleNode`.
        group: As in :class:`VisibleNode`.
        nodes: As in :class:`VisibleNode`.
        repeat: As in :class:`VisibleNode`.
        x: Left edge.
        y: Top edge.
        width: Width.
        height: Height.
        layer: Layer index inside its container (0 is the top row of the container).
        container: Path of the expanded group whose frame holds the item ("" at top level).
    """

    id: str
    label: str
    kind: str
    group: str
    nodes: tuple[str, ...]
    repeat: int
    x: float
    y: float
    width: float
    height: float
    layer: int
    container: str

    @property
    def cx(self) -> float:
        """Horizontal centre."""
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        """Bottom edge."""
        return self.y + self.height


@dataclass(frozen=True)
class EdgePath:
    """One drawn edge between two items.

    Attributes:
        source: Id of the source item.
        target: Id of the target item.
        points: Polyline from the bottom of the source to the top of the target; y never
            decreases along it.
        count: How many graph edges it stands for (edges merged by collapsing, or a node that
            takes the same input twice).
        shape: Text of the tensor shape it carries, e.g. ``"(64, 56, 56)"``, when an analysis was
            given and all merged edges carry the same shape; None otherwise.
    """

    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    count: int = 1
    shape: str | None = None


@dataclass(frozen=True)
class GroupFrame:
    """The rectangle around an expanded group's members (frames of nested groups nest).

    Attributes:
        group: Group path.
        label: Text to show (the group path).
        x: Left edge.
        y: Top edge.
        width: Width.
        height: Height.
        depth: Nesting depth, 1 for a top-level group.
    """

    group: str
    label: str
    x: float
    y: float
    width: float
    height: float
    depth: int


@dataclass(frozen=True)
class Layout:
    """Result of :func:`layout`.

    Attributes:
        items: Every drawn node or block, in graph order.
        edges: Every drawn edge, in graph order of their targets.
        frames: Frames of expanded groups, parents before children.
        width: Width of the whole drawing (margins included).
        height: Height of the whole drawing (margins included).
        repeats: For each repeat-collapsed block id, the groups it stands for, in order.
    """

    items: tuple[Item, ...]
    edges: tuple[EdgePath, ...]
    frames: tuple[GroupFrame, ...]
    width: float
    height: float
    repeats: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    _index: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)
    _node_index: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def item(self, item_id: str) -> Item:
        """The item with id ``item_id``.

        Raises:
            KeyError: No such item.
        """
        return self.items[self._index[item_id]]

    def item_of_node(self, node: str) -> Item:
        """The item a graph node is drawn in (itself, or the collapsed block holding it).

        Raises:
            KeyError: No such node.
        """
        return self.items[self._node_index[node]]


# --------------------------------------------------------------------------- helpers (public)
def expand_all() -> set[str]:
    """The ``collapsed`` argument that shows every node: nothing collapsed."""
    return set()


def collapse_to_depth(graph: ArchGraph, depth: int) -> set[str]:
    """Groups to collapse so that only groups up to nesting ``depth`` are open.

    Args:
        graph: The graph.
        depth: 0 collapses every top-level group; 1 opens top-level groups and collapses their
            subgroups; and so on.

    Returns:
        Every group whose depth (1 for top level) is greater than ``depth``.
    """
    return {g for g in graph.groups() if g.count(".") + 1 > depth}


def default_node_size(node: VisibleNode) -> tuple[float, float]:
    """A size that fits the label in a typical 9-point UI font: (width, height)."""
    if node.is_group:
        return max(90.0, 7.0 * len(node.label) + 28.0), 40.0
    return max(64.0, 7.0 * len(node.label) + 20.0), 30.0


def _parent(group: str) -> str:
    return group.rsplit(".", 1)[0] if "." in group else ""


def find_repeats(graph: ArchGraph) -> list[tuple[str, ...]]:
    """Runs of consecutive sibling groups with the same structure (at least two long).

    Two groups are the same when their nodes, in graph order, have equal kinds, equal parameters,
    equal places in the subgroup tree and equal wiring inside the group; names do not count. The
    groups of a run must also follow one another: every input that a group takes from outside
    itself comes from the previous group of the run (ResNet's ``layer3.1`` ... ``layer3.5``).

    Returns:
        The runs, each as the group paths in order.
    """
    members: dict[str, list[str]] = {}
    for node in graph:
        g = node.group
        while g:
            members.setdefault(g, []).append(node.name)
            g = _parent(g)
    nodes = graph.nodes
    param_sig: dict[str, str] = {}
    sigs: dict[str, Any] = {}
    external: dict[str, set[str]] = {}
    for g, names in members.items():
        index = {n: k for k, n in enumerate(names)}
        prefix_len = len(g) + 1
        sig = []
        ext: set[str] = set()
        for n in names:
            node = nodes[n]
            refs = []
            for i in node.inputs:
                k = index.get(i)
                if k is None:
                    ext.add(i)
                    refs.append(-1)
                else:
                    refs.append(k)
            rel = node.group[prefix_len:] if node.group != g else ""
            params = param_sig.get(n)
            if params is None:
                params = param_sig[n] = json.dumps(node.params, sort_keys=True, default=repr)
            sig.append((node.kind, params, rel, tuple(refs)))
        sigs[g] = tuple(sig)
        external[g] = ext
    siblings: dict[str, list[str]] = {}
    for g in graph.groups():
        siblings.setdefault(_parent(g), []).append(g)
    runs: list[tuple[str, ...]] = []
    for kids in siblings.values():
        run: list[str] = []
        for g in kids:
            if g not in sigs:
                continue
            prev = run[-1] if run else None
            if (
                prev is not None
                and sigs[g] == sigs[prev]
                and external[g]
                and external[g] <= set(members[prev])
            ):
                run.append(g)
                continue
            if len(run) > 1:
                runs.append(tuple(run))
            run = [g]
        if len(run) > 1:
            runs.append(tuple(run))
    return runs


# --------------------------------------------------------------------------- internals
@dataclass
class _Level:
    """One container being laid out: the root ("") or an expanded group."""

    path: str
    kids: list[tuple[bool, str]] = field(default_factory=list)  # (is_box, leaf id or group)
    kid_index: dict[tuple[bool, str], int] = field(default_factory=dict)
    in_keys: dict[str, int] = field(default_factory=dict)  # outside source leaf -> order
    out_keys: dict[str, int] = field(default_factory=dict)  # inside source leaf -> order
    # local edge: (src, src key, dst, dst key) with src/dst as ("k", kid) or ("in"/"out", leaf)
    edges: dict[tuple[Any, ...], None] = field(default_factory=dict)
    sizes: list[tuple[float, float]] = field(default_factory=list)  # of the kids
    # results, relative to the box's top-left corner
    width: float = 0.0
    height: float = 0.0
    lead: float = 0.0  # y of the first row of nodes inside, however deeply nested
    kid_pos: list[tuple[float, float]] = field(default_factory=list)
    kid_layer: list[int] = field(default_factory=list)
    in_port_x: dict[str, float] = field(default_factory=dict)
    out_port_x: dict[str, float] = field(default_factory=dict)
    paths: dict[tuple[Any, ...], list[tuple[float, float]]] = field(default_factory=dict)

    def kid(self, key: tuple[bool, str]) -> int:
        k = self.kid_index.get(key)
        if k is None:
            k = self.kid_index[key] = len(self.kids)
            self.kids.append(key)
        return k


@dataclass
class _Params:
    layer_gap: float
    node_gap: float
    lane_gap: float
    padding: float


def _pav(desired: list[float], weights: list[float], offsets: list[float]) -> list[float]:
    """Positions closest to ``desired`` (weighted least squares) keeping x[i+1]-x[i] >= gap.

    ``offsets[i]`` is the sum of the widths and gaps before item i; subtracting it turns the
    spacing constraints into plain monotonicity, solved exactly by pool-adjacent-violators.
    """
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for d, w, o in zip(desired, weights, offsets, strict=True):
        blocks.append([(d - o) * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, ww, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += ww
            blocks[-1][2] += c
    out: list[float] = []
    for s, w, c in blocks:
        v = s / w
        out.extend([v] * int(c))
    return [v + o for v, o in zip(out, offsets, strict=True)]


def _median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2


def _crossings(upper: list[int], lower: list[int], down: list[list[tuple[int, float]]]) -> int:
    pos = {v: k for k, v in enumerate(lower)}
    pairs = [(i, pos[w]) for i, u in enumerate(upper) for w, _ in down[u] if w in pos]
    pairs.sort()
    count = 0
    for a in range(len(pairs)):
        pa = pairs[a]
        for b in range(a + 1, len(pairs)):
            pb = pairs[b]
            if pb[0] > pa[0] and pb[1] < pa[1]:
                count += 1
    return count


def _layout_level(
    lv: _Level,
    sizes: list[tuple[float, float]],
    boxes: dict[str, _Level],
    leaf_order: dict[str, int],
    is_root: bool,
    p: _Params,
) -> None:
    """Lay out one level in place: positions of kids and ports, local edge polylines, size."""
    nk = len(lv.kids)
    in_keys = sorted(lv.in_keys, key=leaf_order.__getitem__)
    out_keys = sorted(lv.out_keys, key=leaf_order.__getitem__)
    ne = len(in_keys)
    n = ne + nk + len(out_keys)
    # local indices: entry ports, kids, exit ports
    ref: dict[Any, int] = {("in", k): i for i, k in enumerate(in_keys)}
    for i in range(nk):
        ref[("k", i)] = ne + i
    for i, k in enumerate(out_keys):
        ref[("out", k)] = ne + nk + i
    width = [0.0] * n
    height = [0.0] * n
    for i in range(nk):
        width[ne + i], height[ne + i] = sizes[i]

    def in_off(v: int, key: str | None) -> float:
        if ne <= v < ne + nk:
            is_box, name = lv.kids[v - ne]
            if is_box and key is not None:
                return boxes[name].in_port_x[key]
            return width[v] / 2
        return 0.0

    def out_off(u: int, key: str | None) -> float:
        if ne <= u < ne + nk:
            is_box, name = lv.kids[u - ne]
            if is_box and key is not None:
                return boxes[name].out_port_x[key]
            return width[u] / 2
        return 0.0

    edges = [(ref[s], sk, ref[d], dk, e) for e in lv.edges for s, sk, d, dk in (e,)]
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, _, v, _, _ in edges:
        preds[v].append(u)
        succs[u].append(v)

    # 1. layers: longest path over the kids (Kahn in kid order; a cycle is broken at its
    # earliest kid so that an invalid graph being edited still gets drawn)
    base = 0 if is_root else 1
    layer = [0] * n
    indeg = [0] * n
    for v in range(ne, ne + nk):
        indeg[v] = sum(1 for u in preds[v] if ne <= u < ne + nk)
    done = [False] * n
    topo: list[int] = []
    ready = [v for v in range(ne, ne + nk) if indeg[v] == 0]
    ready.reverse()
    remaining = nk
    while remaining:
        if not ready:
            v = next(v for v in range(ne, ne + nk) if not done[v])
            ready.append(v)
        v = ready.pop()
        if done[v]:
            continue
        done[v] = True
        remaining -= 1
        topo.append(v)
        lay = base
        for u in preds[v]:
            if u < ne:
                lay = max(lay, 1)
            elif done[u] and u < ne + nk:
                lay = max(lay, layer[u] + 1)
        layer[v] = lay
        new = []
        for w in succs[v]:
            if ne <= w < ne + nk:
                indeg[w] -= 1
                if indeg[w] == 0 and not done[w]:
                    new.append(w)
        ready.extend(reversed(new))
    # compaction: a kid fed by nothing sits right above its first consumer
    for v in reversed(topo):
        if not preds[v] and succs[v]:
            kid_succ = [layer[w] for w in succs[v] if ne <= w < ne + nk]
            if kid_succ:
                layer[v] = max(base, min(kid_succ) - 1)
    last = max((layer[v] for v in range(ne, ne + nk)), default=base - 1)
    if not is_root:
        last += 1
        for v in range(ne + nk, n):
            layer[v] = last
    nl = last + 1
    rows: list[list[int]] = [[] for _ in range(nl)]
    for v in range(n):
        rows[layer[v]].append(v)

    # neighbours across exactly one layer, with the x offset that aligns their ports
    up: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    down: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    has_long = [False] * n
    for u, uk, v, vk, _ in edges:
        if layer[v] == layer[u] + 1:
            delta = out_off(u, uk) - in_off(v, vk)
            up[v].append((u, delta))
            down[u].append((v, -delta))
        else:
            has_long[u] = has_long[v] = True

    # 2. crossing reduction
    pos = [0.0] * n
    for row in rows:
        for k, v in enumerate(row):
            pos[v] = k
    # (rows of ports alone do not count: ports feeding one chain share a point anyway)
    if any(len(r) > 1 for r in (rows if is_root else rows[1:-1])):
        # items with long edges start on the right, the side their lanes run on
        for row in rows:
            row.sort(key=has_long.__getitem__)
            for k, v in enumerate(row):
                pos[v] = k

        def total_crossings() -> int:
            return sum(_crossings(rows[i], rows[i + 1], down) for i in range(nl - 1))

        best = [list(r) for r in rows]
        best_c = total_crossings()
        for it in range(_SWEEPS):
            order = range(1, nl) if it % 2 == 0 else range(nl - 2, -1, -1)
            for li in order:
                row = rows[li]
                nbs = up if it % 2 == 0 else down

                def key(v: int, nbs: list[list[tuple[int, float]]] = nbs) -> tuple[float, ...]:
                    ps = [pos[w] for w, _ in nbs[v]]
                    return (sum(ps) / len(ps) if ps else pos[v], has_long[v], pos[v])

                row.sort(key=key)
                for k, v in enumerate(row):
                    pos[v] = k
            c = total_crossings()
            if c < best_c:
                best_c, best = c, [list(r) for r in rows]
            if best_c == 0:
                break
        rows = best
        for row in rows:
            for k, v in enumerate(row):
                pos[v] = k

    # 3. x placement; the spine is the longest chain of one-layer edges, where unique per layer
    f = [0] * n
    for row in rows:
        for v in row:
            f[v] = max((f[u] + 1 for u, _ in up[v]), default=0)
    g = [0] * n
    for row in reversed(rows):
        for v in row:
            g[v] = max((g[w] + 1 for w, _ in down[v]), default=0)
    longest = max((f[v] + g[v] for v in range(n)), default=0)
    spine = [False] * n
    for row in rows:
        cand = [v for v in row if f[v] + g[v] == longest]
        if len(cand) == 1:
            spine[cand[0]] = True
    weight = [_SPINE_WEIGHT if spine[v] else 1.0 for v in range(n)]
    x = [0.0] * n
    offsets_of: list[list[float]] = []
    for row in rows:
        acc = 0.0
        offs = []
        for v in row:
            offs.append(acc)
            # ports may share a point: several sources feeding one child of a box enter
            # together, rather than widening the box with one column per source
            acc += width[v] + p.node_gap if ne <= v < ne + nk else 0.0
        offsets_of.append(offs)
        for v, o in zip(row, offs, strict=True):
            x[v] = o
    for it in range(_SWEEPS + 1):
        downward = it % 2 == 0
        order = range(1, nl) if downward else range(nl - 2, -1, -1)
        nbs = up if downward else down
        for li in order:
            row = rows[li]
            if not row:
                continue
            desired = []
            for v in row:
                cand = nbs[v]
                if len(cand) == 1:
                    w, d = cand[0]
                    desired.append(x[w] + d)
                    continue
                if spine[v]:
                    sp = [(w, d) for w, d in cand if spine[w]]
                    if sp:
                        cand = sp
                desired.append(_median([x[w] + d for w, d in cand]) if cand else x[v])
            if len(row) == 1:
                x[row[0]] = desired[0]
                continue
            placed = _pav(desired, [weight[v] for v in row], offsets_of[li])
            for v, xv in zip(row, placed, strict=True):
                x[v] = xv
    pad = 0.0 if is_root else p.padding
    shift = pad - min(x) if n else pad
    x = [xv + shift for xv in x]

    # y: rows are bands; box rows 0 and last are the ports' zero-height rows. Items of a band
    # are top-aligned on their first inner row (a box's "lead"), so the first nodes of side by
    # side boxes line up however deeply each box nests (Inception's branches)
    lead = [0.0] * n
    for i, (is_box, name) in enumerate(lv.kids):
        if is_box:
            lead[ne + i] = boxes[name].lead
    yoff = [0.0] * n
    for row in rows:
        most = max((lead[v] for v in row), default=0.0)
        for v in row:
            yoff[v] = most - lead[v]
    # A tall item beside the spine (a projection shortcut's box next to a ResNet block's main
    # path) may hang down beside the next rows instead of stretching its own row, where nothing
    # in those rows or in the gaps between them is in its way.
    last_kid_row = nl - 1 if is_root else nl - 2
    into_row: list[list[tuple[int, Any, int]]] = [[] for _ in range(nl)]
    long_from_row: list[set[int]] = [set() for _ in range(nl)]
    for u, uk, v, _, _ in edges:
        into_row[layer[v]].append((u, uk, v))
        if layer[v] != layer[u] + 1:
            long_from_row[layer[u]].add(u)
    rmax = list(layer)
    hangers: list[int] = []
    for li, row in enumerate(rows):
        if not any(spine[v] for v in row) or li > last_kid_row:
            continue
        natural = max((yoff[v] + height[v] for v in row if spine[v]), default=0.0)
        for v in row:
            if spine[v] or not ne <= v < ne + nk or yoff[v] + height[v] <= natural:
                continue
            x0, x1 = x[v] - p.node_gap / 2, x[v] + width[v] + p.node_gap / 2
            stop = min((layer[w] for w in succs[v]), default=last_kid_row + 1)
            r = li
            while r + 1 < stop and r + 1 <= last_kid_row:
                nxt = r + 1
                if any(x[w] < x1 and x[w] + width[w] > x0 for w in rows[nxt]):
                    break
                if long_from_row[r] - {v}:
                    break
                blocked = False
                for u, uk, w in into_row[nxt]:
                    if layer[u] != layer[w] - 1:
                        blocked = True
                        break
                    sx = x[u] + out_off(u, uk)
                    lo_x, hi_x = min(sx, x[w]), max(sx, x[w] + width[w])
                    if lo_x < x1 and hi_x > x0:
                        blocked = True
                        break
                if blocked:
                    break
                r = nxt
            if r > li:
                rmax[v] = r
                hangers.append(v)
    hanging = set(hangers)
    end = list(layer)
    top = [0.0] * nl
    bot = [0.0] * nl
    pending: list[int] = []
    for li, row in enumerate(rows):
        if li:
            top[li] = bot[li - 1] + p.layer_gap
        band = max((yoff[v] + height[v] for v in row if v not in hanging), default=0.0)
        bot[li] = top[li] + band
        pending += [v for v in row if v in hanging]
        still = []
        for v in pending:
            need = top[layer[v]] + yoff[v] + height[v]
            if need <= bot[li] or li == rmax[v]:
                end[v] = li
                bot[li] = max(bot[li], need)
            else:
                still.append(v)
        pending = still
    occupied = [list(row) for row in rows]
    for v in hangers:
        for li in range(layer[v] + 1, end[v] + 1):
            occupied[li].append(v)

    # 4. lanes for edges longer than one layer, one per source port, shortest spans nearest
    right = [max((x[v] + width[v] for v in row), default=pad) for row in occupied]
    lanes: dict[tuple[int, Any], list[int]] = {}
    for u, uk, v, _, _ in edges:
        if layer[v] > end[u] + 1:
            lanes.setdefault((u, uk), []).append(layer[v])
    lane_x: dict[tuple[int, Any], float] = {}
    used: list[list[float]] = [[] for _ in range(nl)]
    # the rightmost of a row's items and lanes (DenseNet: dozens of lanes over dozens of rows)
    rightmost = list(right)
    spans = sorted(lanes, key=lambda k: (max(lanes[k]) - end[k[0]], end[k[0]], x[k[0]]))
    m = p.lane_gap
    for src in spans:
        u, uk = src
        lo, hi = end[u] + 1, max(lanes[src])
        sx = x[u] + out_off(u, uk)
        free = all(
            all(not (x[v] - m < sx < x[v] + width[v] + m) for v in occupied[li])
            and all(abs(sx - q) >= m for q in used[li])
            for li in range(lo, hi)
        )
        lx = sx if free else max(rightmost[lo:hi]) + m
        for li in range(lo, hi):
            used[li].append(lx)
            if lx > rightmost[li]:
                rightmost[li] = lx
        lane_x[src] = lx
    extent = max([x[v] + width[v] for v in range(n)] + rightmost + [pad])

    # polylines, then spread the entries into a node with several inputs along its top
    def src_points(u: int, uk: Any) -> list[tuple[float, float]]:
        sx = x[u] + out_off(u, uk)
        return [(sx, top[layer[u]] + yoff[u] + height[u]), (sx, bot[end[u]])]

    raw: list[tuple[Any, list[tuple[float, float]], int, Any]] = []
    into: dict[int, list[int]] = {}
    for u, uk, v, vk, e in edges:
        pts = src_points(u, uk)
        if layer[v] > end[u] + 1:
            lx = lane_x[(u, uk)]
            pts += [(lx, top[end[u] + 1]), (lx, bot[layer[v] - 1])]
        into.setdefault(v, []).append(len(raw))
        raw.append((e, pts, v, vk))
    for v, ks in into.items():
        leaf_kid = ne <= v < ne + nk and not lv.kids[v - ne][0]
        if leaf_kid and len(ks) > 1:
            _spread(ks, raw, x[v], width[v], top[layer[v]])
        else:
            for k in ks:
                raw[k][1].append((x[v] + in_off(v, raw[k][3]), top[layer[v]]))
        if yoff[v]:
            for k in ks:
                raw[k][1].append((raw[k][1][-1][0], top[layer[v]] + yoff[v]))
    lv.paths = {e: pts for e, pts, _, _ in raw}  # cleaned once stitched

    lv.kid_pos = [(x[ne + i], top[layer[ne + i]] + yoff[ne + i]) for i in range(nk)]
    lv.lead = top[1] + max(lead[v] for v in rows[1]) if nk and not is_root else 0.0
    lv.kid_layer = [layer[ne + i] for i in range(nk)]
    lv.in_port_x = {k: x[i] for i, k in enumerate(in_keys)}
    lv.out_port_x = {k: x[ne + nk + i] for i, k in enumerate(out_keys)}
    lv.width = extent + pad
    lv.height = bot[-1] if nl else 0.0


def _spread(ks: list[int], raw: list[Any], left: float, w: float, y: float) -> None:
    """Entry points of several edges into one node, in the order they arrive from.

    An edge arriving straight from above the centre keeps the centre, so a main path with a
    shortcut joining it stays a straight line; the others spread over the half they come from.
    """
    cx = left + w / 2
    ks.sort(key=lambda k: raw[k][1][-1][0])
    centre = min(ks, key=lambda k: abs(raw[k][1][-1][0] - cx))
    if abs(raw[centre][1][-1][0] - cx) > 0.5:
        for j, k in enumerate(ks):
            raw[k][1].append((left + w * (j + 1) / (len(ks) + 1), y))
        return
    c = ks.index(centre)
    lefts, rights = ks[:c], ks[c + 1 :]
    raw[centre][1].append((cx, y))
    for j, k in enumerate(lefts):
        raw[k][1].append((left + (w / 2) * (j + 1) / (len(lefts) + 1), y))
    for j, k in enumerate(rights):
        raw[k][1].append((cx + (w / 2) * (j + 1) / (len(rights) + 1), y))


def _clean(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop repeated points and middle points of straight vertical runs."""
    out: list[tuple[float, float]] = []
    for pt in pts:
        if out and out[-1] == pt:
            continue
        if len(out) >= 2 and out[-1][0] == pt[0] == out[-2][0]:
            out[-1] = pt
            continue
        out.append(pt)
    return out


# --------------------------------------------------------------------------- entry point
def layout(
    graph: ArchGraph,
    collapsed: Iterable[str] = frozenset(),
    node_size: Callable[[VisibleNode], tuple[float, float]] | None = None,
    *,
    analysis: Analysis | None = None,
    repeat_collapse: bool = False,
    unrolled: Iterable[str] = frozenset(),
    runs: Iterable[tuple[str, ...]] | None = None,
    layer_gap: float = 28.0,
    node_gap: float = 20.0,
    lane_gap: float = 10.0,
    padding: float = 12.0,
    margin: float = 16.0,
) -> Layout:
    """Lay out ``graph`` top to bottom.

    Args:
        graph: The graph (it is not changed).
        collapsed: Group paths drawn as one block each; names that are not groups are ignored.
            A group inside a collapsed group is hidden with it.
        node_size: Width and height of each item; :func:`default_node_size` when None.
        analysis: An :class:`~cnnviz.core.analysis.Analysis` of the graph, for the tensor shapes
            written on edges; shapes are None without it.
        repeat_collapse: Draw each run found by :func:`find_repeats` (whose parent is open) as
            one block marked "xN"; :attr:`Layout.repeats` says which groups each one stands for.
        unrolled: First groups of runs that stay apart although ``repeat_collapse`` is set (the
            user opened that "xN" block); each of its groups is then drawn as ``collapsed`` says.
        runs: The result of :func:`find_repeats` for ``graph`` when the caller has it already.
        layer_gap: Vertical space between layers, and the top and bottom padding of a frame.
        node_gap: Horizontal space between items of one layer.
        lane_gap: Horizontal space between edge lanes, and between a lane and a box.
        padding: Left and right padding inside a group frame.
        margin: Space around the whole drawing.

    Returns:
        The positions of every item, edge and group frame.
    """
    size_of = node_size or default_node_size
    p = _Params(layer_gap, node_gap, lane_gap, padding)
    nodes = graph.nodes
    group_set = set(graph.groups())

    # which block (if any) hides each group: the outermost collapsed or repeated ancestor
    block_of_group: dict[str, str] = {}
    repeats: dict[str, tuple[str, ...]] = {}
    for g in collapsed:
        if g in group_set:
            block_of_group[g] = g
    if repeat_collapse:
        unrolled = set(unrolled)
        for run in find_repeats(graph) if runs is None else runs:
            if run[0] in unrolled:
                continue
            for g in run:
                block_of_group[g] = run[0]
            repeats[run[0]] = run
    hidden_by: dict[str, str | None] = {"": None}

    def hider(g: str) -> str | None:
        if g in hidden_by:
            return hidden_by[g]
        h = hider(_parent(g))
        if h is None:
            h = block_of_group.get(g)
        hidden_by[g] = h
        return h

    # visible leaves
    leaf_of: dict[str, str] = {}
    leaves: dict[str, dict[str, Any]] = {}
    block_ids: dict[str, str] = {}
    for node in nodes.values():
        b = hider(node.group)
        if b is None:
            lid = node.name
            if lid not in leaves:
                prefix = node.group + "."
                label = node.name[len(prefix) :] if node.name.startswith(prefix) else node.name
                leaves[lid] = {
                    "label": label,
                    "kind": node.kind,
                    "group": node.group,
                    "nodes": [node.name],
                    "repeat": 1,
                    "container": node.group,
                }
        else:
            lid = block_ids.get(b)
            if lid is None:
                lid = block_ids[b] = b if b not in nodes else b + "/"
                run = repeats.get(b)
                if run:
                    last = run[-1]
                    tail = last[len(_parent(b)) + 1 :] if _parent(b) else last
                    tail = tail.rsplit(".", 1)[-1] if "." in tail else tail
                    label = f"{b}..{tail} x{len(run)}"
                else:
                    label = b
                leaves[lid] = {
                    "label": label,
                    "kind": "group",
                    "group": b,
                    "nodes": [],
                    "repeat": len(run) if run else 1,
                    "container": _parent(b),
                }
            leaves[lid]["nodes"].append(node.name)
        leaf_of[node.name] = lid
    leaf_order = {lid: k for k, lid in enumerate(leaves)}

    # the container tree, children in order of first appearance
    levels: dict[str, _Level] = {}

    def level(path: str) -> _Level:
        lv = levels.get(path)
        if lv is None:
            lv = levels[path] = _Level(path)
            if path:
                level(_parent(path)).kid((True, path))
        return lv

    level("")
    for lid, info in leaves.items():
        level(info["container"]).kid((False, lid))

    # visible edges, merged; then their pieces in each level they pass
    vis: dict[tuple[str, str], list[Any]] = {}
    shape_text: dict[str, str | None] = {}
    results = analysis.nodes if analysis is not None else {}
    if results:
        from cnnviz.core.ops import shape_str

    def shape_of(name: str) -> str | None:
        text = shape_text.get(name, "")
        if text == "":
            na = results.get(name)
            shape = na.output_shape if na is not None else None
            text = shape_text[name] = shape_str(shape) if shape is not None else None
        return text

    for node in nodes.values():
        b = leaf_of[node.name]
        for u in node.inputs:
            a = leaf_of.get(u)
            if a is None or a == b:
                continue
            rec = vis.get((a, b))
            if rec is None:
                vis[(a, b)] = [1, {shape_of(u)}]
            else:
                rec[0] += 1
                rec[1].add(shape_of(u))

    def kid_key(lv: _Level, is_box: bool, name: str) -> tuple[str, int]:
        return ("k", lv.kid_index[(is_box, name)])

    pieces: dict[tuple[str, str], list[tuple[_Level, tuple[Any, ...]]]] = {}
    chains: dict[str, list[str]] = {"": [""]}

    def chain(c: str) -> list[str]:
        # the container's ancestors, root first: chain(c)[d] is the path at depth d
        ch = chains.get(c)
        if ch is None:
            ch = chains[c] = [*chain(_parent(c)), c]
        return ch

    for a, b in vis:
        pa = chain(leaves[a]["container"])
        pb = chain(leaves[b]["container"])
        k = 0
        while k + 1 < len(pa) and k + 1 < len(pb) and pa[k + 1] == pb[k + 1]:
            k += 1
        lca = pa[k]
        seq: list[tuple[_Level, tuple[Any, ...]]] = []
        # inside the source's boxes, from the innermost out
        child: tuple[bool, str] = (False, a)
        for d in range(len(pa) - 1, k, -1):
            path = pa[d]
            lv = levels[path]
            key = kid_key(lv, *child)
            lv.out_keys.setdefault(a, 0)
            e = (key, a if child[0] else None, ("out", a), None)
            lv.edges[e] = None
            seq.append((lv, e))
            child = (True, path)
        src_child = child
        # inside the target's boxes, from the outermost in
        tail: list[tuple[_Level, tuple[Any, ...]]] = []
        child = (False, b)
        for d in range(len(pb) - 1, k, -1):
            path = pb[d]
            lv = levels[path]
            key = kid_key(lv, *child)
            lv.in_keys.setdefault(a, 0)
            e = (("in", a), None, key, a if child[0] else None)
            lv.edges[e] = None
            tail.append((lv, e))
            child = (True, path)
        lv = levels[lca]
        e = (
            kid_key(lv, *src_child),
            a if src_child[0] else None,
            kid_key(lv, *child),
            a if child[0] else None,
        )
        lv.edges[e] = None
        seq.append((lv, e))
        seq.extend(reversed(tail))
        pieces[(a, b)] = seq

    # lay out the deepest boxes first; a box's size is known before its parent needs it
    for path in sorted(levels, key=lambda s: -(s.count(".") + 1 if s else 0)):
        lv = levels[path]
        sizes = []
        for is_box, name in lv.kids:
            if is_box:
                sizes.append((levels[name].width, levels[name].height))
            else:
                info = leaves[name]
                vn = VisibleNode(
                    name,
                    info["label"],
                    info["kind"],
                    info["group"],
                    tuple(info["nodes"]),
                    info["repeat"],
                )
                info["vn"] = vn
                w, h = size_of(vn)
                sizes.append((float(w), float(h)))
        lv.sizes = sizes
        _layout_level(lv, sizes, levels, leaf_order, path == "", p)

    # absolute positions, top-down
    origin: dict[str, tuple[float, float]] = {"": (margin, margin)}
    frames: list[GroupFrame] = []
    items_by_id: dict[str, Item] = {}
    for path in sorted(levels, key=lambda s: s.count(".") + 1 if s else 0):
        lv = levels[path]
        ox, oy = origin[path]
        for i, (is_box, name) in enumerate(lv.kids):
            rx, ry = lv.kid_pos[i]
            w, h = lv.sizes[i]
            if is_box:
                origin[name] = (ox + rx, oy + ry)
                frames.append(GroupFrame(name, name, ox + rx, oy + ry, w, h, name.count(".") + 1))
            else:
                info = leaves[name]
                vn = info["vn"]
                items_by_id[name] = Item(
                    vn.id,
                    vn.label,
                    vn.kind,
                    vn.group,
                    vn.nodes,
                    vn.repeat,
                    ox + rx,
                    oy + ry,
                    w,
                    h,
                    lv.kid_layer[i],
                    path,
                )
    items = tuple(items_by_id[lid] for lid in leaves)

    edge_out: list[EdgePath] = []
    placed: dict[tuple[str, Any], list[tuple[float, float]]] = {}  # pieces are shared
    for (a, b), (count, shapes) in vis.items():
        pts: list[tuple[float, float]] = []
        for lv, e in pieces[(a, b)]:
            key = (lv.path, e)
            piece = placed.get(key)
            if piece is None:
                ox, oy = origin[lv.path]
                piece = placed[key] = [(px + ox, py + oy) for px, py in lv.paths[e]]
            pts += piece
        shape = next(iter(shapes)) if len(shapes) == 1 else None
        edge_out.append(EdgePath(a, b, tuple(_clean(pts)), count, shape))

    root = levels[""]
    return Layout(
        items=items,
        edges=tuple(edge_out),
        frames=tuple(frames),
        width=root.width + 2 * margin,
        height=root.height + 2 * margin,
        repeats=MappingProxyType(dict(repeats)),
        _index={it.id: k for k, it in enumerate(items)},
        _node_index={n: k for k, it in enumerate(items) for n in it.nodes},
    )
