"""The guard in conftest.py really sees a QThread left running."""

from PySide6.QtCore import QThread

from tests.ui.conftest import running_qthreads


class _Sleeper(QThread):
    def run(self) -> None:
        self.msleep(200)


def test_guard_sees_a_running_thread_and_then_its_end():
    thread = _Sleeper()
    thread.start()
    assert thread in running_qthreads()
    assert thread.wait(5000)
    assert thread not in running_qthreads()
