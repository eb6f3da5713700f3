"""The PySide6 user interface of cnnviz."""
