"""``emotau serve`` / :class:`emotau.serving.VLLMServer` against a stand-in vLLM (fake_vllm.py).

Real processes and real HTTP on 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from emotau.cli._serving import serve_command
from emotau.core._errors import UserError
from emotau.serving import (
    FAMILIES,
    REASONING_PARSERS,
    TOOL_CALL_PARSERS,
    ServeError,
    VLLMServer,
    family_table_markdown,
    find_family,
    port_in_use,
    resolve_tool_flags,
)
from helpers import env as helper_env

FAKE = Path(__file__).parent.parent / "fake_vllm.py"
FAKE_CMD = [sys.executable, str(FAKE), "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def fake_server(tmp_path: Path, model: str = "Qwen/Qwen3-8B", **kw) -> VLLMServer:
    kw.setdefault("port", free_port())
    env = {
        "FAKE_VLLM_RECORD": str(tmp_path / f"record-{kw['port']}.json"),
        "FAKE_VLLM_STARTUP_DELAY": "0.5",
        **kw.pop("env", {}),
    }
    kw.setdefault("startup_timeout", 10)
    kw.setdefault("log_file", tmp_path / f"vllm-{kw['port']}.log")
    return VLLMServer(model, vllm_command=FAKE_CMD, env=env, **kw)


def record(server: VLLMServer) -> dict:
    path = Path(server.extra_env["FAKE_VLLM_RECORD"])
    wait_for(path)
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------- family table
@pytest.mark.parametrize(
    ("model", "family", "tool", "reasoning", "template"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5", "hermes", None, None),
        ("qwen/qwen2.5-0.5b-instruct", "Qwen2.5", "hermes", None, None),
        ("Qwen/Qwen3-8B", "Qwen3", "hermes", "qwen3", None),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", "Qwen3", "hermes", "qwen3", None),
        ("/models/Qwen3-0.6B", "Qwen3", "hermes", "qwen3", None),
        ("/hf/hub/models--Qwen--Qwen3-4B/snapshots/0123abcd", "Qwen3", "hermes", "qwen3", None),
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "Qwen3-Coder", "qwen3_coder", None, None),
        ("Qwen/Qwen3.5-9B", "Qwen3.5/3.6", "qwen3_coder", "qwen3", None),
        ("Qwen/QwQ-32B", "QwQ", "hermes", "deepseek_r1", None),
        ("meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1/3.2/3.3", "llama3_json", None, None),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama 3.1/3.2/3.3", "llama3_json", None, None),
        ("meta-llama/Llama-3.2-3B-Instruct", "Llama 3.1/3.2/3.3", "llama3_json", None, None),
        ("meta-llama/Llama-3.3-70B-Instruct", "Llama 3.1/3.2/3.3", "llama3_json", None, None),
        (
            "meta-llama/Llama-4-Scout-17B-16E-Instruct",
            "Llama 4",
            "llama4_pythonic",
            None,
            "examples/tool_chat_template_llama4_pythonic.jinja",
        ),
        ("mistralai/Mistral-7B-Instruct-v0.3", "Mistral", "mistral", None, None),
        ("mistralai/Ministral-8B-Instruct-2410", "Mistral", "mistral", None, None),
        ("mistralai/Magistral-Small-2506", "Magistral", "mistral", "mistral", None),
        (
            "google/gemma-3-27b-it",
            "Gemma 3",
            "pythonic",
            None,
            "examples/tool_chat_template_gemma3_pythonic.jinja",
        ),
        ("NousResearch/Hermes-3-Llama-3.1-8B", "Hermes 2/3", "hermes", None, None),
        ("NousResearch/Hermes-2-Pro-Mistral-7B", "Hermes 2/3", "hermes", None, None),
        (
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "DeepSeek-R1 distill",
            None,
            "deepseek_r1",
            None,
        ),
        (
            "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
            "DeepSeek-R1 distill",
            None,
            "deepseek_r1",
            None,
        ),
        ("openai/gpt-oss-20b", "gpt-oss", "openai", None, None),
    ],
)
def test_family_table(model, family, tool, reasoning, template) -> None:
    flags = resolve_tool_flags(model)
    assert (flags.family, flags.tool_call_parser, flags.reasoning_parser, flags.chat_template) == (
        family,
        tool,
        reasoning,
        template,
    )


@pytest.mark.parametrize(
    "model", ["acme/FooBar-7B", "meta-llama/Meta-Llama-3-8B-Instruct", "Qwen/Qwen2-7B"]
)
def test_unknown_family_needs_a_parser(model) -> None:
    assert find_family(model) is None
    with pytest.raises(UserError, match="--tool-call-parser") as info:
        VLLMServer(model)
    assert "\n" not in str(info.value)
    # an explicit parser, or no tools at all, is accepted
    assert "--tool-call-parser hermes" in " ".join(
        VLLMServer(model, tool_call_parser="hermes").command()
    )
    assert "--tool-call-parser" not in VLLMServer(model, no_tools=True).command()


def test_family_table_is_consistent() -> None:
    for fam in FAMILIES:
        assert fam.tool_call_parser is None or fam.tool_call_parser in TOOL_CALL_PARSERS
        assert fam.reasoning_parser is None or fam.reasoning_parser in REASONING_PARSERS
    table = family_table_markdown()
    assert all(f.name in table for f in FAMILIES)


def test_qwen3_command_has_hermes_and_qwen3_reasoning() -> None:
    s = VLLMServer("Qwen/Qwen3-8B", port=8123, gpus="0", max_model_len=16384)
    cmd = s.command()
    assert cmd[:3] == ["vllm", "serve", "Qwen/Qwen3-8B"]
    line = " ".join(cmd)
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in line
    assert "--reasoning-parser qwen3" in line
    assert "--host 127.0.0.1 --port 8123" in line
    assert "--gpu-memory-utilization 0.9" in line and "--max-model-len 16384" in line
    assert "--chat-template" not in line
    assert s.base_url == "http://127.0.0.1:8123/v1"
    assert s.shell_command().startswith("CUDA_VISIBLE_DEVICES=0 vllm serve Qwen/Qwen3-8B ")
    assert s.emotau_flags() == "--agent-base-url http://127.0.0.1:8123/v1 --model Qwen/Qwen3-8B"


def test_overrides_and_extra_args() -> None:
    s = VLLMServer(
        "Qwen/Qwen3-8B",
        reasoning_parser="none",
        tool_call_parser="qwen3_xml",
        chat_template="/opt/t.jinja",
        served_model_name="agent",
        extra_args="--enforce-eager --max-num-seqs 64 --override-generation-config '{\"a\": 1}'",
    )
    cmd = s.command()
    line = " ".join(cmd)
    assert "--tool-call-parser qwen3_xml" in line and "--reasoning-parser" not in line
    assert "--chat-template /opt/t.jinja" in line
    assert "--served-model-name agent" in line
    assert cmd[-5:] == [
        "--enforce-eager",
        "--max-num-seqs",
        "64",
        "--override-generation-config",
        '{"a": 1}',
    ]
    assert s.model_id == "agent"
    # flags emotau serve manages itself are refused in --extra-args
    with pytest.raises(UserError, match="--port in --extra-args"):
        VLLMServer("Qwen/Qwen3-8B", extra_args="--port=9000")
    # several GPUs: tensor parallelism over them unless set explicitly
    assert "--tensor-parallel-size 2" in " ".join(VLLMServer("Qwen/Qwen3-8B", gpus="0,1").command())
    tp = VLLMServer("Qwen/Qwen3-8B", gpus="0,1", extra_args="-tp 1").command()
    assert "--tensor-parallel-size" not in tp


def test_unknown_parser_lists_allowed_names() -> None:
    with pytest.raises(UserError) as info:
        VLLMServer("Qwen/Qwen3-8B", tool_call_parser="hermes2")
    msg = str(info.value)
    assert "\n" not in msg and "'hermes2'" in msg
    assert "hermes" in msg and "llama3_json" in msg and "pythonic" in msg
    with pytest.raises(UserError) as info:
        VLLMServer("Qwen/Qwen3-8B", reasoning_parser="qwen4")
    assert "qwen3" in str(info.value) and "deepseek_r1" in str(info.value)
    # a plugin may register its own names
    VLLMServer(
        "acme/Foo", tool_call_parser="mine", extra_args="--tool-parser-plugin /opt/p.py"
    ).command()


def test_no_tools_has_no_tool_flags() -> None:
    line = " ".join(VLLMServer("Qwen/Qwen3-8B", no_tools=True).command())
    assert "--enable-auto-tool-choice" not in line and "--tool-call-parser" not in line
    assert "--reasoning-parser qwen3" in line  # thinking is still kept out of the content
    gemma = " ".join(VLLMServer("google/gemma-3-4b-it", no_tools=True).command())
    assert "--chat-template" not in gemma and "--tool-call-parser" not in gemma
    with pytest.raises(UserError, match="exclude each other"):
        VLLMServer("Qwen/Qwen3-8B", no_tools=True, tool_call_parser="hermes")


def test_bad_values_are_user_errors() -> None:
    for kw in (
        {"port": 0},
        {"gpu_memory_utilization": 1.5},
        {"max_model_len": 0},
        {"gpus": "0;1"},
        {"startup_timeout": 0},
        {"extra_args": "--foo 'unclosed"},
    ):
        with pytest.raises(UserError):
            VLLMServer("Qwen/Qwen3-8B", **kw)


def test_default_log_file_is_a_temp_file() -> None:
    s = VLLMServer("Qwen/Qwen3-8B", port=8001)
    assert s.log_file.parent.name == "emotau-serve"
    assert "Qwen3-8B" in s.log_file.name and "8001" in s.log_file.name


def test_gpus_none_inherits_environment(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert VLLMServer("Qwen/Qwen3-8B").environment()["CUDA_VISIBLE_DEVICES"] == "3"
    assert VLLMServer("Qwen/Qwen3-8B", gpus="1").environment()["CUDA_VISIBLE_DEVICES"] == "1"


# --------------------------------------------------------------------------- real processes
def test_ready_after_slow_start_then_clean_stop(tmp_path) -> None:
    s = fake_server(
        tmp_path,
        gpus="2",
        env={
            "FAKE_VLLM_STARTUP_DELAY": "0.8",
            "FAKE_VLLM_UNHEALTHY_FOR": "0.5",
            "FAKE_VLLM_CHILD": "1",
        },
    )
    t0 = time.monotonic()
    s.start()
    assert s.wait_ready() is s
    assert time.monotonic() - t0 >= 1.2
    assert s.ready_after is not None and s.ready_after >= 1.2
    # the base URL works for an OpenAI client
    with urllib.request.urlopen(s.base_url + "/models", timeout=5) as resp:
        assert [m["id"] for m in json.load(resp)["data"]] == ["Qwen/Qwen3-8B"]
    rec = record(s)
    argv = " ".join(rec["argv"])
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in argv
    assert "--reasoning-parser qwen3" in argv
    assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "2"
    log = s.log_file.read_text()
    assert 'GET /health HTTP/1.1" 503' in log and 'GET /health HTTP/1.1" 200' in log
    assert log.startswith("# emotau serve ")

    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 5
    assert s.process.returncode == 0  # SIGTERM handled cleanly
    assert not alive(rec["pid"]) and not alive(rec["child_pid"])
    assert not port_in_use("127.0.0.1", s.port)
    s.stop()  # idempotent


def test_context_manager(tmp_path) -> None:
    with fake_server(tmp_path, served_model_name="agent") as s:
        rec = record(s)
        with urllib.request.urlopen(s.base_url + "/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == "agent"
    assert not alive(rec["pid"])


def test_exit_during_startup_reports_log_tail(tmp_path) -> None:
    s = fake_server(tmp_path, env={"FAKE_VLLM_EXIT_CODE": "3", "FAKE_VLLM_STARTUP_DELAY": "0.3"})
    s.start()
    t0 = time.monotonic()
    with pytest.raises(ServeError) as info:
        s.wait_ready()
    assert time.monotonic() - t0 < 5  # fails fast, not at the timeout
    exc = info.value
    assert isinstance(exc, UserError)
    assert "exited with status 3" in str(exc) and str(s.log_file) in str(exc)
    assert "\n" not in str(exc)
    assert "CUDA out of memory" in exc.log_tail
    assert len(exc.log_tail.splitlines()) <= 20
    assert exc.log_file == s.log_file
    s.stop()


def test_startup_timeout_kills_the_process(tmp_path) -> None:
    s = fake_server(tmp_path, startup_timeout=1.5, env={"FAKE_VLLM_STARTUP_DELAY": "60"})
    s.start()
    rec = record(s)
    t0 = time.monotonic()
    with pytest.raises(ServeError, match=r"not ready within 1.5 s \(no answer yet"):
        s.wait_ready()
    assert time.monotonic() - t0 < 6
    assert s.process.poll() is not None and not alive(rec["pid"])


def test_wrong_model_listed_times_out_with_reason(tmp_path) -> None:
    s = fake_server(tmp_path, startup_timeout=1.5, env={"FAKE_VLLM_LIST_MODEL": "other"})
    s.start()
    with pytest.raises(ServeError, match=r"lists \['other'\] but not 'Qwen/Qwen3-8B'"):
        s.wait_ready()
    assert s.process.poll() is not None


def test_sigterm_ignored_escalates_to_sigkill(tmp_path) -> None:
    s = fake_server(tmp_path, stop_timeout=1, env={"FAKE_VLLM_IGNORE_SIGTERM": "1"})
    s.start()
    s.wait_ready()
    rec = record(s)
    t0 = time.monotonic()
    s.stop()
    assert 0.9 <= time.monotonic() - t0 < 5
    assert s.process.returncode == -signal.SIGKILL
    assert not alive(rec["pid"])


def test_port_in_use_is_detected(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = fake_server(tmp_path, port=port)
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use"):
            s.start()
        assert s.process is None
        assert not Path(s.extra_env["FAKE_VLLM_RECORD"]).exists()


def test_vllm_not_found(tmp_path) -> None:
    for cmd in ("vllm-not-installed-here serve", "/nonexistent/bin/vllm serve"):
        s = VLLMServer("Qwen/Qwen3-8B", port=free_port(), vllm_command=cmd)
        with pytest.raises(UserError, match=r"pip install 'emotau\[vllm\]'"):
            s.start()


def test_missing_chat_template(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = fake_server(tmp_path, model="google/gemma-3-4b-it")
    with pytest.raises(UserError, match=r"tool_chat_template_gemma3_pythonic\.jinja") as info:
        s.start()
    assert "--chat-template" in str(info.value)
    template = tmp_path / "examples" / "tool_chat_template_gemma3_pythonic.jinja"
    template.parent.mkdir()
    template.write_text("{{ messages }}")
    with s:  # the template exists now (relative to the working directory)
        assert "--chat-template examples/" in " ".join(record(s)["argv"])


def test_two_servers_side_by_side(tmp_path) -> None:
    agent = fake_server(tmp_path, model="Qwen/Qwen3-8B", gpus="0")
    user = fake_server(tmp_path, model="Qwen/Qwen2.5-7B-Instruct", gpus="1", no_tools=True)
    assert agent.port != user.port
    try:
        agent.start()
        user.start()
        agent.wait_ready()
        user.wait_ready()
        for s, model in ((agent, "Qwen/Qwen3-8B"), (user, "Qwen/Qwen2.5-7B-Instruct")):
            with urllib.request.urlopen(s.base_url + "/models", timeout=5) as resp:
                assert json.load(resp)["data"][0]["id"] == model
        ra, ru = record(agent), record(user)
        assert ra["env"]["CUDA_VISIBLE_DEVICES"] == "0"
        assert ru["env"]["CUDA_VISIBLE_DEVICES"] == "1"
        assert "--tool-call-parser" in ra["argv"] and "--tool-call-parser" not in ru["argv"]
    finally:
        agent.stop()
        user.stop()
    assert not alive(ra["pid"]) and not alive(ru["pid"])


# ------------------------------------------------------------------------------------ CLI
def test_cli_dry_run() -> None:
    r = CliRunner().invoke(serve_command, ["Qwen/Qwen3-8B", "--dry-run", "--gpus", "1"])
    assert r.exit_code == 0, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("CUDA_VISIBLE_DEVICES=1 vllm serve Qwen/Qwen3-8B --host 127.0.0.1")
    assert "--enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3" in last
    assert "family Qwen3" in r.output


def test_cli_user_mistakes_raise_user_error() -> None:
    runner = CliRunner()
    r = runner.invoke(serve_command, ["acme/FooBar-7B", "--dry-run"])
    assert isinstance(r.exception, UserError) and "--tool-call-parser" in str(r.exception)
    r = runner.invoke(serve_command, ["Qwen/Qwen3-8B", "--tool-call-parser", "x", "--dry-run"])
    assert isinstance(r.exception, UserError) and "hermes" in str(r.exception)
    r = runner.invoke(serve_command, ["Qwen/Qwen3-8B", "--vllm-command", "no-such-vllm-xyz"])
    assert isinstance(r.exception, UserError) and "emotau[vllm]" in str(r.exception)


# The real `emotau` entry point (error handling, exit status), as `python -m emotau`.
EMOTAU = [sys.executable, "-m", "emotau"]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EMOTAU, *args],
        capture_output=True,
        text=True,
        env=helper_env(),
        timeout=timeout,
    )


def cli_serve_argv(*args: str) -> list[str]:
    """`emotau serve Qwen/Qwen3-8B ARGS` with the stand-in vLLM."""
    fake = f"{sys.executable} {FAKE} serve"
    return [
        *EMOTAU,
        "serve",
        "Qwen/Qwen3-8B",
        *args,
        "--vllm-command",
        fake,
    ]


def test_cli_errors_are_one_line_exit_2(tmp_path) -> None:
    r = run_cli("serve", "acme/FooBar-7B", "--dry-run")
    assert r.returncode == 2 and r.stderr.startswith("emotau: error: no tool-calling flags")
    assert len(r.stderr.strip().splitlines()) == 1
    # the server dies during start-up: one error line, and the log tail before it
    log = tmp_path / "s.log"
    e = helper_env()
    e.update({"FAKE_VLLM_EXIT_CODE": "1", "FAKE_VLLM_STARTUP_DELAY": "0.2"})
    r = subprocess.run(
        cli_serve_argv("--port", str(free_port()), "--log-file", str(log)),
        capture_output=True,
        text=True,
        env=e,
        timeout=30,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"emotau: error: vLLM exited with status 1 during start-up; log: {log}"
    )
    assert "CUDA out of memory" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signal_then_stops(tmp_path, sig) -> None:
    port = free_port()
    rec_file = tmp_path / "rec.json"
    e = helper_env()
    e.update({"FAKE_VLLM_RECORD": str(rec_file), "FAKE_VLLM_STARTUP_DELAY": "0.5"})
    proc = subprocess.Popen(
        cli_serve_argv(
            "--port", str(port), "--log-file", str(tmp_path / "s.log"), "--startup-timeout", "10"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
        # as from a terminal: a shell starts background jobs (pytest run with `&`, say) with
        # SIGINT ignored, and Python then leaves Ctrl-C ignored, as the shell asked
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving;"):
                break
        out = "".join(lines)
        assert f" s: http://127.0.0.1:{port}/v1" in out and "ready after" in out
        assert (
            f"use with emotau: --agent-base-url http://127.0.0.1:{port}/v1 --model Qwen/Qwen3-8B"
            in out
        )
        assert f"{FAKE} serve Qwen/Qwen3-8B --host 127.0.0.1 --port {port}" in out
        pid = json.loads(rec_file.read_text())["pid"]
        assert alive(pid)
        time.sleep(0.3)
        assert proc.poll() is None  # blocks while serving
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in rest
    assert not alive(pid)
    assert not port_in_use("127.0.0.1", port)


def test_registered_cli_dry_run() -> None:
    from emotau.cli import cli

    assert cli.commands["serve"] is serve_command
    r = subprocess.run(
        [sys.executable, "-m", "emotau", "serve", "Qwen/Qwen3-8B", "--dry-run"],
        capture_output=True,
        text=True,
        env=helper_env(),
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "vllm serve Qwen/Qwen3-8B" in r.stdout
    assert "--tool-call-parser hermes --reasoning-parser qwen3" in r.stdout


# ------------------------------------------------------------------ a vLLM on a CPU
def test_cpu_device_sizes_the_kv_cache_not_the_gpu_memory(monkeypatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    cpu = VLLMServer("Qwen/Qwen3-8B", device="cpu")
    assert "--gpu-memory-utilization" not in cpu.command()  # vLLM would take 90% of the RAM
    assert cpu.environment()["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert cpu.shell_command().startswith("VLLM_CPU_KVCACHE_SPACE=4 vllm serve Qwen/Qwen3-8B ")
    small = VLLMServer("Qwen/Qwen3-8B", device="cpu", cpu_kv_cache_gib=1)
    assert small.environment()["VLLM_CPU_KVCACHE_SPACE"] == "1"
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")  # the user's own setting stays
    assert VLLMServer("Qwen/Qwen3-8B", device="cpu").environment()["VLLM_CPU_KVCACHE_SPACE"] == "2"
    gpu = VLLMServer("Qwen/Qwen3-8B", device="gpu")
    assert "--gpu-memory-utilization 0.9" in " ".join(gpu.command())
    assert "VLLM_CPU_KVCACHE_SPACE" not in gpu.shell_command()
    named = VLLMServer("Qwen/Qwen3-8B", gpus="0")  # GPUs named: a GPU, whatever this machine is
    assert named.device == "gpu"
    with pytest.raises(UserError, match="--gpu-memory-utilization is for GPUs"):
        VLLMServer("Qwen/Qwen3-8B", device="cpu", gpu_memory_utilization=0.5)
    with pytest.raises(UserError, match="--cpu-kv-cache must be positive, and is only for a CPU"):
        VLLMServer("Qwen/Qwen3-8B", device="gpu", cpu_kv_cache_gib=1)
    with pytest.raises(UserError, match="--device must be one of auto, gpu, cpu"):
        VLLMServer("Qwen/Qwen3-8B", device="tpu")
    r = CliRunner().invoke(serve_command, ["Qwen/Qwen3-8B", "--dry-run", "--device", "cpu"])
    assert r.exit_code == 0 and "--gpu-memory-utilization" not in r.output, r.output


def test_a_failed_start_shows_the_root_cause_above_the_tail(tmp_path) -> None:
    """vLLM's last lines wrap the error ("See root cause above"): the first exception line of
    the log is shown too, with where it is."""
    s = VLLMServer("Qwen/Qwen3-8B", device="cpu", log_file=tmp_path / "v.log")
    lines = [f"INFO {i} loading" for i in range(1, 49)]
    lines.append("ValueError: not enough memory: 90% of RAM was asked for, 40% is free")
    lines += [f"  File 'x.py', line {i}" for i in range(50, 150)]
    lines += ["RuntimeError: Engine core initialization failed. See root cause above."]
    lines += [f"DEBUG {i}" for i in range(151, 169)]
    (tmp_path / "v.log").write_text("\n".join(lines) + "\n")
    tail = s.log_tail()
    assert tail.splitlines()[0] == (
        "(root cause, line 49 of 168:) ValueError: not enough memory: 90% of RAM was asked "
        "for, 40% is free"
    )
    assert tail.splitlines()[-1] == "DEBUG 168" and "Engine core initialization failed" in tail
    (tmp_path / "v.log").write_text("\n".join(f"line {i}" for i in range(30)) + "\n")
    assert s.log_tail().splitlines() == [f"line {i}" for i in range(10, 30)]  # no exception


def _fake_vllm_install(tmp_path: Path, version: str, tools: list[str]) -> Path:
    """A `vllm` executable whose Python has a package named vllm with these parsers."""
    site = tmp_path / "site"
    for sub, cls in (
        ("tool_parsers", "ToolParserManager"),
        ("reasoning", "ReasoningParserManager"),
    ):
        pkg = site / "vllm" / sub
        pkg.mkdir(parents=True)
        names = tools if sub == "tool_parsers" else ["qwen3", "fresh_reasoner"]
        pkg.joinpath("__init__.py").write_text(
            f"class {cls}:\n    @staticmethod\n    def list_registered():\n"
            f"        return {names!r}\n"
        )
    (site / "vllm" / "__init__.py").write_text("")
    dist = site / f"vllm-{version}.dist-info"
    dist.mkdir()
    dist.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    vllm = tmp_path / "bin" / "vllm"
    vllm.write_text(f"#!{python}\nprint('a vllm')\n")
    vllm.chmod(0o755)
    return vllm


def test_parser_names_come_from_the_installed_vllm(tmp_path) -> None:
    from emotau.serving import PARSERS_VLLM_VERSION, installed_parsers, vllm_python

    vllm = _fake_vllm_install(tmp_path, "0.99.1", ["hermes", "brand_new_parser"])
    assert vllm_python([str(vllm), "serve"]) == str(tmp_path / "bin" / "python3")
    found = installed_parsers([str(vllm), "serve"])
    assert found is not None and found.tool == ("brand_new_parser", "hermes")
    assert found.source == f"vLLM 0.99.1 at {tmp_path / 'bin' / 'python3'}"
    # a name only the installed vLLM knows is accepted; one it dropped is refused, saying whose
    flags = resolve_tool_flags("acme/Foo-7B", tool_call_parser="brand_new_parser", parsers=found)
    assert flags.tool_call_parser == "brand_new_parser"
    with pytest.raises(UserError, match=r"unknown --tool-call-parser 'brand_new_parser'; emotau's"):
        resolve_tool_flags("acme/Foo-7B", tool_call_parser="brand_new_parser")
    with pytest.raises(UserError) as err:
        resolve_tool_flags("acme/Foo-7B", tool_call_parser="x")
    assert f"emotau's list for vLLM {PARSERS_VLLM_VERSION} knows" in str(err.value)
    with pytest.raises(UserError, match=r"unknown --tool-call-parser 'mistral'; vLLM 0\.99\.1 at"):
        resolve_tool_flags("acme/Foo-7B", tool_call_parser="mistral", parsers=found)
    r = CliRunner().invoke(
        serve_command,
        ["acme/Foo-7B", "--tool-call-parser", "brand_new_parser", "--dry-run",
         "--vllm-command", f"{vllm} serve"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "--tool-call-parser brand_new_parser" in r.output
    # no vLLM behind the command (the stand-in, a missing one): the built-in lists
    assert installed_parsers(FAKE_CMD) is None
    assert installed_parsers(["no-such-vllm-xyz", "serve"]) is None
    assert vllm_python(["no-such-vllm-xyz"]) is None
