"""The house rules of docs/architecture.md, checked on the source tree: packages are layered
(a package imports only packages below it), nothing imports the top-level ``emotau`` package,
and there are no import circles (every import counts, lazy and type-only ones too)."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: bottom to top; a package may import only the packages before it
LAYERS = [
    "core",
    "emotion",
    "models",
    "domains",
    "episode",
    "scripted",
    "spec",
    "results",
    "runner",
    "serving",
    "launch",
    "analysis",
    "cli",
]


def _imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.append(("." * node.level + (node.module or ""), node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
    return out


def _package(path: Path) -> str | None:
    parts = path.relative_to(SRC / "emotau").parts
    return parts[0] if len(parts) > 1 else None


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in (SRC / "emotau").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS), "add new packages to LAYERS (and docs/architecture.md)"


def test_lower_layers_never_import_higher_ones() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for path in sorted((SRC / "emotau").rglob("*.py")):
        me = _package(path)
        for module, line in _imports(path):
            if module.startswith("."):
                bad.append(f"{path.relative_to(SRC)}:{line}: relative import {module}")
                continue
            if module == "emotau" and me is not None:
                bad.append(f"{path.relative_to(SRC)}:{line}: imports the top-level package")
                continue
            if not module.startswith("emotau."):
                continue
            other = module.split(".")[1]
            if me is None or other == me or other not in rank:
                continue
            if rank[other] > rank[me]:
                bad.append(f"{path.relative_to(SRC)}:{line}: {me} imports {module} (higher)")
    assert not bad, "\n".join(bad)


def test_no_private_names_across_packages() -> None:
    """``from emotau.x._mod import _name`` from another package reaches into x's internals."""
    bad = []
    for path in sorted((SRC / "emotau").rglob("*.py")):
        me = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] != "emotau" or len(parts) < 2 or parts[1] == me:
                    continue
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")
                ]
                if private:
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.module} {private}")
    assert not bad, "\n".join(bad)


def test_no_import_circles() -> None:
    tool = SRC.parent.parent / "shared" / "tools" / "import-circles"
    if not tool.exists():
        pytest.skip(f"{tool} is not here (it comes with the workplace's shared/)")
    r = subprocess.run(
        [str(tool), str(SRC)], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )
    assert r.returncode == 0, r.stdout
