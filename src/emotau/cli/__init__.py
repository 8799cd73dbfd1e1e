"""The ``emotau`` command line: a thin layer over the Python API (see :mod:`emotau.cli._app`).

``emotau.cli:main`` is the console script; ``cli`` is the click group.
"""

from emotau.cli._app import cli, main

__all__ = ["cli", "main"]
