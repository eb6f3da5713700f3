"""The inspector: the selected layer's hyper-parameters and every number with its formula."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QWidget

from cnnviz.core.analysis import Analysis, format_count
from cnnviz.core.graph import ArchGraph
from cnnviz.core.ops import shape_str
from cnnviz.ui.layer_table import rf_text

FORMULA_TITLES = (
    ("output_shape", "Output shape"),
    ("params", "Parameters"),
    ("macs", "Multiply-accumulates"),
    ("ops", "Element-wise operations"),
    ("rf", "Receptive field"),
)

_CSS = """
<style>
h2 { margin: 0 0 2px 0; font-size: 15px; }
.kind { color: #5b6472; }
table { border-collapse: collapse; margin: 4px 0 8px 0; }
td { padding: 1px 10px 1px 0; vertical-align: top; }
td.k { color: #5b6472; }
h3 { font-size: 12px; margin: 10px 0 2px 0; color: #1f3b5c; }
pre { margin: 0 0 0 6px; font-family: 'DejaVu Sans Mono', monospace; font-size: 12px; }
.err { color: #b42318; font-weight: 600; }
.fix { color: #067647; }
.warn { color: #b54708; }
</style>
"""


def _e(value: object) -> str:
    return html.escape(str(value))


class InspectorPanel(QTextBrowser):
    """Shows a node or a group of the current analysis as rich text with worked formulas."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.graph: ArchGraph | None = None
        self.analysis: Analysis | None = None
        self.setHtml(_CSS + "<p class='kind'>Select a layer to see its numbers.</p>")

    def set_model(self, graph: ArchGraph, analysis: Analysis) -> None:
        """Use this graph and analysis for later selections; shows the model's totals."""
        self.graph, self.analysis = graph, analysis
        self.show_model()

    def show_model(self) -> None:
        """The whole model's totals."""
        a = self.analysis
        if a is None:
            return
        rows = [
            ("Input", shape_str(a.input_shape)),
            ("Parameters", f"{a.total_params:,} ({a.params:,} trainable)"),
            ("Buffers", f"{a.buffers:,}"),
            ("MACs", f"{format_count(a.macs, 'MACs')} ({a.macs:,})"),
            ("Element-wise ops", f"{a.ops:,}"),
            ("Activations", f"{format_count(a.memory_bytes, 'B')} per sample (float32)"),
            ("Layers", f"{len(a.order):,}"),
        ]
        body = f"<h2>{_e(a.name)}</h2><p class='kind'>whole model</p>" + self._table(rows)
        if a.errors:
            body += "<h3>Problems</h3>" + "".join(
                f"<p class='err'>{_e(n)}: {_e(m)}</p>" for n, m in a.errors
            )
        self.setHtml(_CSS + body)

    def show_item(self, name: str, is_group: bool) -> None:
        """Show node or group ``name``."""
        if self.analysis is None or self.graph is None:
            return
        if is_group:
            self._show_group(name)
        elif name in self.analysis.nodes:
            self._show_node(name)

    @staticmethod
    def _table(rows: list[tuple[str, str]]) -> str:
        cells = "".join(f"<tr><td class='k'>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
        return f"<table>{cells}</table>"

    def _show_node(self, name: str) -> None:
        n = self.analysis.nodes[name]
        node = self.graph[name]
        body = f"<h2>{_e(name)}</h2><p class='kind'>{_e(n.kind)} · {_e(n.family)}</p>"
        if n.error:
            body += f"<p class='err'>{_e(n.error)}</p>"
            if n.fix:
                body += f"<p class='fix'>Fix: {_e(n.fix)}</p>"
        if node.params:
            body += "<h3>Hyper-parameters</h3>" + self._table(
                [(k, v) for k, v in node.params.items()]
            )
        rows = [
            ("Input", ", ".join(shape_str(s) for s in n.input_shapes) or "–"),
            ("Output", shape_str(n.output_shape)),
            (
                "Parameters",
                f"{n.params:,}" + (f" (+{n.frozen_params:,} frozen)" if n.frozen_params else ""),
            ),
            ("Buffers", f"{n.buffers:,}"),
            ("MACs", f"{n.macs:,}"),
            ("Element-wise ops", f"{n.ops:,}"),
            ("Output memory", format_count(n.memory_bytes, "B")),
            ("Receptive field", rf_text(n.rf) or "–"),
        ]
        body += "<h3>Numbers</h3>" + self._table(rows)
        for key, title in FORMULA_TITLES:
            lines = n.formulas.get(key)
            if lines:
                body += f"<h3>{title}</h3><pre>{_e(chr(10).join(lines))}</pre>"
        for w in n.warnings:
            body += f"<p class='warn'>{_e(w)}</p>"
        self.setHtml(_CSS + body)

    def _show_group(self, name: str) -> None:
        g = self.analysis.groups.get(name)
        if g is None:
            return
        rows = [
            ("Layers inside", f"{len(g.nodes):,}"),
            ("Output", f"{shape_str(g.output_shape)} (from {g.output_node})"),
            ("Parameters", f"{g.total_params:,}"),
            ("Buffers", f"{g.buffers:,}"),
            ("MACs", f"{format_count(g.macs, 'MACs')} ({g.macs:,})"),
            ("Element-wise ops", f"{g.ops:,}"),
            ("Activations", format_count(g.memory_bytes, "B")),
            ("Receptive field", rf_text(g.rf) or "–"),
        ]
        share = g.macs / self.analysis.macs * 100 if self.analysis.macs else 0.0
        body = (
            f"<h2>{_e(name)}</h2><p class='kind'>group · {share:.1f}% of the model's MACs</p>"
            + self._table(rows)
        )
        self.setHtml(_CSS + body)
