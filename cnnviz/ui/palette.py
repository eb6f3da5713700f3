"""The palette: operation kinds and ready blocks to insert into the graph.

Items are dragged onto a card of the graph view (inserted after that layer) or activated with
a double-click or Enter (inserted after the selected layer). The graph view itself knows
nothing of the palette: :class:`GraphDropFilter`, installed on its viewport, accepts the drag
and announces the drop.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QObject, Qt, Signal, Slot
from PySide6.QtGui import QDrag, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core import blocks, ops

MIME_TYPE = "application/x-cnnviz-palette-item"
"""Mime type of a palette drag; the data is the kind or block name (UTF-8)."""

ITEM_ROLE = Qt.ItemDataRole.UserRole
"""Item data: ``("kind" | "block", name)``; None for section headers."""

# Families in the order a course meets them; kinds that take no input are left out.
FAMILY_ORDER = (
    "convolution",
    "pooling",
    "normalisation",
    "activation",
    "linear",
    "regularisation",
    "merge",
    "reshape",
)
BLOCK_TITLES = {
    "basic": "Blocks: basic",
    "residual": "Blocks: residual",
    "multi-branch": "Blocks: multi-branch",
    "efficient": "Blocks: efficient",
    "upsampling": "Blocks: upsampling",
    "head": "Blocks: classifier heads",
}


def insertable_kinds() -> dict[str, list[ops.OpSpec]]:
    """Kinds of the registry that can sit on an edge, by family, in palette order."""
    out: dict[str, list[ops.OpSpec]] = {f: [] for f in FAMILY_ORDER}
    for spec in ops.REGISTRY.values():
        if spec.arity[1] == 0 or spec.family in ("input", "opaque"):
            continue
        out.setdefault(spec.family, []).append(spec)
    return {f: specs for f, specs in out.items() if specs}


def _param_tip(names: list[str]) -> str:
    return "Parameters: " + ", ".join(names) if names else "No parameters"


class PaletteView(QTreeWidget):
    """The tree of kinds and blocks; drags carry :data:`MIME_TYPE`.

    Signals:
        sig_activated(name): an item was double-clicked or Enter was pressed on it.
    """

    sig_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setColumnCount(1)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformRowHeights(True)
        self.items: dict[str, QTreeWidgetItem] = {}
        self._populate()
        self.itemActivated.connect(self._on_self_item_activated)

    def _populate(self) -> None:
        bold = self.font()
        bold.setBold(True)

        def section(title: str) -> QTreeWidgetItem:
            head = QTreeWidgetItem(self, [title])
            head.setFont(0, bold)
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            head.setExpanded(True)
            return head

        for category, specs in blocks.palette().items():
            head = section(BLOCK_TITLES.get(category, f"Blocks: {category}"))
            for b in specs:
                item = QTreeWidgetItem(head, [f"{b.title}  ·  {b.doc}"])
                item.setData(0, ITEM_ROLE, ("block", b.name))
                item.setToolTip(
                    0,
                    f"<b>{b.title}</b> ({b.name})<br>{b.doc}<br>"
                    f"{_param_tip([p.name for p in b.params])}",
                )
                self.items[b.name] = item
        for family, specs in insertable_kinds().items():
            head = section(f"Layers: {family}")
            for s in specs:
                item = QTreeWidgetItem(head, [f"{s.kind}  ·  {s.doc}"])
                item.setData(0, ITEM_ROLE, ("kind", s.kind))
                item.setToolTip(
                    0,
                    f"<b>{s.kind}</b> ({family})<br>{s.doc}<br>"
                    f"{_param_tip([p.name for p in s.params])}",
                )
                self.items[s.kind] = item
        for i in range(self.topLevelItemCount()):
            self.topLevelItem(i).setExpanded(True)

    def current_name(self) -> str:
        """Kind or block name of the current item, "" for a header or nothing."""
        item = self.currentItem()
        data = item.data(0, ITEM_ROLE) if item is not None else None
        return data[1] if data else ""

    def set_filter(self, text: str) -> int:
        """Show only items whose name or description contains ``text``; returns how many."""
        needle = text.strip().lower()
        shown = 0
        for i in range(self.topLevelItemCount()):
            head = self.topLevelItem(i)
            any_child = False
            for j in range(head.childCount()):
                child = head.child(j)
                _, name = child.data(0, ITEM_ROLE)
                hit = not needle or needle in child.text(0).lower() or needle in name.lower()
                child.setHidden(not hit)
                any_child |= hit
                shown += hit
            head.setHidden(not any_child)
        return shown

    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:  # noqa: N802 - Qt's name
        mime = QMimeData()
        data = items[0].data(0, ITEM_ROLE) if items else None
        if data:
            mime.setData(MIME_TYPE, QByteArray(data[1].encode("utf-8")))
            mime.setText(data[1])
        return mime

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt's name
        return [MIME_TYPE]

    def startDrag(self, actions: Qt.DropAction) -> None:  # noqa: N802 - Qt's name
        item = self.currentItem()
        if item is None or not item.data(0, ITEM_ROLE):
            return
        drag = QDrag(self)
        drag.setMimeData(self.mimeData([item]))
        drag.exec(Qt.DropAction.CopyAction)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.current_name():
            self.sig_activated.emit(self.current_name())
            event.accept()
            return
        super().keyPressEvent(event)

    @Slot(QTreeWidgetItem, int)
    def _on_self_item_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        data = item.data(0, ITEM_ROLE)
        if data:
            self.sig_activated.emit(data[1])


class PalettePanel(QWidget):
    """The palette dock's body: a filter box above :class:`PaletteView`.

    Signals:
        sig_insert_requested(name): insert this kind or block after the selected layer.
    """

    sig_insert_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: conv, residual, pool…")
        self.filter_edit.setClearButtonEnabled(True)
        self.view = PaletteView()
        self.hint = QLabel("Drag onto a layer to insert after it, or double-click.")
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hint)
        self.filter_edit.textChanged.connect(self._on_filter_edit_text_changed)
        self.filter_edit.returnPressed.connect(self._on_filter_edit_return_pressed)
        self.view.sig_activated.connect(self.sig_insert_requested)

    @Slot(str)
    def _on_filter_edit_text_changed(self, text: str) -> None:
        shown = self.view.set_filter(text)
        self.hint.setText(
            f"Nothing matches {text!r}."
            if not shown
            else "Drag onto a layer to insert after it, or double-click."
        )

    @Slot()
    def _on_filter_edit_return_pressed(self) -> None:
        # Enter in the filter box goes to the first match, so typing "se<Enter><Enter>" inserts
        view = self.view
        for i in range(view.topLevelItemCount()):
            head = view.topLevelItem(i)
            for j in range(head.childCount()):
                if not head.child(j).isHidden():
                    view.setCurrentItem(head.child(j))
                    view.setFocus()
                    return


class GraphDropFilter(QObject):
    """Accepts palette drags on a graph view's viewport; a drop on a card asks for an insert.

    Args:
        view: The :class:`~cnnviz.ui.graph_view.GraphView` (only ``item_at`` and ``viewport``
            are used).

    Signals:
        sig_dropped(what, target, is_group): ``what`` was dropped on node or group ``target``.
    """

    sig_dropped = Signal(str, str, bool)

    def __init__(self, view) -> None:
        super().__init__(view)
        self.view = view
        view.viewport().setAcceptDrops(True)
        view.viewport().installEventFilter(self)

    @staticmethod
    def _name(event) -> str:
        mime = event.mimeData()
        if mime is None or not mime.hasFormat(MIME_TYPE):
            return ""
        return bytes(mime.data(MIME_TYPE).data()).decode("utf-8", "replace")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        what = self._name(event)
        if not what:
            return False
        hit = self.view.item_at(event.position().toPoint())
        if kind == QEvent.Type.DragEnter:
            event.acceptProposedAction()  # entering anywhere: moves decide per card
            return True
        if kind == QEvent.Type.DragMove:
            if hit:
                event.acceptProposedAction()
            else:
                event.ignore()
            return True
        if hit:
            event.acceptProposedAction()
            self.sig_dropped.emit(what, hit[0], hit[1])
        else:
            event.ignore()
        return True
