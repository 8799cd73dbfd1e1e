"""Every example of the README and docs/ runs as written, in order, offline.

The README's blocks, then each docs/*.md file's (in name order), run one after another in one
temporary directory, after the demo run (`make demo` is `emotau run`), with the project's
`emotau` on PATH: ```bash blocks with ``bash -e``, ```python blocks with this Python. A block
is steered by an HTML comment on the line before its fence, which Markdown does not show:

- ``<!-- example: skip REASON -->``: not run here (it needs GPUs, a cluster, a network...);
  the reason is required, and printed by ``pytest -rs``;
- ``<!-- example: file NAME -->``: the block is written to NAME (a config, a variants file);
- ``<!-- example: output -->``, or a fence without a language (or ``text``, ``console``): what a
  command prints; not run.

A fence with a language this test does not run (toml, yaml, jsonl, ...) needs ``file`` or
``skip``, so that no example is left out by accident.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import TESTS, env

pytestmark = pytest.mark.slow

ROOT = TESTS.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
_MARK = re.compile(r"^<!--\s*example:\s*(skip|file|output)\b\s*(.*?)\s*-->\s*$")
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str
    mark: str | None
    arg: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        mark = _MARK.match(lines[i - 1]) if i else None
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        text = "\n".join(lines[i + 1 : j]) + "\n"
        out.append(
            Block(path, i + 1, lang, text, mark.group(1) if mark else None,
                  mark.group(2) if mark else "")
        )  # fmt: skip
        i = j + 1
    return out


ALL = [b for f in FILES for b in blocks(f)]


def test_every_block_is_run_or_says_why_not() -> None:
    problems = []
    for b in ALL:
        if b.mark == "skip" and not b.arg:
            problems.append(f"{b.where}: 'example: skip' needs a reason")
        if b.mark == "file" and not b.arg:
            problems.append(f"{b.where}: 'example: file' needs a file name")
        if b.mark is None and b.lang not in ("", "text", "console") and b.lang not in RUNNABLE:
            problems.append(f"{b.where}: a {b.lang} block needs 'example: file NAME' or 'skip'")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("examples")
    r = subprocess.run(
        [sys.executable, "-m", "emotau", "run", "--quiet"], cwd=d, env=_env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr  # make demo
    return d


def _env() -> dict[str, str]:
    e = env()
    e["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), e.get("PATH", "")])
    e["EMOTAU_REPO"] = str(ROOT)
    return e


def _run_block(b: Block, cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run one block in its own process group; what it left in the background (a server
    started with `&`) is stopped afterwards, whether the block passed or not."""
    python = [sys.executable, "-c", b.text]
    argv = ["bash", "-e", "-c", b.text] if RUNNABLE[b.lang] == "bash" else python
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        err.seek(0)
        return code, err.read()


@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(ROOT)) for f in FILES])
def test_examples_run_in_order(path: Path, sandbox: Path) -> None:
    ran = 0
    for b in blocks(path):
        if b.mark in ("skip", "output") or b.lang in ("", "text", "console"):
            continue
        if b.mark == "file":
            target = sandbox / b.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.text, encoding="utf-8")
            continue
        code, err = _run_block(b, sandbox)
        assert code == 0, f"{b.where} failed ({code}):\n{b.text}\n{err[-3000:]}"
        ran += 1
    if ran == 0:
        pytest.skip(f"{path.relative_to(ROOT)} has no example that runs offline")
