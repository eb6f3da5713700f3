"""The command line's own behaviour (subcommands are tested beside their features)."""

import subprocess
import sys

import pytest

from cnnviz import __version__
from cnnviz.cli import build_parser, main


def test_version_and_help_run_without_importing_torch():
    code = (
        "import sys\n"
        "from cnnviz.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'PySide6' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines() == [f"cnnviz {__version__}", "False False"]


def test_python_dash_m_prints_help():
    out = subprocess.run(
        [sys.executable, "-m", "cnnviz", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: cnnviz" in out.stdout
    assert "summary" in out.stdout


def test_input_shape_is_parsed_and_bad_ones_are_explained(capsys):
    args = build_parser().parse_args(["--input", "3x32x32"])
    assert args.input == (3, 32, 32)
    with pytest.raises(SystemExit):
        main(["--input", "3xbig"])
    assert "not of the form CxHxW" in capsys.readouterr().err
