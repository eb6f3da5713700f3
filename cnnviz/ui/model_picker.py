"""The model picker: the zoo by family, torchvision's models, files, and the input size."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

SOURCE_ROLE = Qt.ItemDataRole.UserRole
FILE_FILTER = "Architectures and models (*.json *.py);;Architecture files (*.json);;Python (*.py)"


def python_candidates(path: str) -> list[str]:
    """Classes and functions in a Python file that may build a model, likeliest first.

    The file is parsed, never run: ``nn.Module`` subclasses come first, then other classes,
    then top-level functions (factories). An unreadable file gives an empty list.
    """
    import ast

    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    modules, classes, functions = [], [], []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            (modules if any(b.endswith("Module") for b in bases) else classes).append(node.name)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            functions.append(node.name)
    return modules + classes + functions


def parse_input_size(text: str) -> tuple[int, int, int] | None:
    """``"3x32x32"`` → (3, 32, 32); empty → None (the model's own size).

    Raises:
        ValueError: with a message for the user when the text is not CxHxW of positive ints.
    """
    text = text.strip().lower().replace(" ", "")
    if not text:
        return None
    parts = text.replace(",", "x").split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"input size {text!r} should be CxHxW, e.g. 3x32x32")
    c, h, w = (int(p) for p in parts)
    return (c, h, w)


class ModelPickerPanel(QWidget):
    """Lists what can be opened; emits ``sig_model_requested(source, size, input_shape)``.

    ``source`` is what :func:`cnnviz.core.sources.load_source` takes (a zoo name,
    ``torchvision:NAME``, ``file.py:NAME`` or a ``.json`` path), ``size`` is "teaching" or
    "original", ``input_shape`` is None for the model's own input size.
    """

    sig_model_requested = Signal(str, str, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter models…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter_text_changed)
        layout.addWidget(self.filter_edit)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.itemActivated.connect(self._on_tree_item_activated)
        self.tree.currentItemChanged.connect(self._on_tree_current_changed)
        layout.addWidget(self.tree, 1)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("placeholder")
        layout.addWidget(self.note)
        self.original_size = QCheckBox("Original size (as in the paper)")
        self.original_size.setToolTip(
            "Unchecked: the teaching size (28x28 or 32x32, ten classes) that trains in seconds."
        )
        layout.addWidget(self.original_size)
        row = QHBoxLayout()
        row.addWidget(QLabel("Input"))
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("model's own, e.g. 3x32x32")
        row.addWidget(self.input_edit, 1)
        layout.addLayout(row)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.file_button = QPushButton("File…")
        self.file_button.clicked.connect(self._on_file_clicked)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.file_button)
        layout.addLayout(buttons)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b42318;")
        layout.addWidget(self.error)

    def populate(self) -> None:
        """Fill the tree from the zoo and torchvision (call once torch is imported)."""
        import torchvision

        from cnnviz.core import zoo

        self.tree.clear()
        families: dict[str, QTreeWidgetItem] = {}
        for entry in zoo.entries():
            parent = families.get(entry.family)
            if parent is None:
                parent = QTreeWidgetItem(self.tree, [entry.family])
                parent.setFlags(parent.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                families[entry.family] = parent
            item = QTreeWidgetItem(parent, [entry.title])
            item.setData(0, SOURCE_ROLE, entry.name)
            item.setToolTip(0, f"{entry.note}\n{entry.paper}")
        tv_root = QTreeWidgetItem(self.tree, ["torchvision"])
        tv_root.setFlags(tv_root.flags() & ~Qt.ItemFlag.ItemIsSelectable)
        for name in sorted(torchvision.models.list_models(module=torchvision.models)):
            item = QTreeWidgetItem(tv_root, [name])
            item.setData(0, SOURCE_ROLE, f"torchvision:{name}")
            item.setToolTip(0, f"torchvision.models.{name} (architecture only, no weights)")
        first = self.tree.topLevelItem(0)
        if first is not None:
            first.setExpanded(True)

    def select_source(self, source: str) -> None:
        """Make the item for ``source`` current (if listed)."""
        for item in self._leaf_items():
            if item.data(0, SOURCE_ROLE) == source:
                item.parent().setExpanded(True)
                self.tree.setCurrentItem(item)
                return

    def _leaf_items(self) -> list[QTreeWidgetItem]:
        leaves = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            leaves.extend(top.child(j) for j in range(top.childCount()))
        return leaves

    def _request(self, source: str) -> None:
        try:
            shape = parse_input_size(self.input_edit.text())
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.error.setText("")
        size = "original" if self.original_size.isChecked() else "teaching"
        self.sig_model_requested.emit(source, size, shape)

    @Slot(str)
    def _on_filter_text_changed(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            visible = 0
            for j in range(top.childCount()):
                child = top.child(j)
                match = (
                    not needle
                    or needle in child.text(0).lower()
                    or needle in str(child.data(0, SOURCE_ROLE)).lower()
                    or needle in top.text(0).lower()
                )
                child.setHidden(not match)
                visible += match
            top.setHidden(visible == 0)
            if needle and visible:
                top.setExpanded(True)

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _on_tree_current_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        self.note.setText(current.toolTip(0) if current is not None else "")

    @Slot(QTreeWidgetItem, int)
    def _on_tree_item_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        source = item.data(0, SOURCE_ROLE)
        if source:
            self._request(source)

    @Slot()
    def _on_open_clicked(self) -> None:
        item = self.tree.currentItem()
        source = item.data(0, SOURCE_ROLE) if item is not None else None
        if source:
            self._request(source)
        else:
            self.error.setText("Choose a model in the list first.")

    @Slot()
    def _on_file_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", "", FILE_FILTER)
        if not path:
            return
        if path.endswith(".py"):
            names = python_candidates(path)
            name, ok = QInputDialog.getItem(
                self,
                "Model in a Python file",
                "Class or factory that builds the model:",
                names,
                0,
                True,
            )
            if not ok or not name.strip():
                return
            path = f"{path}:{name.strip()}"
        self._request(path)
