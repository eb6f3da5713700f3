"""Helpers of :mod:`cnnviz.core.data`; import from there, not from here."""
