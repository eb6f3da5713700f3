"""Where a graph comes from: a zoo name, ``torchvision:NAME``, ``file.py:NAME`` or a ``.json`` file.

:func:`load_source` is what the command line and the app's "open" use; every user mistake ends
in a :class:`~cnnviz.errors.CnnvizError` whose message says what to type instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnviz.core.graph import ArchGraph
from cnnviz.errors import CnnvizError

TORCHVISION_PREFIX = "torchvision:"


def zoo_names() -> list[str]:
    """Names in the zoo, or none while the zoo is unavailable."""
    try:
        from cnnviz.core import zoo
    except ImportError:
        return []
    names = getattr(zoo, "names", None)
    return list(names()) if callable(names) else []


def _set_input_shape(graph: ArchGraph, input_shape: Sequence[int]) -> None:
    inputs = graph.input_nodes
    if not inputs:
        raise CnnvizError(f"{graph.name} has no input node to give the shape to")
    graph[inputs[0]].params["shape"] = [int(s) for s in input_shape]


def _from_zoo(name: str, input_shape: Sequence[int] | None, size: str) -> ArchGraph:
    import torch

    from cnnviz.core import zoo
    from cnnviz.core.trace import from_module

    def build(meta: bool) -> tuple[Any, tuple[int, ...]]:
        try:
            if meta:
                with torch.device("meta"):
                    return zoo.build(name, size=size)
            return zoo.build(name, size=size)
        except ValueError as e:
            raise CnnvizError(f"zoo model {name!r}: {e}") from None

    # On the meta device a big model costs no memory and no initialisation time. A graph
    # with opaque modules keeps them, and those must hold real weights: build again.
    model, shape = build(meta=True)
    shape = tuple(input_shape) if input_shape else tuple(shape)
    # Training branches too: GoogLeNet's auxiliary classifiers, marked training-only.
    graph = from_module(model, shape, name=name, training_branches=True)
    if any(n.kind == "opaque" and isinstance(n.module, torch.nn.Module) for n in graph):
        model, _ = build(meta=False)
        graph = from_module(model, shape, name=name, training_branches=True)
    return graph


def load_source(
    spec: str, input_shape: Sequence[int] | None = None, size: str = "original"
) -> ArchGraph:
    """Load a graph from a source description.

    Args:
        spec: A zoo name (``lenet5``, ``resnet50``), ``torchvision:NAME``, ``path/file.py:NAME``
            (a module class or a factory taking no arguments), or an architecture ``.json``.
            A bare torchvision name that is not in the zoo works too.
        input_shape: One sample's shape (C, H, W); defaults: the zoo entry's, the torchvision
            weights' evaluation resolution, the shape saved in the ``.json``. Required for files
            unless the class or factory has an ``input_shape`` attribute.
        size: For zoo models, ``"original"`` (paper size) or ``"teaching"``.

    Raises:
        CnnvizError: Unknown name (with suggestions), missing file, or a model that fails.
    """
    from cnnviz.core import trace

    spec = spec.strip()
    if spec.lower().endswith(".json"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise CnnvizError(f"{path}: no such architecture file")
        graph = ArchGraph.load(path)
        if input_shape:
            _set_input_shape(graph, input_shape)
        return graph
    if spec.startswith(TORCHVISION_PREFIX):
        return trace.from_torchvision(spec[len(TORCHVISION_PREFIX) :], input_shape)
    if ".py:" in spec or spec.endswith(".py"):
        if spec.endswith(".py"):
            raise CnnvizError(f"{spec}: name the model class or factory too, e.g. {spec}:MyNet")
        shape: Any = input_shape
        if not shape:
            obj = trace.load_object(spec)
            shape = getattr(obj, "input_shape", None)
            if not shape:
                raise CnnvizError(
                    f"{spec}: give the input shape (e.g. --input 3x32x32), or set an "
                    "input_shape attribute on the class"
                )
        return trace.from_file(spec, tuple(shape))
    zoo = zoo_names()
    if spec in zoo:
        return _from_zoo(spec, input_shape, size)
    tv = trace.torchvision_names()
    if spec in tv:
        return trace.from_torchvision(spec, input_shape)
    candidates = zoo + [f"{TORCHVISION_PREFIX}{n}" for n in tv] + tv
    close = difflib.get_close_matches(spec, candidates, n=4, cutoff=0.5)
    hint = f" Did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
    known = f" Zoo models: {', '.join(zoo)}." if zoo else ""
    raise CnnvizError(
        f"unknown model {spec!r}.{hint}{known} Other sources: torchvision:NAME, "
        "path/file.py:NAME, or an architecture .json file."
    )
