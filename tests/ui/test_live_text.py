"""LiveText: captions that change during training repaint themselves, never the layout."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnnviz.ui.live_text import LiveText


class _LayoutRequests(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def _window(qtbot, caption):
    window = QWidget()
    qtbot.addWidget(window)
    layout = QVBoxLayout(window)
    layout.addWidget(caption)
    layout.addWidget(QLabel("below"))
    window.resize(300, 120)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(20)
    requests = _LayoutRequests()
    window.installEventFilter(requests)
    return window, requests


def _changes(qtbot, caption, texts) -> None:
    for text in texts:
        caption.setText(text)
        qtbot.wait(5)


def test_new_text_lays_nothing_out_where_a_label_would(qtbot):
    texts = [f"<b>conv1</b> &nbsp; 6 × 28 × 28 &nbsp; step {10**i}" for i in range(6)]
    # The control: a QLabel asks its window for a new layout at every change.
    label = QLabel("start")
    _window_label, label_requests = _window(qtbot, label)
    _changes(qtbot, label, texts)
    assert label_requests.count >= 3

    live = LiveText("start")
    window, requests = _window(qtbot, live)
    height = live.height()
    _changes(qtbot, live, texts)
    assert requests.count == 0
    assert live.text() == texts[-1]
    assert live.height() == height  # the lines it was given, whatever the text


def test_text_is_drawn_in_the_caption_colour(qtbot):
    live = LiveText("")
    palette = live.palette()
    # A caption's colour is WindowText; Text (for edit fields) must not be used.
    palette.setColor(QPalette.ColorRole.WindowText, QColor(220, 0, 0))
    palette.setColor(QPalette.ColorRole.Text, QColor(0, 0, 220))
    live.setPalette(palette)
    _window(qtbot, live)
    blank = live.grab().toImage()
    live.setText("<b>channel 3</b> · max 1.20")
    qtbot.wait(10)
    image = live.grab().toImage()
    drawn = [
        QColor(image.pixel(x, y))
        for x in range(image.width())
        for y in range(image.height())
        if image.pixel(x, y) != blank.pixel(x, y)
    ]
    assert len(drawn) > 30
    assert all(c.red() >= c.blue() for c in drawn)
    assert max(c.red() - c.blue() for c in drawn) > 150


def test_lines_fix_the_height(qtbot):
    one, four = LiveText("a"), LiveText("a", lines=4)
    line = one.fontMetrics().lineSpacing()
    assert one.height() == line + 2
    assert four.height() == 4 * line + 2
