"""The layer table: every node and group with its shape, parameters, MACs and receptive field."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from cnnviz.core.analysis import Analysis
from cnnviz.core.graph import ArchGraph
from cnnviz.core.ops import shape_str

NAME_ROLE = Qt.ItemDataRole.UserRole
IS_GROUP_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Layer", "Kind", "Output shape", "Params", "MACs", "Receptive field")
ERROR_COLOUR = QColor("#b42318")


def rf_text(rf) -> str:
    """``5x5 / jump 1`` (or ``global``) for a receptive field, "" where untracked."""
    if rf is None:
        return ""
    if rf.global_:
        return "global"
    if rf.size is None:
        return ""
    size = "x".join(_num(s) for s in rf.size)
    jump = "x".join(_num(j) for j in dict.fromkeys(rf.jump)) if rf.jump else "?"
    return f"{size}  / jump {jump}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"


def _count(n: int) -> str:
    return f"{n:,}" if n else "–"


class LayerTablePanel(QTreeWidget):
    """Groups as expandable rows, nodes inside them; emits the selected name."""

    sig_selected = Signal(str, bool)  # name, is_group

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        header = self.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col in (3, 4):
            self.headerItem().setTextAlignment(col, Qt.AlignmentFlag.AlignRight)
        self.items: dict[str, QTreeWidgetItem] = {}
        self.currentItemChanged.connect(self._on_current_item_changed)

    def set_model(self, graph: ArchGraph, analysis: Analysis, expand_depth: int = 1) -> None:
        """Show ``analysis`` of ``graph``; groups deeper than ``expand_depth`` start collapsed."""
        self.clear()
        self.items = {}
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        group_font = QFont(self.font())
        group_font.setBold(True)

        def parent_for(group: str) -> QTreeWidget | QTreeWidgetItem:
            if not group:
                return self
            if group in self.items:
                return self.items[group]
            owner = parent_for(group.rsplit(".", 1)[0] if "." in group else "")
            g = analysis.groups.get(group)
            item = QTreeWidgetItem(owner)
            item.setText(0, group.rsplit(".", 1)[-1])
            item.setText(1, "group")
            if g is not None:
                item.setText(2, shape_str(g.output_shape))
                item.setText(3, _count(g.total_params))
                item.setText(4, _count(g.macs))
                item.setText(5, rf_text(g.rf))
            item.setData(0, NAME_ROLE, group)
            item.setData(0, IS_GROUP_ROLE, True)
            item.setToolTip(0, group)
            for col in range(len(COLUMNS)):
                item.setFont(col, group_font)
            item.setExpanded(group.count(".") + 1 <= expand_depth)
            self.items[group] = item
            return item

        for name in analysis.order:
            node = analysis.nodes[name]
            item = QTreeWidgetItem(parent_for(node.group))
            short = (
                name[len(node.group) + 1 :] if node.group and name.startswith(node.group) else name
            )
            item.setText(0, short)
            item.setToolTip(0, name)
            item.setText(1, node.kind)
            item.setText(2, shape_str(node.output_shape))
            item.setText(3, _count(node.total_params))
            item.setText(4, _count(node.macs))
            item.setText(5, rf_text(node.rf))
            item.setData(0, NAME_ROLE, name)
            item.setData(0, IS_GROUP_ROLE, False)
            item.setFont(2, mono)
            if node.error:
                for col in range(len(COLUMNS)):
                    item.setForeground(col, QBrush(ERROR_COLOUR))
                tip = node.error + (f"\nFix: {node.fix}" if node.fix else "")
                item.setToolTip(1, tip)
                item.setToolTip(2, tip)
            self.items[name] = item
        for col in (3, 4):
            for item in self.items.values():
                item.setTextAlignment(
                    col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
        for col in range(len(COLUMNS) - 1):
            self.resizeColumnToContents(col)
        self.setColumnWidth(0, max(self.columnWidth(0), 220))

    def select(self, name: str) -> None:
        """Select the row of node or group ``name`` and scroll to it."""
        item = self.items.get(name)
        if item is not None:
            self.setCurrentItem(item)
            self.scrollToItem(item)

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _on_current_item_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        if current is not None:
            self.sig_selected.emit(current.data(0, NAME_ROLE), bool(current.data(0, IS_GROUP_ROLE)))
