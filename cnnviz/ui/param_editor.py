"""Hyper-parameter form of the selected layer, applied as an undoable edit.

The form is built from the kind's :class:`~cnnviz.core.ops.ParamSpec` list: a spin box (with
the spec's bounds) for an integer, a combo box for a choice, a check box for a flag and a line
edit for the rest ("3, 3" for a kernel size, "same" for padding, "1e-05" for eps). A value that
cannot be read or breaks a rule is shown in red under its field; nothing is applied until every
field is valid. Apply (or Enter) calls :meth:`~cnnviz.core.edit.EditSession.set_params`.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnnviz.core import ops
from cnnviz.core.edit import EditResult, EditSession

_ERROR_STYLE = "color: #b42318;"
_SPLIT = re.compile(r"[\s,x×]+")
_INT_LIMIT = 2**31 - 1


class ParamError(ValueError):
    """A field's text cannot be read as a value of its type."""


def format_value(value: Any) -> str:
    """A parameter value as it is typed in a line edit ("3, 3", "same", "1e-05", "")."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_value(ps: ops.ParamSpec, text: str) -> Any:
    """The value of a line edit for parameter ``ps``; "" is None (the default).

    Raises:
        ParamError: The text is not of the parameter's type (the message says what to write).
    """
    text = text.strip()
    if not text:
        return None
    t = ps.type
    try:
        if t == "int":
            return int(text)
        if t == "float":
            return float(text)
        if t == "str":
            return text
        if t == "bool":
            if text.lower() in ("true", "yes", "1"):
                return True
            if text.lower() in ("false", "no", "0"):
                return False
            raise ValueError
        if t == "choice":
            for c in ps.choices or ():
                if str(c) == text:
                    return c
            raise ValueError
        if t == "padding" and text.lower() in ("same", "valid"):
            return text.lower()
        parts = [p for p in _SPLIT.split(text) if p]
        if t == "floats":
            vals: list[Any] = [float(p) for p in parts]
        else:
            vals = [int(p) for p in parts]
        if t == "ints":
            return vals
        return vals[0] if len(vals) == 1 else vals
    except ValueError:
        pass
    hints = {
        "int": "an integer, e.g. 64",
        "float": "a number, e.g. 0.1 or 1e-5",
        "bool": "true or false",
        "choice": "one of " + ", ".join(str(c) for c in ps.choices or ()),
        "size": "an integer or integers separated by commas, e.g. 3 or 3, 3",
        "padding": "an integer, integers separated by commas, 'same' or 'valid'",
        "ints": "integers separated by commas, e.g. 1, 2",
        "dims": "an integer or integers separated by commas",
        "floats": "a number or numbers separated by commas",
    }
    raise ParamError(f"{ps.name}: write {hints.get(t, 'a value')}")


def _field_of(problem: str, names: list[str]) -> str | None:
    """The parameter a problem message is about (messages start with or quote its name)."""
    head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", problem)
    if head and head.group(0) in names:
        return head.group(0)
    for n in names:
        if f"'{n}'" in problem or f"{n}=" in problem:
            return n
    return None


class ParamEditor(QWidget):
    """The form for one node's hyper-parameters.

    Signals:
        sig_edited(result): Apply was pressed; the :class:`~cnnviz.core.edit.EditResult`
            (``ok=False`` with the message when a field is invalid or the edit was refused).
    """

    sig_edited = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: EditSession | None = None
        self.node_name = ""
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.specs: dict[str, ops.ParamSpec] = {}
        self.title = QLabel()
        self.title.setObjectName("paramTitle")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.form_box = QWidget()
        self.form = QFormLayout(self.form_box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setVerticalSpacing(2)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet(_ERROR_STYLE)
        self.message.hide()
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Apply the changed values (Enter); Ctrl+Z undoes it")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Show the layer's current values again")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.reset_button)
        buttons.addWidget(self.apply_button)
        self.buttons = QWidget()
        self.buttons.setLayout(buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.form_box)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.apply_button.clicked.connect(self._on_apply_button_clicked)
        self.reset_button.clicked.connect(self._on_reset_button_clicked)
        self.show_node("")

    # ----------------------------------------------------------------- content
    def set_session(self, session: EditSession | None) -> None:
        """Edit the nodes of ``session`` (None: nothing to edit)."""
        self.session = session
        self.show_node("")

    def show_node(self, name: str) -> None:
        """Build the form for node ``name`` of the session ("" or a group: a hint only)."""
        self._clear()
        self.node_name = ""
        session = self.session
        graph = session.graph if session is not None else None
        if graph is None or not name or name not in graph.nodes:
            self.title.setText(
                "<span style='color:#5b6472'>Select a layer to edit its hyper-parameters.</span>"
            )
            self.form_box.hide()
            self.buttons.hide()
            return
        node = graph[name]
        self.node_name = name
        if node.kind == "input":
            specs: list[ops.ParamSpec] = [
                ops.ParamSpec("shape", "ints", None, "one sample's shape: channels, height, width")
            ]
        elif node.kind == "opaque" or node.kind not in ops.REGISTRY:
            self.title.setText(
                f"<b>{name}</b> · {node.kind}<br><span style='color:#5b6472'>Its parameters "
                "live in its own code; replace it to edit them here.</span>"
            )
            self.form_box.hide()
            self.buttons.hide()
            return
        else:
            specs = list(ops.REGISTRY[node.kind].params)
        self.title.setText(f"<b>{name}</b> · {node.kind}")
        if not specs:
            self.title.setText(
                f"<b>{name}</b> · {node.kind}<br>"
                "<span style='color:#5b6472'>No hyper-parameters.</span>"
            )
            self.form_box.hide()
            self.buttons.hide()
            return
        for ps in specs:
            self._add_field(ps, node.params.get(ps.name, self._default(ps)))
        self.form_box.show()
        self.buttons.show()

    @staticmethod
    def _default(ps: ops.ParamSpec) -> Any:
        return None if ps.default is ops.REQUIRED else ps.default

    def _clear(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields.clear()
        self.errors.clear()
        self.specs.clear()
        self.message.hide()

    def _add_field(self, ps: ops.ParamSpec, value: Any) -> None:
        widget: QWidget
        if ps.type == "bool" and isinstance(value, bool):
            widget = QCheckBox()
            widget.setChecked(value)
        elif ps.type == "choice" and ps.choices and (value in ps.choices or value is None):
            widget = QComboBox()
            if ps.optional:
                widget.addItem("(none)", None)
            for c in ps.choices:
                widget.addItem(str(c), c)
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif ps.type == "int" and not ps.optional and isinstance(value, int):
            widget = QSpinBox()
            widget.setRange(
                int(ps.minimum) if ps.minimum is not None else -_INT_LIMIT,
                int(ps.maximum) if ps.maximum is not None else _INT_LIMIT,
            )
            widget.setValue(value)
            widget.setKeyboardTracking(False)
        else:
            widget = QLineEdit(format_value(value))
            placeholder = "default" if ps.optional or ps.default is not ops.REQUIRED else ""
            if ps.default not in (None, ops.REQUIRED):
                placeholder = f"default {format_value(ps.default)}"
            widget.setPlaceholderText(placeholder)
            widget.textEdited.connect(lambda _t, n=ps.name: self._check_field(n))
            widget.returnPressed.connect(self.apply)
        widget.setToolTip(ps.doc)
        error = QLabel()
        error.setStyleSheet(_ERROR_STYLE)
        error.setWordWrap(True)
        error.hide()
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(widget)
        col.addWidget(error)
        label = QLabel(ps.name)
        label.setToolTip(ps.doc)
        self.form.addRow(label, box)
        self.fields[ps.name] = widget
        self.errors[ps.name] = error
        self.specs[ps.name] = ps

    # ----------------------------------------------------------------- values
    def value(self, name: str) -> Any:
        """The value of field ``name``.

        Raises:
            ParamError: A line edit's text cannot be read.
        """
        w = self.fields[name]
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QSpinBox):
            return w.value()
        return parse_value(self.specs[name], w.text())

    def set_text(self, name: str, text: str) -> None:
        """Type ``text`` into field ``name`` (for line edits and spin boxes) and check it."""
        w = self.fields[name]
        if isinstance(w, QSpinBox):
            w.setValue(int(text))
        elif isinstance(w, QLineEdit):
            w.setText(text)
        self._check_field(name)

    def error_text(self, name: str) -> str:
        """The message shown under field ``name`` ("" when it is valid)."""
        label = self.errors[name]
        return label.text() if not label.isHidden() else ""

    def _show_error(self, name: str, text: str) -> None:
        label = self.errors[name]
        label.setText(text)
        label.setVisible(bool(text))

    def _current(self) -> dict[str, Any]:
        node = self.session.graph[self.node_name]
        return {n: node.params.get(n, self._default(ps)) for n, ps in self.specs.items()}

    def _check_field(self, name: str) -> bool:
        try:
            v = self.value(name)
        except ParamError as e:
            self._show_error(name, str(e))
            return False
        problem = self._problem(name, v)
        self._show_error(name, problem or "")
        return problem is None

    def _problem(self, name: str, v: Any) -> str | None:
        ps = self.specs[name]
        node = self.session.graph[self.node_name] if self.session else None
        if node is None:
            return None
        if v is None:
            if ps.optional or ps.default is not ops.REQUIRED:
                return None
            return f"{name} must be given ({ps.doc})"
        if node.kind == "input":
            if not (isinstance(v, list) and v and all(isinstance(x, int) and x > 0 for x in v)):
                return "write positive sizes: channels, height, width, e.g. 3, 32, 32"
            return None
        problems = ops.check_params(node.kind, {**node.params, name: v})
        mine = [p for p in problems if _field_of(p, [name]) == name]
        return mine[0] if mine else None

    def changes(self) -> dict[str, Any] | None:
        """The fields that differ from the node's values; None when a field is invalid (its
        message is shown)."""
        ok = all([self._check_field(n) for n in self.fields])
        if not ok:
            return None
        current = self._current()
        out = {}
        for n in self.fields:
            v = self.value(n)
            old = current[n]
            if isinstance(old, tuple):
                old = list(old)
            if v != old or type(v) is not type(old):
                if v is None and old is not None and self.specs[n].default is ops.REQUIRED:
                    continue
                out[n] = v
        return out

    # ----------------------------------------------------------------- apply
    @Slot()
    def apply(self) -> EditResult | None:
        """Apply the changed fields as one edit; returns the result (None: nothing shown)."""
        if self.session is None or not self.node_name:
            return None
        changes = self.changes()
        if changes is None:
            result = EditResult(False, f"{self.node_name}: fix the value marked in red first")
        elif not changes:
            result = EditResult(False, f"{self.node_name}: no value was changed")
        else:
            result = self.session.set_params(self.node_name, **changes)
            if not result.ok:
                names = list(self.fields)
                field = _field_of(result.message.split(": ", 1)[-1], names)
                if field:
                    self._show_error(field, result.message.split(": ", 1)[-1])
        self.message.setText("" if result.ok else result.message)
        self.message.setVisible(not result.ok)
        self.sig_edited.emit(result)
        return result

    @Slot()
    def _on_apply_button_clicked(self) -> None:
        self.apply()

    @Slot()
    def _on_reset_button_clicked(self) -> None:
        self.show_node(self.node_name)
