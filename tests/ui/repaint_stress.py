"""Repaints items whose paint() is a Python override many thousand times.

Run as a script by test_repaint_regression.py, in its own interpreter, so that the
abort PySide6 6.12.0 causes on Python 3.11 ("Fatal Python error: none_dealloc") fails
one test instead of killing the suite. Prints the number of Python paint() calls.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtGui import QColor, QPainter  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QApplication,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

paint_calls = 0


class Card(QGraphicsItem):
    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return QRectF(0, 0, 80, 30)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        global paint_calls
        paint_calls += 1
        painter.fillRect(self.boundingRect(), QColor("#cfe2f7"))
        painter.drawText(self.boundingRect(), "conv")


def main(repaints: int) -> None:
    app = QApplication.instance() or QApplication([])
    scene = QGraphicsScene()
    for i in range(5):
        card = Card()
        card.setPos(0, i * 40)
        scene.addItem(card)
    view = QGraphicsView(scene)
    view.resize(200, 240)
    view.show()
    from cnnviz.ui.plots import TrainingCurvesView

    curves = TrainingCurvesView()  # its paintEvent is a Python override too
    curves.resize(400, 150)
    curves.show()
    app.processEvents()
    for i in range(repaints):
        view.viewport().repaint()
        if i % 10 == 0:
            curves.add_point(i / 1000, train_loss=1.0 / (1 + i / 1000))
            curves.repaint()
    print(paint_calls, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
