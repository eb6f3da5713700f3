"""The graph view: the layer graph drawn like a textbook figure, to zoom, pan, open and search.

:class:`GraphView` shows a :class:`~cnnviz.ui.graph_items.GraphScene`. Groups open and close
by double-click (the layout keeps everything else where it was, and the view keeps the clicked
block under the mouse); an overview in the corner shows where the viewport is; Ctrl+F finds a
layer by name; the arrow keys walk along the edges.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable

from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCompleter,
    QFrame,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QStyleOptionGraphicsItem,
    QToolButton,
    QToolTip,
    QWidget,
)

from cnnviz.core.analysis import Analysis
from cnnviz.core.graph import ArchGraph
from cnnviz.core.layout import collapse_to_depth, find_repeats
from cnnviz.ui import theme
from cnnviz.ui.graph_export import (
    export_scene,
    legend_box_width,
    legend_height,
    paint_legend,
)
from cnnviz.ui.graph_items import (
    CardItem,
    EdgeBundleItem,
    FrameItem,
    GraphScene,
    SceneState,
    edge_shape_text,
)

MIN_SCALE = 0.01
MAX_SCALE = 4.0
ZOOM_STEP = 1.25
OPEN_ALL_UP_TO = 40
"""A model with at most this many layers opens fully expanded; a bigger one opens as deep as
keeps it at about this many boxes (a first view a class can take in)."""


def initial_depth(graph: ArchGraph, budget: int = OPEN_ALL_UP_TO) -> int | None:
    """How deep to open ``graph`` at first: None (everything) for a small model.

    The deepest level at which the number of boxes (nodes above it plus one block per group at
    the next level) stays within ``budget``; at least 0.
    """
    if len(graph) <= budget:
        return None
    depth_of = [n.group.count(".") + 1 if n.group else 0 for n in graph]
    groups = graph.groups()
    best = 0
    for d in range(0, max(depth_of, default=0) + 1):
        boxes = sum(1 for k in depth_of if k <= d)
        boxes += sum(1 for g in groups if g.count(".") + 1 == d + 1)
        if boxes > budget:
            break
        best = d
    return best


class _Overview(QWidget):
    """The whole graph in miniature, with the viewport as a rectangle; click or drag to go."""

    MAX = QSize(170, 260)

    def __init__(self, view: GraphView):
        super().__init__(view)
        self.view = view
        self._pixmap: QPixmap | None = None
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")

    def invalidate(self) -> None:
        """The drawing changed: render the miniature again when next shown."""
        self._pixmap = None
        self.place()

    def _scale(self) -> float:
        r = self.view.graph_scene.sceneRect()
        if r.isEmpty():
            return 1.0
        return min(self.MAX.width() / r.width(), self.MAX.height() / r.height())

    def place(self) -> None:
        """Size and put the overview in the view's bottom-right corner."""
        r = self.view.graph_scene.sceneRect()
        s = self._scale()
        w, h = max(16, math.ceil(r.width() * s) + 2), max(16, math.ceil(r.height() * s) + 2)
        vp = self.view.viewport().geometry()
        self.setGeometry(vp.right() - w - 10, vp.bottom() - h - 10, w, h)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        scene = self.view.graph_scene
        r = scene.sceneRect()
        if r.isEmpty():
            return
        painter = QPainter(self)
        if self._pixmap is None or self._pixmap.size() != self.size():
            pm = QPixmap(self.size())
            pm.fill(QColor("#ffffff"))
            p = QPainter(pm)
            s = self._scale()
            p.translate(1 - r.x() * s, 1 - r.y() * s)
            p.scale(s, s)
            scene.sketch_item().paint(p, QStyleOptionGraphicsItem(), None)
            p.end()
            self._pixmap = pm
        painter.drawPixmap(0, 0, self._pixmap)
        painter.setPen(QPen(QColor(theme.FRAME_BORDER)))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        seen = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        s = self._scale()
        box = QRectF(
            1 + (seen.x() - r.x()) * s,
            1 + (seen.y() - r.y()) * s,
            seen.width() * s,
            seen.height() * s,
        ).intersected(QRectF(self.rect()))
        painter.setPen(QPen(QColor(theme.SELECTION), 1.5))
        painter.setBrush(QColor(31, 111, 235, 40))
        painter.drawRect(box)

    def _go(self, pos: QPointF) -> None:
        r = self.view.graph_scene.sceneRect()
        s = self._scale()
        self.view.centerOn(QPointF(r.x() + (pos.x() - 1) / s, r.y() + (pos.y() - 1) / s))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self._go(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event.position())


