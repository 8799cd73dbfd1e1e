from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")])
    e.pop("COLUMNS", None)
    return e


def emotau(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emotau", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        timeout=timeout,
    )


def popen(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "emotau", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env(),
    )


def all_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every line of every shard file, parsed (fails the test if one does not parse)."""
    out = []
    for f in sorted((run_dir / "episodes").glob("shard-*.jsonl")):
        data = f.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{f} ends with a partial line"
        out.extend(json.loads(line) for line in data.splitlines())
    return out


@contextlib.contextmanager
def mock_server(*args: str) -> Iterator[str]:
    """A real `emotau mock-server` process on a free port; yields its base URL (.../v1)."""
    from emotau.mockserver import spawn

    with spawn(*args, env=env()) as server:
        yield server.url


def mock_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return json.loads(r.read())
