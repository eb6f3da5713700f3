"""The About dialog: versions of everything that matters and the compute device in use."""

from __future__ import annotations

import platform
import sys

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from cnnviz import __version__


def version_rows() -> list[tuple[str, str]]:
    """(name, version) rows shown in the dialog; imports torch if it is not loaded yet."""
    import torch
    import torchvision

    from cnnviz.core.device import describe_device

    return [
        ("cnnviz", __version__),
        ("PyTorch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("Qt", qVersion()),
        ("PySide6", PySide6.__version__),
        ("Python", f"{platform.python_version()} ({sys.platform})"),
        ("Compute device", describe_device()),
    ]


class AboutDialog(QDialog):
    """What cnnviz is, and the versions a bug report needs."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("About cnnviz")
        layout = QVBoxLayout(self)
        rows = "".join(
            f"<tr><td style='padding-right:16px'><b>{name}</b></td><td>{value}</td></tr>"
            for name, value in version_rows()
        )
        self.text = (
            f"<h2>cnnviz {__version__}</h2>"
            "<p>See, edit and train convolutional neural networks: every layer's shape, "
            "parameters, multiply-accumulates and receptive field, worked out in numbers.</p>"
            f"<table>{rows}</table>"
        )
        label = QLabel(self.text)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setWordWrap(True)
        layout.addWidget(label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
