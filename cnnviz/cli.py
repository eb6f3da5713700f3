"""The ``cnnviz`` command line: the desktop app by default, and headless verbs.

Nothing heavy is imported at module level: ``cnnviz --version`` and the app's first
window must not wait for torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cnnviz import __version__
from cnnviz.core import export_cli, train_cli
from cnnviz.ui import graph_export

DEFAULT_MODEL = "lenet5"


def _parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``3x224x224`` (or ``3,224,224``) into a tuple of positive ints."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"input shape {text!r} is not of the form CxHxW, e.g. 3x224x224"
        ) from None
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"input shape {text!r} must be positive integers")
    return shape


def _cmd_app(args: argparse.Namespace) -> int:
    from cnnviz.ui.app import run_app

    return run_app(model=args.model, input_shape=args.input)


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnnviz.core import summary

    print(summary.main(args.source, args.input, args.depth, args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; subcommands register themselves in ``_SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="cnnviz",
        description=(
            "See, edit and train convolutional neural networks. With no subcommand, "
            "opens the desktop app."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"model the app opens with: a zoo name, torchvision:NAME, file.py:NAME or a "
        f".json architecture file (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--input", type=_parse_shape, default=None, help="input shape CxHxW, e.g. 1x28x28"
    )
    parser.set_defaults(func=_cmd_app)
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND")
    for name, (help_text, configure, func) in _SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        configure(sp)
        sp.set_defaults(func=func)
    return parser


def _configure_summary(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        help="zoo name (lenet5, resnet50, ...), torchvision:NAME, path/file.py:NAME "
        "or an architecture .json file",
    )
    p.add_argument("--input", type=_parse_shape, default=None, help="input shape CxHxW")
    p.add_argument("--depth", type=int, default=None, help="collapse groups deeper than N")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")


_SUBCOMMANDS: dict[
    str,
    tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]],
] = {
    "summary": (
        "print every layer's shape, parameters, MACs and receptive field",
        _configure_summary,
        _cmd_summary,
    ),
    "graph": (
        "draw the layer graph into a PNG or SVG image (no window needed)",
        graph_export.configure_graph_command,
        graph_export.run_graph_command,
    ),
    "train": (
        "train a model headless on shapes, MNIST, Fashion-MNIST, CIFAR-10 or an image folder",
        train_cli.configure,
        train_cli.main,
    ),
    "export": (
        "write an architecture as PyTorch source, a .json architecture file or ONNX",
        export_cli.configure,
        export_cli.main,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the user sees a message, never a traceback
        from cnnviz.errors import CnnvizError

        if isinstance(exc, CnnvizError):
            print(f"cnnviz: error: {exc}", file=sys.stderr)
            return 2
        raise
