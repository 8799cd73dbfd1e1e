from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
#: a config whose retries are milliseconds apart, for endpoints that are down on purpose
FAST_RETRIES = TESTS / "data" / "fast-retries.toml"


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")])
    e.pop("COLUMNS", None)
    return e


def emotau(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 120,
    environ: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python -m emotau ARGS`` in a subprocess (``environ``: e.g. :func:`install_plugin`'s)."""
    return subprocess.run(
        [sys.executable, "-m", "emotau", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(environ) if environ is not None else env(),
        timeout=timeout,
    )


def emotau_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The ``emotau`` command in this process: :func:`emotau.cli.main` with both streams
    captured and its exit status, as :func:`emotau` returns them. For bad-input checks, where
    a fresh interpreter adds only a second of imports; an exception that escapes ``main``
    (what a user would see as a traceback) fails the test."""
    import io

    from emotau.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["emotau", *args], code, out.getvalue(), err.getvalue())


def plugin_site(tmp_path: Path) -> Path:
    """The folder :func:`install_plugin` installs into (put it on ``sys.path`` in process)."""
    return tmp_path / "site"


def install_plugin(
    tmp_path: Path,
    dist_name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    files: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Install a plugin distribution the way pip would, without pip.

    Writes ``<dist>-0.0.dist-info/`` (METADATA and entry_points.txt, ``{group: {name:
    "module:object"}}``) and ``files`` (relative path -> source text, dedented) into
    :func:`plugin_site`. Several calls with the same ``tmp_path`` install several plugins.
    Returns an environment for subprocesses with the site (and tests/) on ``PYTHONPATH``.
    """
    site = plugin_site(tmp_path)
    info = site / f"{dist_name.replace('-', '_')}-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.0\n")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {ref}" for name, ref in names.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for rel, text in (files or {}).items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    importlib.invalidate_caches()
    e = env()
    e["PYTHONPATH"] = os.pathsep.join([str(site), e["PYTHONPATH"]])
    return e


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
def mock_server(*args: str, port: int = 0) -> Iterator[str]:
    """A real `emotau mock-server` process on ``port`` (0: a free one); yields its base URL
    (.../v1)."""
    from emotau.scripted._mockserver import spawn

    with spawn(*args, env=env(), port=port) as server:
        yield server.url


def mock_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as r:
        return json.loads(r.read())


def run_one_episode(
    domain: Any,
    task: Any,
    *,
    variant: str = "control",
    agent: Any = None,
    user: Any = None,
    judge: Any = None,
    user_strategy: str = "llm",
    max_steps: int = 30,
) -> dict[str, Any]:
    """One episode in process (scripted oracle agent and scripted user unless given); its
    record as the runner writes it (``EpisodeRecord.to_dict()``)."""
    import asyncio

    from emotau.episode._agents import AGENT_STRATEGIES
    from emotau.episode._engine import EpisodeSetup, run_episode
    from emotau.episode._users import USER_STRATEGIES
    from emotau.episode._variants import VariantLibrary
    from emotau.scripted._models import ScriptedAgent, ScriptedUser

    setup = EpisodeSetup(
        domain=domain,
        task=task,
        variant=VariantLibrary.default().select(variant),
        trial=0,
        seed=0,
        agent_client=agent or ScriptedAgent(domain, {"skill": 1.0}),
        user_client=user or ScriptedUser(domain),
        agent_strategy=AGENT_STRATEGIES.get("tool-calling"),
        user_strategy=USER_STRATEGIES.get(user_strategy),
        max_steps=max_steps,
        judge_client=judge,
    )
    return asyncio.run(run_episode(setup)).to_dict()
