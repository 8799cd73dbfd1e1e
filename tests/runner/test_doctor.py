"""The run's preflight and ``emotau doctor`` against the mock server's vLLM-like behaviours:
a small context, refused or ignored ``tool_choice="required"``, a model that fails at one
temperature, a server that fails (5xx) on tools, a base URL without ``/v1``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helpers import FAST_RETRIES, emotau_here, mock_server, mock_stats

pytest.importorskip("aiohttp")

ROLES = ["--model", "scripted-agent", "--user-model", "scripted-user"]
SMALL_RUN = ["--tasks", "1", "--num-trials", "1", "--variants", "control", "--quiet"]


def _run(tmp_path: Path, url: str, *args: str) -> object:
    return emotau_here("run", "--out", str(tmp_path), "--base-url", url, *args)


def _doctor(url: str, *args: str) -> dict[str, dict]:
    r = emotau_here("doctor", "--base-url", url, *args, "--format", "json")
    assert r.returncode in (0, 1), r.stderr
    return {x["role"]: x for x in json.loads(r.stdout)}


def _checks(report: dict) -> dict[str, tuple[str, str]]:
    return {c["check"]: (c["status"], c["detail"]) for c in report["checks"]}


def _refused(r: object, tmp_path: Path) -> str:
    """The one-line refusal of a run that never started (after a line per preflight retry)."""
    assert r.returncode == 2, (r.stdout, r.stderr)  # type: ignore[attr-defined]
    lines = r.stderr.strip().splitlines()  # type: ignore[attr-defined]
    lines = [x for x in lines if not x.startswith("emotau: preflight: waiting for the ")]
    assert len(lines) == 1, lines
    assert not (tmp_path / "demo").exists()  # no run directory
    return lines[0]


def test_a_context_smaller_than_the_first_request_is_refused(tmp_path) -> None:
    with mock_server("--max-model-len", "2048") as url:
        line = _refused(_run(tmp_path, url, *ROLES), tmp_path)
        assert "max_model_len 2048" in line and "--max-model-len" in line
        needs = re.search(
            r"first request \(the domain's policy and tools\) needs (\d+) tokens", line
        )
        assert needs and int(needs[1]) > 2048, line
        agent = _doctor(url, *ROLES)["agent"]
        assert agent["verdict"] == "fail"
        status, detail = _checks(agent)["first request"]
        assert status == "fail" and "max_model_len 2048" in detail
        assert "max_model_len 2048" in _checks(agent)["model listed"][1]
    # the first request fits with max_tokens=1, but not with the role's max_tokens
    cfg = tmp_path / "big.toml"
    cfg.write_text("[agent]\nmax_tokens = 4000\n")
    with mock_server("--max-model-len", "6000") as url:
        line = _refused(_run(tmp_path, url, *ROLES, "--config", str(cfg)), tmp_path)
        assert "plus max_tokens 4000" in line and "max_model_len 6000" in line
        r = _run(tmp_path, url, *ROLES, *SMALL_RUN)  # without it the run starts
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "demo").is_dir()
        agent = _doctor(url, *ROLES)["agent"]
        assert _checks(agent)["first request"][0] == "ok"


def test_the_hint_on_refused_tools_fits_the_tool_choice(tmp_path) -> None:
    with mock_server("--reject-required") as url:
        line = _refused(_run(tmp_path, url, *ROLES, "--tool-choice", "required"), tmp_path)
        assert "rejects tool calls with tool_choice='required'" in line
        assert "--tool-call-parser" in line and "--agent-strategy react" in line
        assert "try --tool-choice required" not in line
        r = _run(tmp_path, url, *ROLES, *SMALL_RUN)  # auto is not refused here
        assert r.returncode == 0, r.stderr
    with mock_server("--reject-tools") as url:  # under auto, required is worth a try
        line = _refused(_run(tmp_path / "auto", url, *ROLES), tmp_path / "auto")
        assert "tool_choice='auto'" in line and "try --tool-choice required" in line


def test_a_server_that_ignores_required_is_refused(tmp_path) -> None:
    required = ["--tool-choice", "required", "--user-model", "scripted-user"]
    with mock_server() as url:
        line = _refused(
            _run(tmp_path, url, "--model", "scripted-agent-nevertools", *required), tmp_path
        )
        assert "ignores tool_choice='required'" in line and "--agent-strategy react" in line
        agent = _doctor(url, "--model", "scripted-agent-nevertools", *required)["agent"]
        assert _checks(agent)["tools (required)"][0] == "fail"
        assert any("ignores tool_choice=required" in f for f in agent["fixes"])
        # the model that calls tools only when required passes
        r = _run(tmp_path, url, "--model", "scripted-agent-notools", *required, *SMALL_RUN)
        assert r.returncode == 0, r.stderr


def test_doctor_probes_at_the_run_temperature(tmp_path) -> None:
    # the model answers at temperature 0 and returns nothing above 0.5 (no temperature: 1.0)
    with mock_server("--empty-above-temperature", "0.5") as url:
        cold = _doctor(url, *ROLES, "--temperature", "0")
        assert cold["agent"]["verdict"] == "ok" and cold["agent"]["temperature"] == 0.0
        assert _checks(cold["agent"])["chat"] == ("ok", "replied 'ready' at temperature 0")
        hot = _doctor(url, *ROLES, "--temperature", "0.7")
        assert hot["agent"]["verdict"] == "fail" and hot["agent"]["temperature"] == 0.7
        assert _checks(hot["agent"])["chat"] == ("fail", "empty reply at temperature 0.7")
        assert "temperature 0.7" in _checks(hot["agent"])["sampling"][1]
        assert hot["user"]["verdict"] == "ok"  # the user's own temperature, 0
        table = emotau_here("doctor", "--base-url", url, *ROLES, "--temperature", "0.7")
        assert table.returncode == 1 and "(temperature 0.7)" in table.stdout


def test_a_server_error_on_tools_is_no_missing_flag(tmp_path) -> None:
    with mock_server("--tools-error-rate", "1.0") as url:
        agent = _doctor(url, *ROLES)["agent"]
        failed = [c for c in agent["checks"] if c["status"] == "fail"]
        assert {c["check"] for c in failed} == {"first request", "tools (auto)", "tools (required)"}
        assert all("HTTP 500" in c["detail"] for c in failed)
        # every failed check is one attempt: doctor does not retry
        assert mock_stats(url)["faults"]["tools_500"] == len(failed)
        fixes = " ".join(agent["fixes"])
        assert "the server failed on a request with tools (HTTP 500): see the server's log" in fixes
        assert "--enable-auto-tool-choice" not in fixes and "rejects" not in fixes
        assert "latency" in _checks(agent)  # the chat's single attempt
        r = _run(tmp_path, url, *ROLES, "--config", str(FAST_RETRIES))
        line = _refused(r, tmp_path)
        assert "HTTP 500" in line and "the server failed: see its log" in line
        waits = r.stderr.splitlines()[:-1]  # each retry of the preflight's request, said
        assert len(waits) == 5 and all("attempt" in x and "HTTP 500" in x for x in waits), waits
        assert "--enable-auto-tool-choice" not in line
    with mock_server("--reject-tools") as url:  # a 400 is the missing flag
        agent = _doctor(url, *ROLES)["agent"]
        assert any("--enable-auto-tool-choice" in f for f in agent["fixes"])


def test_a_base_url_without_v1_gets_a_hint(tmp_path) -> None:
    with mock_server() as url:
        root = url.removesuffix("/v1")
        hint = f"(did you mean {root}/v1?)"
        line = _refused(_run(tmp_path, root, *ROLES), tmp_path)
        assert "HTTP 404" in line and hint in line
        agent = _doctor(root, *ROLES)["agent"]
        assert agent["verdict"] == "fail" and hint in _checks(agent)["chat"][1]
        assert any(hint in f for f in agent["fixes"])
        # a path that ends in /v1 gets the 404 without the hint
        line = _refused(_run(tmp_path, root + "/x/v1", *ROLES), tmp_path)
        assert "HTTP 404" in line and "did you mean" not in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tools-error-rate", "2"], "tools error rate must be in [0, 1]"),
        (["--empty-above-temperature", "nan"], "temperature for empty replies"),
        (["--max-model-len", "0"], "--max-model-len"),
    ],
)
def test_the_mock_servers_new_options_are_checked(args, needle) -> None:
    r = emotau_here("mock-server", "--port", "0", *args)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ review fixes
def test_doctor_under_required_does_not_fail_on_auto_nor_suggest_required() -> None:
    with mock_server() as url:
        got = _doctor(url, "--model", "scripted-agent-notools", "--user-model", "scripted-user",
                      "--tool-choice", "required")  # fmt: skip
    agent = got["agent"]
    checks = _checks(agent)
    assert checks["tools (auto)"][0] == "warn"  # information: this run forces the call
    assert checks["tools (required)"][0] == "ok"
    assert agent["verdict"] != "fail"
    assert not any("--tool-choice required" in f for f in agent["fixes"]), agent["fixes"]


def test_a_cut_tool_call_block_is_no_call_for_doctor() -> None:
    from types import SimpleNamespace

    from emotau.runner._doctor import _tool_call_back

    def choice(content: str, finish: str = "stop") -> SimpleNamespace:
        message = SimpleNamespace(tool_calls=None, content=content)
        return SimpleNamespace(message=message, finish_reason=finish)

    cut = '<tool_call>{"name": "get_order_status", "arg'
    assert _tool_call_back(choice(cut)) == (False, False)  # broken, not for want of tokens
    assert _tool_call_back(choice(cut, "length")) == (True, True)  # cut while writing a call
    whole = '<tool_call>{"name": "get_order_status", "arguments": {"order_id": "1"}}</tool_call>'
    assert _tool_call_back(choice(whole)) == (True, True)


def test_model_text_in_the_doctor_table_is_not_markup() -> None:
    from rich.console import Console

    from emotau.runner._doctor import RoleReport, render

    rep = RoleReport("agent", "m[/bold]", "http://x/v1")
    rep.add("chat", "ok", "replied '[/INST] hello [type=literal_error]'")
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render([rep]))  # a MarkupError before
    text = console.export_text()
    assert "[/INST] hello [type=literal_error]" in text and "m[/bold]" in text


def test_a_refused_key_is_named_as_such(tmp_path) -> None:
    import http.server
    import threading

    class Refuses(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": {"message": "invalid api key"}}).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        got = _doctor(f"http://127.0.0.1:{srv.server_address[1]}/v1", "--model", "m",
                      "--user-model", "m")  # fmt: skip
    finally:
        srv.shutdown()
        srv.server_close()
    fixes = got["agent"]["fixes"]
    assert any("refuses the API key (HTTP 401)" in f for f in fixes), fixes
    assert not any("sampling settings" in f or "--enable-auto-tool-choice" in f for f in fixes)


def test_the_first_request_check_keeps_the_roles_token_field(tmp_path) -> None:
    """A role that sends max_completion_tokens (OpenAI's o-series refuse max_tokens) gets its
    preflight requests with that field only, never both."""
    import http.server
    import threading

    bodies: list[dict] = []

    class Records(http.server.BaseHTTPRequestHandler):
        def _send(self, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "m"}]})

        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            msg = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "respond", "arguments": '{"content": "hi"}'},
                    }
                ],
            }
            self._send({"choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 2}})  # fmt: skip

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Records)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    try:
        import asyncio

        from emotau.runner import preflight, prepare
        from emotau.spec import build_spec

        spec = build_spec({"agent": {"model": "m", "base_url": url,
                                     "extra_body": {"max_completion_tokens": 50}},
                           "tool_choice": "required", "out": str(tmp_path)})  # fmt: skip
        asyncio.run(preflight(prepare(spec)))
    finally:
        srv.shutdown()
        srv.server_close()
    agent = [b for b in bodies if b.get("model") == "m" and b.get("tools")]
    assert agent, bodies
    assert all(not ("max_tokens" in b and "max_completion_tokens" in b) for b in agent), agent
