"""``cnnviz export SOURCE --format python|json|onnx -o FILE``: headless export of an architecture.

* ``python``: readable PyTorch source (:mod:`cnnviz.core.codegen`) whose ``state_dict`` keys
  equal the source model's;
* ``json``: the architecture file (``schema_version`` 1), as the app saves it;
* ``onnx``: the built model traced to ONNX; needs the ``onnx`` extra
  (``pip install cnnviz[onnx]``).

Nothing heavy is imported at module level: ``cnnviz --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from cnnviz.errors import CnnvizError

FORMATS = ("python", "json", "onnx")
_SUFFIX = {".py": "python", ".json": "json", ".onnx": "onnx"}


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of ``cnnviz export``."""
    from cnnviz.cli import _parse_shape  # here: cnnviz.cli imports this module

    p.add_argument(
        "source",
        help="zoo name (resnet18, ...), torchvision:NAME, path/file.py:NAME or an "
        "architecture .json file",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="what to write (default: from the output file's suffix, else python)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="file to write; python and json go to standard output without it",
    )
    p.add_argument("--input", type=_parse_shape, default=None, help="input shape CxHxW")
    p.add_argument(
        "--size",
        choices=("teaching", "original"),
        default="teaching",
        help="zoo models: the small teaching net or the paper's (default: teaching)",
    )


def _class_names(source: str, size: str) -> dict[str, str]:
    """Class names of the source model's modules, to name the generated classes like it."""
    try:
        import torch

        from cnnviz.core import codegen, sources, trace, zoo

        spec = source.strip()
        with torch.device("meta"):
            if spec in sources.zoo_names():
                model, _ = zoo.build(spec, size=size)
            elif spec.startswith(sources.TORCHVISION_PREFIX):
                model = trace.build_torchvision(spec[len(sources.TORCHVISION_PREFIX) :])
            else:
                return {}
        return codegen.class_names_from_module(model)
    except Exception:  # noqa: BLE001 - names are cosmetic; derived names are used instead
        return {}


def export(
    source: str,
    fmt: str | None = None,
    output: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    size: str = "teaching",
) -> str | None:
    """Export ``source`` in ``fmt``; returns the text when no ``output`` file is given.

    Raises:
        CnnvizError: Unknown source, a broken architecture file, a graph that cannot be
            exported, or ONNX without the ``onnx`` package.
    """
    if fmt is None:
        fmt = _SUFFIX.get(Path(output).suffix.lower(), "python") if output else "python"
    if fmt not in FORMATS:
        raise CnnvizError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        if importlib.util.find_spec("onnx") is None:
            raise CnnvizError(
                "ONNX export needs the onnx package, which is not installed; "
                "install the extra with: pip install cnnviz[onnx]"
            )
        if output is None:
            raise CnnvizError("ONNX is a binary format: give a file with -o model.onnx")
    from cnnviz.core.sources import load_source

    graph = load_source(source, input_shape, size=size)
    if fmt == "json":
        text: str = graph.to_json()
    elif fmt == "python":
        from cnnviz.core import codegen

        text = codegen.to_source(graph, _class_names(source, size))
    else:
        _export_onnx(graph, Path(output))  # type: ignore[arg-type]
        return None
    if output is None:
        return text
    path = Path(output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise CnnvizError(f"cannot write {path}: {e}") from None
    return None


def _export_onnx(graph: Any, path: Path) -> None:
    import torch

    from cnnviz.core.build import build_module

    shape = graph.input_shape
    if shape is None:
        raise CnnvizError(f"{graph.name} has no input node, so it cannot be exported to ONNX")
    model = build_module(graph).eval()
    try:
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape),),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    except Exception as e:  # noqa: BLE001 - the exporter's own errors are many and varied
        raise CnnvizError(f"ONNX export of {graph.name} failed: {type(e).__name__}: {e}") from None


def main(args: argparse.Namespace) -> int:
    """Run ``cnnviz export``; returns the exit code."""
    text = export(args.source, args.format, args.output, args.input, args.size)
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
