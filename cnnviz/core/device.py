"""Which compute device cnnviz uses: CUDA when present, then Apple MPS, else the CPU."""

from __future__ import annotations

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """The device for ``preference`` ('auto', 'cpu', 'cuda', 'mps').

    Raises:
        ValueError: if the preference is unknown or names a device this machine lacks.
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU here")
        return torch.device("cuda")
    if preference == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device 'mps' was asked for, but Apple's MPS is not available here")
        return torch.device("mps")
    raise ValueError(f"unknown device {preference!r}: choose auto, cpu, cuda or mps")


def describe_device(device: torch.device | None = None) -> str:
    """A human description such as ``CUDA: NVIDIA H100 80GB HBM3`` or ``CPU (2 threads)``."""
    device = device or pick_device()
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"
