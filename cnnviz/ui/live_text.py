"""Text that changes while training runs, without laying the window out again.

A ``QLabel`` asks its layout for room whenever its text changes. That request climbs to the
window's top: inside the probe panel's tabs the tab widget then lays out and repaints all its
pages, the receptive-field view and combo boxes included, three paint passes for one new
activation capture (measured with an event filter, LeNet-5 training). The GUI thread's time
is taken from training (see :mod:`cnnviz.ui.plots`), so the captions that change with every
capture use :class:`LiveText`: a fixed number of lines whose new text only repaints itself.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QPainter,
    QPaintEvent,
    QPalette,
    QTextDocument,
    QTextOption,
)
from PySide6.QtWidgets import QSizePolicy, QWidget


class LiveText(QWidget):
    """Rich text (Qt's HTML subset) in ``lines`` lines; the rest is clipped, not laid out.

    Args:
        text: The first text.
        lines: Lines of height it always has; longer text wraps and is cut at the last.
        parent: The parent widget.
    """

    def __init__(self, text: str = "", lines: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._lines = max(1, lines)
        self._document = QTextDocument()
        self._document.setDocumentMargin(0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        if self._lines == 1:
            option = self._document.defaultTextOption()
            option.setWrapMode(QTextOption.WrapMode.NoWrap)
            self._document.setDefaultTextOption(option)
        self._fit_height()
        self.setText(text)

    def text(self) -> str:
        """The text as it was set."""
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's name, so it can stand in
        """Show ``text``; repaints this widget only."""
        if text == self._text:
            return
        self._text = text
        self._document.setHtml(text)
        self.setToolTip(self._document.toPlainText() if self._lines == 1 else "")
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        # The width the text had when the layout last asked: a new text does not ask again.
        return QSize(max(40, round(self._document.idealWidth())), self.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(40, self.height())

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self._fit_height()

    def _fit_height(self) -> None:
        self._document.setDefaultFont(self.font())
        self.setFixedHeight(self.fontMetrics().lineSpacing() * self._lines + 2)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        self._document.setTextWidth(self.width())
        top = 1.0 if self._lines > 1 else (self.height() - self._document.size().height()) / 2
        painter.translate(0, max(0.0, top))
        context = QAbstractTextDocumentLayout.PaintContext()
        palette = self.palette()
        # A document's text is the Text role (for edit fields); a caption's is WindowText.
        palette.setColor(QPalette.ColorRole.Text, palette.color(QPalette.ColorRole.WindowText))
        context.palette = palette
        context.clip = QRectF(0, 0, self.width(), self.height())
        painter.setClipRect(context.clip)
        self._document.documentLayout().draw(painter, context)
        painter.end()