class _Legend(QWidget):
    """The family colours of the cards on screen, in the view's top-left corner."""

    def __init__(self, view: GraphView):
        super().__init__(view)
        self.view = view
        self.families: list[str] = []
        self._pixmap = QPixmap()
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def set_families(self, families: list[str]) -> None:
        """Show these families."""
        if families == self.families:
            return
        self.families = families
        self.resize(int(legend_box_width(families)) + 2, int(legend_height(families)) + 2)
        # drawn once: the legend repaints whenever the graph under it does
        ratio = self.devicePixelRatioF()
        pm = QPixmap(self.size() * ratio)
        pm.setDevicePixelRatio(ratio)
        pm.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pm)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setOpacity(0.94)
        paint_legend(painter, QPointF(1, 1), families)
        painter.end()
        self._pixmap = pm
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        if self.families:
            QPainter(self).drawPixmap(0, 0, self._pixmap)


class FindBar(QFrame):
    """Find a layer or group by name (with completion); Enter goes there, Escape closes."""

    sig_find = Signal(str)

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("graphFindBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 4, 4)
        row.setSpacing(6)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Find a layer or group…")
        self.edit.setClearButtonEnabled(True)
        self.edit.setMinimumWidth(240)
        self.completer = QCompleter([], self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setMaxVisibleItems(12)
        self.edit.setCompleter(self.completer)
        self.edit.returnPressed.connect(self._on_edit_return_pressed)
        self.completer.activated.connect(self._on_completer_activated)
        self.status = QLabel("")
        self.status.setObjectName("placeholder")
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Close (Escape)")
        close.clicked.connect(self.hide)
        row.addWidget(self.edit, 1)
        row.addWidget(self.status)
        row.addWidget(close)
        self.hide()

    def set_names(self, names: Iterable[str]) -> None:
        """The names offered for completion."""
        self.completer.model().setStringList(list(names))

    def open(self) -> None:
        """Show the bar with the text selected, ready to type."""
        self.status.setText("")
        self.show()
        self.raise_()
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            self.parentWidget().setFocus()
            return
        super().keyPressEvent(event)

    @Slot()
    def _on_edit_return_pressed(self) -> None:
        if not self.completer.popup().isVisible():
            self.sig_find.emit(self.edit.text())

    @Slot(str)
    def _on_completer_activated(self, text: str) -> None:
        self.sig_find.emit(text)


class GraphView(QGraphicsView):
    """The layer graph: cards coloured by family, edges with tensor shapes, groups that open.

    Signals:
        sig_selected(name, is_group): the user selected a node or a group ("" for nothing).
        sig_context_menu(name, is_group, global_pos): right-click on a node, a group or the
            background ("").
        sig_zoom_changed(scale): the zoom changed (1.0 is 100 %).
    """

    sig_selected = Signal(str, bool)
    sig_context_menu = Signal(str, bool, QPoint)
    sig_zoom_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        self.graph_scene = GraphScene()
        super().__init__(self.graph_scene, parent)
        self.graph_scene.setParent(self)
        self.graph: ArchGraph | None = None
        self.analysis: Analysis | None = None
        self.state = SceneState(frozenset())
        self._selected: tuple[str, bool] = ("", False)
        self._runs_cache: list[tuple[str, ...]] | None = None
        self._press: QPoint | None = None
        self._neighbours: dict[str, tuple[list[str], list[str]]] = {}

        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlags(
            QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing
            | QGraphicsView.OptimizationFlag.DontSavePainterState
        )
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QColor(theme.BACKGROUND))

        self.overview = _Overview(self)
        self.legend = _Legend(self)
        self.legend.move(10, 10)
        self.find_bar = FindBar(self)
        self.find_bar.sig_find.connect(self._on_find_bar_find)
        self.horizontalScrollBar().valueChanged.connect(self._on_scroll_changed)
        self.verticalScrollBar().valueChanged.connect(self._on_scroll_changed)
        self._build_actions()

    # ----------------------------------------------------------------- actions
    def _build_actions(self) -> None:
        def action(text: str, slot, shortcuts: Iterable[str | QKeySequence] = (), tip: str = ""):
            act = QAction(text, self)
            keys: list[QKeySequence] = []
            for s in shortcuts:  # the platform's standard key may repeat one given here
                for k in (
                    QKeySequence.keyBindings(s)
                    if isinstance(s, QKeySequence.StandardKey)
                    else [QKeySequence(s)]
                ):
                    if k.toString() and all(k != have for have in keys):
                        keys.append(k)
            if keys:
                act.setShortcuts(keys)
            act.triggered.connect(slot)
            act.setStatusTip(tip)
            self.addAction(act)
            return act

        sk = QKeySequence.StandardKey
        self.act_zoom_in = action(
            "Zoom &in", self.zoom_in, ("Ctrl+=", "Ctrl++", sk.ZoomIn), "Zoom in"
        )
        self.act_zoom_out = action("Zoom &out", self.zoom_out, ("Ctrl+-", sk.ZoomOut), "Zoom out")
        self.act_zoom_reset = action("&Actual size", self.zoom_reset, ("Ctrl+1",), "Zoom 100 %")
        self.act_fit = action("&Fit to window", self.fit, ("Ctrl+0",), "Show the whole graph")
        self.act_expand_all = action(
            "&Expand all", self.expand_all, ("Ctrl+Shift+E",), "Open every group"
        )
        self.act_find = action(
            "&Find layer…", self.show_find_bar, ("Ctrl+F",), "Find a layer or group by name"
        )
        self.act_legend = QAction("&Legend", self)
        self.act_legend.setCheckable(True)
        self.act_legend.setChecked(True)
        self.act_legend.toggled.connect(self._on_legend_toggled)
        self.act_overview = QAction("&Overview", self)
        self.act_overview.setCheckable(True)
        self.act_overview.setChecked(True)
        self.act_overview.toggled.connect(self._on_overview_toggled)
        self.depth_menu = QMenu("&Collapse to depth", self)
        self.depth_menu.setEnabled(False)

    def view_actions(self) -> list[QAction | None]:
        """The actions for a View menu, None where a separator goes."""
        return [
            self.act_zoom_in,
            self.act_zoom_out,
            self.act_zoom_reset,
            self.act_fit,
            None,
            self.act_expand_all,
            self.depth_menu.menuAction(),
            self.act_find,
            None,
            self.act_legend,
            self.act_overview,
        ]

    def _rebuild_depth_menu(self) -> None:
        self.depth_menu.clear()
        graph = self.graph
        deepest = max((g.count(".") + 1 for g in graph.groups()), default=0) if graph else 0
        for d in range(deepest):
            what = "every group closed" if d == 0 else f"groups {d} deep open"
            act = self.depth_menu.addAction(f"{d}: {what}")
            act.triggered.connect(lambda _=False, d=d: self.collapse_to_depth(d))
        self.depth_menu.setEnabled(deepest > 0)

    # ----------------------------------------------------------------- model
    def set_model(
        self, graph: ArchGraph, analysis: Analysis | None, depth: int | None = -1
    ) -> None:
        """Show a new model.

        Args:
            graph: The graph.
            analysis: Its analysis (shapes on cards and edges, errors); None for none.
            depth: Groups open down to this depth, None for everything; -1 picks by size
                (:func:`initial_depth`).
        """
        self.graph, self.analysis = graph, analysis
        self._runs_cache = None
        if depth == -1:
            depth = initial_depth(graph)
        self.state = self._state_for_depth(depth)
        self._selected = ("", False)
        self.setSceneRect(QRectF())  # the scene's own rectangle (anchors may have grown it)
        self._rebuild()
        self._rebuild_depth_menu()
        names = list(graph.nodes) + graph.groups()
        self.find_bar.set_names(sorted(names))
        self.initial_zoom()

    def refresh(self, graph: ArchGraph, analysis: Analysis | None) -> None:
        """Draw the changed ``graph`` again, keeping what is open, the zoom and the viewport."""
        anchor = self._anchor()
        self.graph, self.analysis = graph, analysis
        self._runs_cache = None
        groups = set(graph.groups())
        firsts = {run[0] for run in self._runs} if self.state.unrolled else set()
        self.state = SceneState(
            frozenset(self.state.collapsed & groups),
            frozenset(self.state.unrolled & firsts),
            self.state.repeat_collapse,
        )
        name, is_group = self._selected
        if name and name not in graph.nodes and name not in groups:
            self._selected = ("", False)
        self._rebuild(anchor)
        self._rebuild_depth_menu()
        self.find_bar.set_names(sorted(list(graph.nodes) + list(groups)))

    @property
    def _runs(self) -> list[tuple[str, ...]]:
        """The graph's runs of identical groups (found on first use)."""
        if self._runs_cache is None:
            self._runs_cache = find_repeats(self.graph) if self.graph is not None else []
        return self._runs_cache

    def _state_for_depth(self, depth: int | None) -> SceneState:
        if depth is None:  # everything open: no "xN" blocks either
            return SceneState(frozenset(), frozenset(), repeat_collapse=False)
        return SceneState(frozenset(collapse_to_depth(self.graph, depth)), frozenset(), True)

    def _rebuild(self, anchor: tuple[str, QPointF] | None = None) -> None:
        """Lay out and rebuild the scene; keep ``anchor`` (id, viewport point) where it was."""
        scene = self.graph_scene
        runs = self._runs if self.state.repeat_collapse else []
        # thousands of long-lived objects at once: a collection half way only costs time
        collecting = gc.isenabled()
        gc.disable()
        try:
            scene.build(self.graph, self.analysis, self.state, runs)
        finally:
            if collecting:
                gc.enable()
        scene.set_sketch_mode(scene.sketch_for_scale(self.zoom()))
        lay = scene.layout
        preds: dict[str, list[str]] = {i.id: [] for i in lay.items}
        succs: dict[str, list[str]] = {i.id: [] for i in lay.items}
        for e in lay.edges:
            succs[e.source].append(e.target)
            preds[e.target].append(e.source)
        self._neighbours = {k: (preds[k], succs[k]) for k in preds}
        self._show_selection()
        self.legend.set_families(scene.families())
        self.legend.setVisible(self.act_legend.isChecked() and bool(scene.cards))
        self.overview.invalidate()
        self._update_overview_visibility()
        if anchor is not None:
            self._restore_anchor(*anchor)

    # ----------------------------------------------------------------- anchors
    def _anchor_point(self, item_id: str) -> QPointF | None:
        """Top-centre of the card or frame ``item_id`` in scene coordinates."""
        scene = self.graph_scene
        card = scene.cards.get(item_id)
        if card is not None:
            return QPointF(card.item.cx, card.item.y)
        frame = scene.frames.get(item_id)
        if frame is not None:
            f = frame.frame
            return QPointF(f.x + f.width / 2, f.y)
        if item_id.endswith("/"):
            return self._anchor_point(item_id[:-1])
        return None

    def _anchor(self) -> tuple[str, QPointF] | None:
        """The selected card if on screen, else the card nearest the viewport's centre."""
        scene = self.graph_scene
        if not scene.cards:
            return None
        seen = self.mapToScene(self.viewport().rect()).boundingRect()
        name = self._selected[0]
        if name:
            p = self._anchor_point(name)
            if p is not None and seen.contains(p):
                return name, QPointF(self.mapFromScene(p))
        centre = seen.center()
        best = min(
            scene.cards.values(),
            key=lambda c: (c.item.cx - centre.x()) ** 2 + (c.item.y - centre.y()) ** 2,
        )
        p = self._anchor_point(best.item.id)
        return best.item.id, QPointF(self.mapFromScene(p))

    def _restore_anchor(self, item_id: str, at: QPointF) -> None:
        p = self._anchor_point(item_id)
        if p is None:
            return
        now = QPointF(self.mapFromScene(p))
        dx, dy = now.x() - at.x(), now.y() - at.y()
        # Where the visible area must go for the anchor to stay put. The view's scrollable
        # area takes it in: a scene smaller than the viewport would otherwise be centred and
        # the anchor jump (GoogLeNet's auxiliary heads make its scene lopsided).
        scale = self.zoom() or 1.0
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        wanted = visible.translated(dx / scale, dy / scale)
        self.setSceneRect(self.graph_scene.sceneRect().united(wanted))
        self.centerOn(wanted.center())

    # ----------------------------------------------------------------- open and close
    def toggle(self, item_id: str) -> bool:
        """Open the collapsed block ``item_id`` or close the expanded group ``item_id``.

        The block (or frame) stays where it was on screen. Returns False when ``item_id`` is
        neither.
        """
        scene = self.graph_scene
        card = scene.cards.get(item_id)
        if card is not None and card.is_group:
            return self._open_block(card)
        if item_id in scene.frames:
            return self.collapse(item_id)
        return False

    def _open_block(self, card: CardItem) -> bool:
        anchor = (card.item.id, QPointF(self.mapFromScene(self._anchor_point(card.item.id))))
        group = card.item.group
        if card.item.repeat > 1:
            self.state = SceneState(
                self.state.collapsed, self.state.unrolled | {group}, self.state.repeat_collapse
            )
        else:
            self.state = SceneState(
                self.state.collapsed - {group}, self.state.unrolled, self.state.repeat_collapse
            )
        self._rebuild(anchor)
        return True

    def expand(self, group: str) -> bool:
        """Open ``group`` (and the groups and "xN" runs around it) so that its inside shows."""
        if self.graph is None or group not in set(self.graph.groups()):
            return False
        self._reveal_group(group, open_itself=True)
        return True

    def collapse(self, group: str) -> bool:
        """Close the expanded ``group`` into one block, kept where its frame was on screen."""
        if self.graph is None or group not in self.graph_scene.frames:
            return False
        anchor = (group, QPointF(self.mapFromScene(self._anchor_point(group))))
        self.state = SceneState(
            self.state.collapsed | {group}, self.state.unrolled, self.state.repeat_collapse
        )
        if self._selected[0] and self._selected[0] != group:
            name = self._selected[0]
            if name.startswith(group + "."):
                self._selected = (group, True)
        self._rebuild(anchor)
        return True

    def expand_all(self) -> None:
        """Open every group and every "xN" run."""
        if self.graph is None:
            return
        anchor = self._anchor()
        self.state = self._state_for_depth(None)
        self._rebuild(anchor)

    def collapse_to_depth(self, depth: int) -> None:
        """Open groups down to ``depth`` (0: every top-level group closed); "xN" runs merge."""
        if self.graph is None:
            return
        anchor = self._anchor()
        self.state = self._state_for_depth(depth)
        name = self._selected[0]
        if name and self.graph_scene.layout is not None:
            self._selected = self._visible_owner(name)
        self._rebuild(anchor)

    def _visible_owner(self, name: str) -> tuple[str, bool]:
        """What would show ``name`` in the current state: itself, or the block hiding it."""
        graph = self.graph
        group = graph[name].group if name in graph.nodes else name
        hidden_by = ""
        g = group
        chain = []
        while g:
            chain.append(g)
            g = g.rsplit(".", 1)[0] if "." in g else ""
        run_of = {g: run for run in self._runs for g in run}
        for g in reversed(chain):  # outermost first
            if g in self.state.collapsed and (g != name or name in graph.nodes):
                hidden_by = g
                break
            run = run_of.get(g)
            if run and self.state.repeat_collapse and run[0] not in self.state.unrolled:
                hidden_by = run[0]
                break
        if hidden_by:
            return hidden_by, True
        return name, name not in graph.nodes

    def _reveal_group(self, group: str, open_itself: bool) -> None:
        """Open every group around ``group`` (and itself when asked), unrolling "xN" runs."""
        chain = []
        g = group
        while g:
            chain.append(g)
            g = g.rsplit(".", 1)[0] if "." in g else ""
        opened = set(chain if open_itself else chain[1:])
        run_firsts = (
            {run[0] for run in self._runs if set(run) & set(chain)}
            if self.state.repeat_collapse
            else set()
        )
        collapsed = self.state.collapsed - opened
        unrolled = self.state.unrolled | run_firsts
        if collapsed != self.state.collapsed or unrolled != self.state.unrolled:
            anchor = self._anchor()
            self.state = SceneState(
                frozenset(collapsed), frozenset(unrolled), self.state.repeat_collapse
            )
            self._rebuild(anchor)

    # ----------------------------------------------------------------- selection
    def selected(self) -> str:
        """Name of the selected node or group, "" for none."""
        return self._selected[0]

    def selected_is_group(self) -> bool:
        """Whether the selection is a group."""
        return self._selected[1]

    def select(self, name: str, is_group: bool | None = None) -> bool:
        """Select node or group ``name`` (opening what hides it) and scroll to it.

        Does not emit ``sig_selected`` (it is how others tell the view). Returns False when
        the graph has no such node or group; "" clears the selection.
        """
        if self.graph is None:
            return False
        if not name:
            self._set_selection("", False)
            return True
        is_node = name in self.graph.nodes
        groups = set(self.graph.groups())
        if is_group is None:
            is_group = not is_node
        if is_group and name not in groups:
            return False
        if not is_group and not is_node:
            return False
        scene = self.graph_scene
        if is_group:
            if self._card_id(name, True) is None and name not in scene.frames:
                self._reveal_group(name, open_itself=False)
        elif self._card_id(name, False) is None:
            self._reveal_group(self.graph[name].group, open_itself=True)
        self._set_selection(name, is_group)
        self._scroll_to(name, is_group)
        return True

    def _set_selection(self, name: str, is_group: bool) -> None:
        self._selected = (name, is_group)
        self._show_selection()

    def _show_selection(self) -> None:
        name, is_group = self._selected
        card_id = self._card_id(name, is_group) if name else None
        frame = name if is_group and card_id is None and name in self.graph_scene.frames else None
        self.graph_scene.show_selection(card_id, frame)

    def _scroll_to(self, name: str, is_group: bool) -> None:
        scene = self.graph_scene
        card_id = self._card_id(name, is_group)
        item = scene.cards[card_id] if card_id else scene.frames.get(name) if is_group else None
        if item is None:
            return
        rect = item.mapRectToScene(item.boundingRect())
        seen = self.mapToScene(self.viewport().rect()).boundingRect()
        if not seen.contains(rect):
            if rect.height() < seen.height() and rect.width() < seen.width():
                self.centerOn(rect.center())
            else:
                self.centerOn(QPointF(rect.center().x(), rect.top() + seen.height() / 3))

    def _user_select(self, name: str, is_group: bool) -> None:
        if (name, is_group) != self._selected:
            self._set_selection(name, is_group)
        self.sig_selected.emit(name, is_group)

    def item_at(self, pos: QPoint) -> tuple[str, bool] | None:
        """(name, is_group) of the card or frame at viewport point ``pos``; None for none."""
        frame_hit: FrameItem | None = None
        for it in self.items(pos):
            if isinstance(it, CardItem):
                return (it.item.group, True) if it.is_group else (it.item.id, False)
            if isinstance(it, FrameItem) and frame_hit is None:
                frame_hit = it
        if frame_hit is not None:
            return frame_hit.group, True
        return None

    def _card_id(self, name: str, is_group: bool) -> str | None:
        """Id of the card that shows node or group ``name``, None when it is not a card."""
        cards = self.graph_scene.cards
        if is_group and name + "/" in cards:
            return name + "/"
        card = cards.get(name)
        if card is not None and card.is_group == is_group:
            return name
        return None

    # ----------------------------------------------------------------- find
    def show_find_bar(self) -> None:
        """Open the find bar (Ctrl+F)."""
        self._place_overlays()
        self.find_bar.open()

    def find(self, text: str) -> bool:
        """Select the first node or group whose name matches ``text`` and show it.

        An exact name wins, then a case-insensitive exact name, then the first name (in graph
        order, groups after nodes) that contains ``text``. Emits ``sig_selected``.
        """
        if self.graph is None:
            return False
        text = text.strip()
        if not text:
            return False
        nodes = list(self.graph.nodes)
        groups = self.graph.groups()
        low = text.lower()
        hit: tuple[str, bool] | None = None
        for names, is_group in ((nodes, False), (groups, True)):
            if text in names:
                hit = (text, is_group)
                break
        if hit is None:
            for test in (lambda n: n.lower() == low, lambda n: low in n.lower()):
                hit = next(((n, False) for n in nodes if test(n)), None) or next(
                    ((g, True) for g in groups if test(g)), None
                )
                if hit is not None:
                    break
        if hit is None:
            self.find_bar.status.setText("no such layer")
            return False
        self.find_bar.status.setText("")
        self.select(*hit)
        self.sig_selected.emit(*hit)
        return True

    @Slot(str)
    def _on_find_bar_find(self, text: str) -> None:
        self.find(text)

    # ----------------------------------------------------------------- keyboard walk
    def move_selection(self, key: Qt.Key) -> bool:
        """Walk along the edges: Up/Down to a predecessor/successor, Left/Right to a sibling.

        Returns True when the selection moved (and emits ``sig_selected``).
        """
        scene = self.graph_scene
        if not scene.cards:
            return False
        name, is_group = self._selected
        cur = self._card_id(name, is_group) if name else None
        if cur is None and name in scene.frames:
            inside = [c for c in scene.cards.values() if self._in_frame(c, name)]
            first = min(inside, key=lambda c: (c.item.y, c.item.x), default=None)
            if first is None:
                return False
            if key == Qt.Key.Key_Down:
                return self._walk_to(first.item.id)
            cur = first.item.id
            if key != Qt.Key.Key_Up:
                return False
        if cur is None:
            top = min(scene.cards.values(), key=lambda c: (c.item.y, c.item.x))
            return self._walk_to(top.item.id)
        here = scene.cards[cur].item
        preds, succs = self._neighbours.get(cur, ([], []))
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            options = preds if key == Qt.Key.Key_Up else succs
            if not options:
                return False
            best = min(options, key=lambda k: (abs(scene.cards[k].item.cx - here.cx), k))
            return self._walk_to(best)
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            sign = -1 if key == Qt.Key.Key_Left else 1
            row = [
                c.item
                for c in scene.cards.values()
                if c.item.id != cur
                and c.item.y < here.bottom
                and c.item.bottom > here.y
                and (c.item.cx - here.cx) * sign > 0
            ]
            if not row:
                # siblings by wiring: what shares a predecessor with this one
                sibs = {s for p in preds for s in self._neighbours[p][1]} - {cur}
                row = [
                    scene.cards[s].item
                    for s in sibs
                    if (scene.cards[s].item.cx - here.cx) * sign > 0
                ]
            if not row:
                return False
            best = min(row, key=lambda i: (abs(i.cx - here.cx), abs(i.y - here.y)))
            return self._walk_to(best.id)
        return False

    def _in_frame(self, card: CardItem, group: str) -> bool:
        c = card.item.container
        return c == group or c.startswith(group + ".")

    def _walk_to(self, item_id: str) -> bool:
        card = self.graph_scene.cards[item_id]
        name = card.item.group if card.is_group else item_id
        self._user_select(name, card.is_group)
        self.ensureVisible(card.mapRectToScene(card.rect), 40, 40)
        return True

    # ----------------------------------------------------------------- zoom
    def zoom(self) -> float:
        """The current scale (1.0 is 100 %)."""
        return self.transform().m11()

    def set_zoom(self, scale: float, anchor_under_mouse: bool = False) -> None:
        """Zoom to ``scale``, clamped to the allowed range."""
        scale = max(MIN_SCALE, min(MAX_SCALE, scale))
        factor = scale / self.zoom()
        if abs(factor - 1.0) < 1e-9:
            return
        if not anchor_under_mouse:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.scale(factor, factor)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._after_zoom()

    def _after_zoom(self) -> None:
        scene = self.graph_scene
        scene.set_sketch_mode(scene.sketch_for_scale(self.zoom()))
        self._update_overview_visibility()
        self.overview.update()
        self.sig_zoom_changed.emit(self.zoom())

    def zoom_in(self) -> None:
        """One step closer."""
        self.set_zoom(self.zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        """One step further away."""
        self.set_zoom(self.zoom() / ZOOM_STEP)

    def zoom_reset(self) -> None:
        """100 %."""
        self.set_zoom(1.0)

    def fit(self) -> None:
        """Show the whole graph."""
        rect = self.graph_scene.sceneRect()
        if rect.isEmpty():
            return
        self.setSceneRect(QRectF())  # no blank margins left over from kept anchors
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.5:
            self.set_zoom(1.5)
        self._after_zoom()

    def initial_zoom(self) -> None:
        """Readable at first sight: the whole graph when it fits at a readable size, else its
        top at a scale that fits the width (at most 100 %)."""
        rect = self.graph_scene.sceneRect()
        vp = self.viewport().rect()
        if rect.isEmpty() or vp.width() < 50:
            return
        fit_w = (vp.width() - 20) / rect.width()
        fit_h = (vp.height() - 20) / rect.height()
        # the whole graph if that is readable, else its top at a readable size
        scale = min(fit_w, fit_h) if min(fit_w, fit_h) >= 0.75 else min(1.0, fit_w)
        self.resetTransform()
        self.set_zoom(max(min(scale, 1.0), 0.5))
        seen = self.mapToScene(self.viewport().rect()).boundingRect()
        self.centerOn(QPointF(rect.center().x(), rect.top() + seen.height() / 2))
        self._after_zoom()

    # ----------------------------------------------------------------- export
    def export_image(
        self, path: str, visible_only: bool = False, scale: float | None = None
    ) -> QSize:
        """Write the whole graph (or the part on screen) as PNG or SVG, by ``path``'s suffix.

        Args:
            path: ``.png`` or ``.svg`` file.
            visible_only: Only the part in the viewport, at the current zoom.
            scale: Pixels per scene unit; default 1 for the whole graph, the current zoom for
                the visible part.

        Returns:
            The image size in pixels.

        Raises:
            cnnviz.ui.graph_export.ExportError: Bad suffix or unwritable file.
        """
        if visible_only:
            rect = self.mapToScene(self.viewport().rect()).boundingRect()
            rect = rect.intersected(self.graph_scene.sceneRect())
            return export_scene(
                self.graph_scene,
                path,
                rect,
                scale if scale is not None else self.zoom(),
                legend=False,
                title=self.graph.name if self.graph else "",
            )
        return export_scene(
            self.graph_scene,
            path,
            None,
            scale if scale is not None else 1.0,
            legend=True,
            title=self.graph.name if self.graph else "",
        )

    # ----------------------------------------------------------------- events
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        # however the zoom changed (fitInView by a caller too), draw at the matching detail
        scene = self.graph_scene
        sketch = scene.sketch_for_scale(self.zoom())
        if sketch != scene.sketch_mode:
            scene.set_sketch_mode(sketch)
        super().paintEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ToolTip:
            tip = self.tooltip_at(event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().viewportEvent(event)

    def tooltip_at(self, pos: QPoint) -> str:
        """The tooltip for viewport point ``pos``: a card's, an edge's or a frame's; "" none."""
        frame_tip = ""
        near = QRect(pos.x() - 3, pos.y() - 3, 7, 7)
        for it in self.items(near):
            if isinstance(it, CardItem) and it.shape().contains(
                it.mapFromScene(self.mapToScene(pos))
            ):
                return it.text.tooltip
            if isinstance(it, EdgeBundleItem):
                return self._edge_tooltip(it.source)
            if isinstance(it, FrameItem) and not frame_tip:
                frame_tip = it.tooltip
        return frame_tip

    def _edge_tooltip(self, source: str) -> str:
        scene = self.graph_scene
        out = [e for e in scene.edges_of.get(source, ()) if e.source == source]
        shapes = {edge_shape_text(e.shape) for e in out if e.shape}
        label = scene.cards[source].text.title if source in scene.cards else source
        lines = [f"from {label}" + (f": {', '.join(sorted(shapes))}" if shapes else "")]
        lines += [f"  → {e.target}" for e in out[:12]]
        if len(out) > 12:
            lines.append(f"  … and {len(out) - 12} more")
        return "\n".join(lines)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        mods = event.modifiers()
        if mods & Qt.KeyboardModifier.ShiftModifier:
            super().wheelEvent(event)  # Shift+wheel scrolls, as in most viewers
            return
        if not event.pixelDelta().isNull() and not mods & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(event)  # a touchpad's two-finger move pans
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom() * ZOOM_STEP**steps, anchor_under_mouse=True)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        key = Qt.Key(event.key())
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Right):
            if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                super().keyPressEvent(event)  # Ctrl+arrows scroll
                return
            self.move_selection(key)
            event.accept()
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            name, is_group = self._selected
            if is_group:
                self.toggle(self._card_id(name, True) or name)
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            if self.find_bar.isVisible():
                self.find_bar.hide()
            elif self._selected[0]:
                self._user_select("", False)
            event.accept()
            return
        if key == Qt.Key.Key_Plus or key == Qt.Key.Key_Equal:
            self.zoom_in()
            return
        if key == Qt.Key.Key_Minus:
            self.zoom_out()
            return
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        super().mouseReleaseEvent(event)
        press, self._press = self._press, None
        if press is None or event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.position().toPoint()
        if (pos - press).manhattanLength() > 4:
            return  # that was a drag (pan)
        hit = self.item_at(pos)
        self._user_select(*(hit or ("", False)))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseDoubleClickEvent(event)
            return
        pos = event.position().toPoint()
        for it in self.items(pos):
            if isinstance(it, CardItem):
                if it.is_group:
                    self.toggle(it.item.id)
                event.accept()
                return
            if isinstance(it, FrameItem):
                self.toggle(it.group)
                event.accept()
                return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt's name
        hit = self.item_at(event.pos())
        name, is_group = hit or ("", False)
        if name:
            self._user_select(name, is_group)
        self.sig_context_menu.emit(name, is_group, event.globalPos())
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        vp = self.viewport().geometry()
        self.overview.place()
        self._update_overview_visibility()
        bar = self.find_bar
        bar.adjustSize()
        bar.move(vp.right() - bar.width() - 10, vp.top() + 8)

    def _update_overview_visibility(self) -> None:
        rect = self.graph_scene.sceneRect()
        seen = self.mapToScene(self.viewport().rect()).boundingRect()
        fits = seen.contains(rect.adjusted(2, 2, -2, -2))
        self.overview.setVisible(self.act_overview.isChecked() and not rect.isEmpty() and not fits)

    @Slot()
    def _on_scroll_changed(self) -> None:
        self._update_overview_visibility()
        self.overview.update()

    @Slot(bool)
    def _on_legend_toggled(self, on: bool) -> None:
        self.legend.setVisible(on and bool(self.graph_scene.cards))

    @Slot(bool)
    def _on_overview_toggled(self, on: bool) -> None:
        self._update_overview_visibility()
