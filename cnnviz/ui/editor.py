"""The editor: turns menus, the palette, drops and the parameter form into named edits.

:class:`EditController` owns the :class:`~cnnviz.core.edit.EditSession` of the model shown in
the main window. Every edit goes through the session, which checks it and never raises; the
controller then shows the result in the status bar and hands the changed graph and its new
analysis to every panel (through the window's ``sig_model_loaded``: the graph view sees the same
graph object and redraws it in place, keeping what is open and where it looks).

Edits are refused while a model trains (the trainer holds the built module; changing the graph
under it would leave the curves describing another network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QInputDialog, QMenu

from cnnviz.core import blocks, ops
from cnnviz.core.edit import ChangeEvent, EditResult, EditSession
from cnnviz.ui.palette import FAMILY_ORDER, GraphDropFilter, PalettePanel, insertable_kinds

if TYPE_CHECKING:
    from cnnviz.ui.main_window import MainWindow

# What most edits of a CNN insert: first in every "Insert" menu.
QUICK_KINDS = ("conv_bn_relu", "conv2d", "batch_norm2d", "relu", "max_pool2d", "dropout")
MESSAGE_MS = 10_000


def _parse_shape(text: str) -> list[int] | None:
    parts = [p for p in text.replace("x", ",").replace("×", ",").replace(" ", ",").split(",") if p]
    try:
        shape = [int(p) for p in parts]
    except ValueError:
        return None
    return shape or None


class EditController(QObject):
    """Editing for a :class:`~cnnviz.ui.main_window.MainWindow`: session, menus, palette.

    Args:
        window: The main window, with its model views built (graph view, inspector, layer
            table, parameter editor, training panel).

    Signals:
        sig_changed(): the graph, the undo history or the dirty flag changed.
        sig_session_started(session): another model is shown, in a new session.

    Attributes:
        session: The session of the model shown (None before one is loaded).
        last_message: The last edit result or error shown in the status bar.
    """

    sig_changed = Signal()
    sig_session_started = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session: EditSession | None = None
        self.last_message = ""
        self._selected: tuple[str, bool] = ("", False)
        self._build_palette()
        self._build_actions()
        self.drop_filter = GraphDropFilter(window.graph_view)
        self.drop_filter.sig_dropped.connect(self._on_drop_filter_dropped)
        window.graph_view.sig_context_menu.connect(self._on_graph_view_context_menu)
        window.sig_model_loaded.connect(self._on_window_model_loaded)
        window.sig_selection_changed.connect(self._on_window_selection_changed)
        window.param_editor.sig_edited.connect(self._on_param_editor_edited)
        window.training_panel.sig_state_changed.connect(self._update_actions)
        self._update_actions()

    # ----------------------------------------------------------------- construction
    def _build_palette(self) -> None:
        w = self.window
        self.palette = PalettePanel()
        self.palette.sig_insert_requested.connect(self._on_palette_insert_requested)
        dock = getattr(w, "palette_dock", None)
        if dock is None:  # a window without the placeholder dock: make one
            dock = QDockWidget("Palette", w)
            dock.setObjectName("palette_dock")
            w.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
            w.palette_dock = dock
        dock.setWidget(self.palette)

    def _action(
        self, text: str, slot: Callable[[], Any], shortcut: str | None = None, tip: str = ""
    ) -> QAction:
        act = QAction(text, self.window)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
            # the graph view has focus most of the time; the window-wide context reaches it too
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        act.triggered.connect(lambda _checked=False: slot())
        act.setStatusTip(tip)
        act.setToolTip(tip)
        return act

    def _build_actions(self) -> None:
        w = self.window
        w.act_undo.triggered.connect(self.undo)
        w.act_redo.triggered.connect(self.redo)
        self.act_delete = self._action(
            "&Delete", self.delete_selection, "Delete", "Delete the selected layers and reconnect"
        )
        self.act_wrap_residual = self._action(
            "Wrap selection in &residual connection",
            self.wrap_selection_in_residual,
            "Ctrl+R",
            "Add a shortcut around the selected layers: out = F(x) + x",
        )
        self.act_wrap_group = self._action(
            "Wrap selection in &group…",
            self.wrap_selection_in_group,
            "Ctrl+G",
            "Put the selected layers into a new block",
        )
        self.act_input_size = self._action(
            "&Input size…", self.change_input_size, tip="Change the input shape (C, H, W)"
        )
        self.act_num_classes = self._action(
            "Number of &classes…",
            self.change_num_classes,
            tip="Change the out features of the layer giving the class scores",
        )
        menu = getattr(w, "edit_menu", None)
        if menu is None:
            menu = w.act_undo.associatedObjects()[-1] if w.act_undo.associatedObjects() else None
        if isinstance(menu, QMenu):
            menu.addSeparator()
            for act in (self.act_delete, self.act_wrap_residual, self.act_wrap_group):
                menu.addAction(act)
            menu.addSeparator()
            menu.addAction(self.act_input_size)
            menu.addAction(self.act_num_classes)
        for act in (self.act_delete, self.act_wrap_residual, self.act_wrap_group):
            w.addAction(act)

    # ----------------------------------------------------------------- session
    @Slot(object, object)
    def _on_window_model_loaded(self, graph, analysis) -> None:
        if self.session is not None and graph is self.session.graph:
            return  # our own refresh after an edit
        if self.session is not None:
            self.session.remove_listener(self._on_session_changed)
        self.session = EditSession(graph, analysis)
        self.session.add_listener(self._on_session_changed)
        self._selected = ("", False)
        self.window.param_editor.set_session(self.session)
        self._update_actions()
        self.sig_session_started.emit(self.session)
        self.sig_changed.emit()

    def _on_session_changed(self, event: ChangeEvent) -> None:
        if event.action != "saved":
            self._show_graph()
        self._update_actions()
        self.sig_changed.emit()

    def _show_graph(self) -> None:
        """Hand the edited graph and its analysis to every panel, keeping the selection."""
        w, s = self.window, self.session
        graph, analysis = s.graph, s.analysis
        w.graph, w.analysis = graph, analysis
        w.layer_table.set_model(graph, analysis)
        w.inspector.set_model(graph, analysis)
        w.sig_model_loaded.emit(graph, analysis)
        name, is_group = self._selected
        exists = name in graph.nodes if not is_group else name in set(graph.groups())
        if name and not exists:
            w.select_item("", False)
        elif name:
            w.inspector.show_item(name, is_group)
            w.param_editor.show_node(name if not is_group else "")
            w.graph_view.select(name, is_group)
        else:
            w.param_editor.show_node("")

    @Slot(str, bool)
    def _on_window_selection_changed(self, name: str, is_group: bool) -> None:
        self._selected = (name, is_group)
        self.window.param_editor.show_node(name if not is_group else "")
        self._update_actions()

    @property
    def dirty(self) -> bool:
        """True when the graph has changes not saved to a file."""
        files = getattr(self.window, "files", None)
        recovered = bool(files and files.recovered)
        return self.session is not None and (self.session.dirty or recovered)

    def _update_actions(self) -> None:
        w, s = self.window, self.session
        busy = self._training()
        for act, can, name, verb in (
            (w.act_undo, s is not None and s.can_undo, s.undo_name if s else None, "Undo"),
            (w.act_redo, s is not None and s.can_redo, s.redo_name if s else None, "Redo"),
        ):
            act.setEnabled(bool(can) and not busy)
            act.setText(f"&{verb} {name}" if can else f"&{verb}")
            tip = f"{verb} {name}" if can else f"Nothing to {verb.lower()}"
            if can and busy:
                tip += " (stop training first)"
            act.setToolTip(tip)
            act.setStatusTip(tip)
        has = s is not None and not busy
        names = self.selection_names()
        self.act_delete.setEnabled(has and bool(names))
        self.act_wrap_residual.setEnabled(has and bool(names))
        self.act_wrap_group.setEnabled(has and bool(names))
        self.act_input_size.setEnabled(has)
        self.act_num_classes.setEnabled(has)

    def _training(self) -> bool:
        panel = getattr(self.window, "training_panel", None)
        return bool(panel is not None and panel.is_training())

    # ----------------------------------------------------------------- reporting
    def report(self, result: EditResult, what: str = "") -> EditResult:
        """Show ``result`` in the status bar (refusals say why); returns it."""
        if result.ok:
            text = result.message
            if self.session is not None and not self.session.can_train:
                text += " · training is off until that is fixed"
        else:
            text = f"Cannot {what or 'do that'}: {result.message}"
        self.last_message = text
        self.window.statusBar().showMessage(text, MESSAGE_MS * (1 if result.ok else 2))
        return result

    def _run(self, what: str, edit: Callable[[EditSession], EditResult]) -> EditResult:
        """Run one edit on the session and report it (refused while training or unloaded)."""
        if self.session is None:
            return self.report(EditResult(False, "no model is open"), what)
        if self._training():
            return self.report(
                EditResult(False, "a training run is going on; stop it (Shift+F5) to edit"), what
            )
        result = edit(self.session)
        return self.report(result, what)

    # ----------------------------------------------------------------- selection
    def selection_names(self) -> list[str]:
        """The selected nodes (groups expanded to their nodes), in graph order."""
        s = self.session
        if s is None:
            return []
        view = self.window.graph_view
        picked: list[tuple[str, bool]] = []
        many = getattr(view, "selected_names", None)  # Ctrl+click adds to the selection
        if callable(many):
            picked = [(n, n not in s.graph.nodes) for n in many()]
        elif view.selected():
            picked = [(view.selected(), view.selected_is_group())]
        if not picked and self._selected[0]:
            picked = [self._selected]
        return self._expand(picked)

    def _expand(self, picked: Sequence[tuple[str, bool]]) -> list[str]:
        graph = self.session.graph
        names: dict[str, None] = {}
        for name, is_group in picked:
            if is_group:
                names.update(dict.fromkeys(graph.nodes_in_group(name)))
            elif name in graph.nodes:
                names[name] = None
        order = {n: i for i, n in enumerate(graph.nodes)}
        return sorted(names, key=lambda n: order.get(n, 0))

    def _anchor(self, name: str, is_group: bool, position: str) -> str | None:
        """The node an insert goes next to: a group's output (after) or entry (before)."""
        s = self.session
        if not is_group:
            return name if name in s.graph.nodes else None
        members = s.graph.nodes_in_group(name)
        if not members:
            return None
        if position == "after":
            g = s.analysis.groups.get(name)
            return g.output_node if g is not None else members[-1]
        inside = set(members)
        for n in members:
            if any(i not in inside for i in s.graph[n].inputs):
                return n
        return members[0]

    def next_block(self, group: str) -> str | None:
        """The sibling group that reads ``group``'s output (``layer1.1`` after ``layer1.0``)."""
        s = self.session
        g = s.analysis.groups.get(group)
        if g is None:
            return None
        parent = group.rpartition(".")[0]
        depth = group.count(".")
        for succ in s.graph.successors(g.output_node):
            path = s.graph[succ].group
            parts = path.split(".") if path else []
            if len(parts) <= depth:
                continue
            sibling = ".".join(parts[: depth + 1])
            if sibling != group and sibling.rpartition(".")[0] == parent:
                return sibling
        return None

    # ----------------------------------------------------------------- edits
    def insert(
        self, what: str, anchor: str, position: str = "after", is_group: bool = False
    ) -> EditResult:
        """Insert kind or block ``what`` next to node (or group) ``anchor``; select it."""
        target = self._anchor(anchor, is_group, position) if self.session else anchor
        if target is None:
            return self.report(EditResult(False, f"there is no layer {anchor!r}"), f"insert {what}")
        result = self._run(f"insert {what}", lambda s: s.insert(what, target, position))
        if result.ok and result.created:
            new = [n for n in result.created if n in self.session.graph.nodes]
            if new:
                self.window.select_item(new[-1], False)
        return result

    def insert_after_selection(self, what: str) -> EditResult:
        """Insert ``what`` after the selected layer (or the last layer when none is)."""
        name, is_group = self._selected
        if not name and self.session is not None:
            outs = self.session.graph.outputs or list(self.session.graph.nodes)[-1:]
            name, is_group = (outs[0] if outs else ""), False
        if not name:
            return self.report(EditResult(False, "select a layer first"), f"insert {what}")
        return self.insert(what, name, "after", is_group)

    def delete(self, names: Sequence[str]) -> EditResult:
        """Delete nodes and reconnect their neighbours."""
        return self._run("delete", lambda s: s.delete(list(names)))

    def delete_selection(self) -> EditResult:
        """Delete the selected layers (a selected group: all its layers)."""
        return self.delete(self.selection_names())

    def replace(self, name: str, kind: str) -> EditResult:
        """Change node ``name`` into a ``kind``, keeping its edges."""
        return self._run(f"replace {name}", lambda s: s.replace(name, kind))

    def wrap_residual(self, names: Sequence[str]) -> EditResult:
        """Add a shortcut around ``names`` (projection when the shape changes)."""
        return self._run("wrap in a residual connection", lambda s: s.wrap_residual(list(names)))

    def wrap_selection_in_residual(self) -> EditResult:
        """Wrap the selected layers (or blocks) in a residual connection."""
        return self.wrap_residual(self.selection_names())

    def wrap_with_next_block(self, group: str) -> EditResult:
        """Wrap block ``group`` and the block after it in one residual connection."""
        if self.session is None:
            return self.report(EditResult(False, "no model is open"), "wrap")
        nxt = self.next_block(group)
        if nxt is None:
            return self.report(EditResult(False, f"no block follows {group}"), "wrap")
        result = self.wrap_residual(self._expand([(group, True), (nxt, True)]))
        if result.ok:  # select the new block, so the next right-click is on the next unit
            graph = self.session.graph
            adds = [graph[n].group for n in result.created if graph[n].kind == "add"]
            if adds and adds[0]:
                self.window.select_item(adds[0], True)
        return result

    def wrap_group(self, names: Sequence[str], group_name: str | None = None) -> EditResult:
        """Put ``names`` into a new group (named ``group_name``, or "block")."""
        return self._run("group", lambda s: s.wrap_group(list(names), group_name))

    def wrap_selection_in_group(self, group_name: str | None = None) -> EditResult | None:
        """Group the selected layers; asks for the group's name when none is given."""
        names = self.selection_names()
        if group_name is None:
            text, ok = QInputDialog.getText(
                self.window, "Wrap in group", "Name of the new group:", text="block"
            )
            if not ok:
                return None
            group_name = text.strip() or "block"
        return self.wrap_group(names, group_name)

    def connect_nodes(self, src: str, dst: str) -> EditResult:
        """Add the edge ``src`` -> ``dst``."""
        return self._run("connect", lambda s: s.connect(src, dst))

    def connect_from(self, src: str) -> EditResult | None:
        """Ask which layer ``src`` should feed, then connect it."""
        if self.session is None:
            return None
        names = [n for n in self.session.graph.nodes if n != src]
        dst, ok = QInputDialog.getItem(
            self.window, "Connect", f"Feed the output of {src} into:", names, 0, True
        )
        if not ok or not dst:
            return None
        return self.connect_nodes(src, dst)

    def disconnect_nodes(self, src: str, dst: str) -> EditResult:
        """Remove the edge ``src`` -> ``dst``."""
        return self._run("disconnect", lambda s: s.disconnect(src, dst))

    def set_params(self, name: str, **changes: Any) -> EditResult:
        """Change hyper-parameters of ``name``."""
        return self._run(f"change {name}", lambda s: s.set_params(name, **changes))

    def change_input_size(self, shape: Sequence[int] | None = None) -> EditResult | None:
        """Change the input size; asks for it when ``shape`` is None."""
        if self.session is None:
            return None
        if shape is None:
            current = self.session.graph.input_shape or ()
            text, ok = QInputDialog.getText(
                self.window,
                "Input size",
                "One sample's shape (channels, height, width):",
                text=", ".join(str(s) for s in current),
            )
            if not ok:
                return None
            parsed = _parse_shape(text)
            if parsed is None:
                return self.report(
                    EditResult(False, f"{text!r} is not a shape; write e.g. 3, 32, 32"),
                    "change the input size",
                )
            shape = parsed
        return self._run("change the input size", lambda s: s.set_input_shape(list(shape)))

    def change_num_classes(self, n: int | None = None) -> EditResult | None:
        """Change the number of classes; asks for it when ``n`` is None."""
        if self.session is None:
            return None
        if n is None:
            layers = self.session.logits_nodes()
            current = 10
            if layers:
                node = self.session.graph[layers[0]]
                current = int(node.params.get("out_features", node.params.get("out_channels", 10)))
            n, ok = QInputDialog.getInt(
                self.window, "Number of classes", "Classes:", current, 1, 1_000_000
            )
            if not ok:
                return None
        return self._run("change the number of classes", lambda s: s.set_num_classes(n))

    @Slot()
    def undo(self) -> EditResult:
        """Undo the last edit."""
        return self._run("undo", lambda s: s.undo())

    @Slot()
    def redo(self) -> EditResult:
        """Redo the last undone edit."""
        return self._run("redo", lambda s: s.redo())

    # ----------------------------------------------------------------- slots
    @Slot(str)
    def _on_palette_insert_requested(self, what: str) -> None:
        self.insert_after_selection(what)
        self.window.graph_view.setFocus()

    @Slot(str, str, bool)
    def _on_drop_filter_dropped(self, what: str, target: str, is_group: bool) -> None:
        # after the drop returns: a refresh inside the drag's event would rebuild the scene
        # under Qt's drag machinery
        QTimer.singleShot(0, lambda: self.insert(what, target, "after", is_group))

    @Slot(object)
    def _on_param_editor_edited(self, result: EditResult) -> None:
        self.report(result, f"change {self.window.param_editor.node_name}")

    @Slot(str, bool, QPoint)
    def _on_graph_view_context_menu(self, name: str, is_group: bool, pos: QPoint) -> None:
        if name and (name, is_group) != self._selected:
            self.window.select_item(name, is_group)
        menu = self.context_menu(name, is_group)
        menu.exec(pos)
        menu.deleteLater()

    # ----------------------------------------------------------------- context menu
    def _insert_menu(self, title: str, anchor: str, is_group: bool, position: str) -> QMenu:
        menu = QMenu(title, self.window)
        menu.setToolTipsVisible(True)

        def add(m: QMenu, what: str, text: str, tip: str) -> None:
            act = m.addAction(text)
            act.setToolTip(tip)
            act.setData(what)
            act.triggered.connect(
                lambda _c=False, w=what: self.insert(w, anchor, position, is_group)
            )

        kinds = {s.kind: s for specs in insertable_kinds().values() for s in specs}
        for what in QUICK_KINDS:
            if what in blocks.BLOCKS:
                add(menu, what, blocks.BLOCKS[what].title, blocks.BLOCKS[what].doc)
            elif what in kinds:
                add(menu, what, what, kinds[what].doc)
        menu.addSeparator()
        blocks_menu = menu.addMenu("Blocks")
        for category, specs in blocks.palette().items():
            sub = blocks_menu.addMenu(category.capitalize())
            sub.setToolTipsVisible(True)
            for b in specs:
                add(sub, b.name, b.title, b.doc)
        for family, specs in insertable_kinds().items():
            sub = menu.addMenu(family.capitalize())
            sub.setToolTipsVisible(True)
            for spec in specs:
                add(sub, spec.kind, spec.kind, spec.doc)
        return menu

    def _replace_menu(self, name: str) -> QMenu:
        menu = QMenu("Replace &with", self.window)
        menu.setToolTipsVisible(True)
        node = self.session.graph[name]
        spec = ops.REGISTRY.get(node.kind)
        n_in = len(node.inputs)
        families = insertable_kinds()
        order = list(FAMILY_ORDER)
        if spec is not None and spec.family in families:  # its own family first
            order.remove(spec.family)
            order.insert(0, spec.family)
        for family in order:
            specs = [
                s
                for s in families.get(family, [])
                if s.kind != node.kind
                and s.arity[0] <= n_in
                and (s.arity[1] is None or n_in <= s.arity[1])
            ]
            if not specs:
                continue
            sub = menu.addMenu(family.capitalize())
            sub.setToolTipsVisible(True)
            for s in specs:
                act = sub.addAction(s.kind)
                act.setToolTip(s.doc)
                act.setData(s.kind)
                act.triggered.connect(lambda _c=False, k=s.kind: self.replace(name, k))
        return menu

    def context_menu(self, name: str, is_group: bool) -> QMenu:
        """The graph view's right-click menu for node or group ``name`` ("" for background)."""
        w = self.window
        menu = QMenu(w)
        menu.setToolTipsVisible(True)
        s = self.session
        if s is None:
            menu.addAction("No model open").setEnabled(False)
            return menu
        busy = self._training()
        if name:
            title = menu.addAction(f"{'Block' if is_group else s.graph[name].kind}: {name}")
            title.setEnabled(False)
            menu.addSeparator()
            after = self._insert_menu("Insert &after", name, is_group, "after")
            before = self._insert_menu("Insert &before", name, is_group, "before")
            menu.addMenu(after)
            menu.addMenu(before)
            if not is_group:
                menu.addMenu(self._insert_menu("Insert in &parallel", name, False, "parallel"))
                if s.graph[name].kind != "input":
                    menu.addMenu(self._replace_menu(name))
            menu.addSeparator()
            selection = self.selection_names()
            n_sel = len(selection)
            wrap = menu.addAction(
                f"Wrap selection in residual connection ({n_sel} layer{'s' * (n_sel != 1)})"
            )
            wrap.triggered.connect(self.wrap_selection_in_residual)
            if is_group:
                nxt = self.next_block(name)
                if nxt is not None:
                    both = menu.addAction(f"Wrap {name} and {nxt} in a residual connection")
                    both.setToolTip("The usual ResNet block: two units and a shortcut")
                    both.triggered.connect(lambda _c=False, g=name: self.wrap_with_next_block(g))
            group = menu.addAction("Wrap selection in group…")
            group.triggered.connect(lambda _c=False: self.wrap_selection_in_group())
            if not is_group:
                menu.addSeparator()
                conn = menu.addAction(f"Connect {name} to…")
                conn.triggered.connect(lambda _c=False: self.connect_from(name))
                disc = menu.addMenu("Disconnect")
                node = s.graph[name]
                for src in node.inputs:
                    act = disc.addAction(f"from {src}")
                    act.triggered.connect(lambda _c=False, a=src: self.disconnect_nodes(a, name))
                for dst in s.graph.successors(name):
                    act = disc.addAction(f"to {dst}")
                    act.triggered.connect(lambda _c=False, b=dst: self.disconnect_nodes(name, b))
                disc.setEnabled(not disc.isEmpty())
            menu.addSeparator()
            delete = menu.addAction(
                f"Delete {'block ' + name if is_group else name}"
                + (f" ({len(selection)} layers)" if len(selection) > 1 else "")
            )
            delete.setShortcut(QKeySequence("Delete"))
            delete.triggered.connect(self.delete_selection)
            for act in menu.actions():
                if not act.isSeparator() and act is not title:
                    act.setEnabled(not busy)
            menu.addSeparator()
        menu.addAction(w.act_undo)
        menu.addAction(w.act_redo)
        menu.addSeparator()
        menu.addAction(self.act_input_size)
        menu.addAction(self.act_num_classes)
        return menu


def install_editor(window: MainWindow) -> EditController:
    """Add editing and file handling to ``window`` (as ``window.editor`` and ``window.files``).

    Needs the model views built: the graph view, ``param_editor``, the training panel.
    """
    from cnnviz.ui.files import FileController

    editor = EditController(window)
    window.editor = editor
    window.files = FileController(window, editor)
    if window.graph is not None:
        editor._on_window_model_loaded(window.graph, window.analysis)
    return editor


def find_action(menu: QMenu, text: str) -> QAction | None:
    """The action of ``menu`` or its submenus whose text (without "&") starts with ``text``."""
    for act in menu.actions():
        if act.menu() is not None:
            hit = find_action(act.menu(), text)
            if hit is not None:
                return hit
        if not act.isSeparator() and act.text().replace("&", "").startswith(text):
            return act
    return None
