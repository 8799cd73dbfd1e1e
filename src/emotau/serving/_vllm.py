"""``emotau serve``: start vLLM's OpenAI-compatible server with the right tool-calling flags.

The flags a model needs for ``tool_choice="auto"`` (``--enable-auto-tool-choice``,
``--tool-call-parser``, ``--reasoning-parser``, sometimes ``--chat-template``) depend on the model
family. :data:`FAMILIES` maps model names to them; every flag can be overridden.

Python use (e.g. an agent and a user server side by side in a Slurm job)::

    from emotau.serve import VLLMServer

    with VLLMServer("Qwen/Qwen3-8B", port=8000, gpus="0") as agent, VLLMServer(
        "Qwen/Qwen2.5-7B-Instruct", port=8001, gpus="1", no_tools=True
    ) as user:
        ...  # agent.base_url, user.base_url

This module imports only the standard library and click at start-up (``emotau --help`` loads it);
``emotau.errors`` is a standard-library-only module of this package.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from emotau.core._errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
DEFAULT_STARTUP_TIMEOUT = 900.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_VLLM_COMMAND = ("vllm", "serve")
LOG_TAIL_LINES = 20
VLLM_EXTRA_HINT = "vLLM is an optional GPU extra: pip install 'emotau[vllm]'"

# Tool-call parser names registered by vLLM (vllm/tool_parsers/__init__.py on main, 2026), plus
# names that older releases still in use registered (minimax, step_deepresearch).
TOOL_CALL_PARSERS: tuple[str, ...] = (
    "apertus",
    "cohere_command3",
    "cohere_command4",
    "deepseek_v3",
    "deepseek_v31",
    "deepseek_v32",
    "deepseek_v4",
    "ernie45",
    "functiongemma",
    "gemma4",
    "gigachat3",
    "glm45",
    "glm47",
    "granite",
    "granite-20b-fc",
    "granite4",
    "hermes",
    "hunyuan_a13b",
    "hy_v3",
    "inkling",
    "internlm",
    "jamba",
    "kimi_k2",
    "kimi_k3",
    "lfm2",
    "llama3_json",
    "llama4_json",
    "llama4_pythonic",
    "longcat",
    "mimo",
    "minicpm5",
    "minimax",
    "minimax_m2",
    "minimax_m3",
    "mistral",
    "olmo3",
    "openai",
    "phi4_mini_json",
    "poolside_v1",
    "pythonic",
    "qwen3_coder",
    "qwen3_xml",
    "seed_oss",
    "solar_open2",
    "step3",
    "step3p5",
    "step_deepresearch",
    "xlam",
)

# Reasoning parser names registered by vLLM (vllm/reasoning/__init__.py on main, 2026).
REASONING_PARSERS: tuple[str, ...] = (
    "cohere_command3",
    "cohere_command4",
    "deepseek_r1",
    "deepseek_v3",
    "deepseek_v4",
    "ernie45",
    "gemma4",
    "glm45",
    "glm47",
    "granite",
    "holo2",
    "hunyuan_a13b",
    "hy_v3",
    "inkling",
    "kimi_k2",
    "kimi_k3",
    "mimo",
    "minimax_m2",
    "minimax_m2_append_think",
    "minimax_m3",
    "mistral",
    "nemotron_v3",
    "olmo3",
    "openai_gptoss",
    "poolside_v1",
    "qwen3",
    "seed_oss",
    "solar_open2",
    "step3",
    "step3p5",
)

# Flags that emotau serve sets itself; giving them in --extra-args would break readiness checks
# or contradict the family table, so they are refused there.
_MANAGED_FLAGS = {
    "--host": "--host",
    "--port": "--port",
    "--served-model-name": "--served-model-name",
    "--tool-call-parser": "--tool-call-parser",
    "--reasoning-parser": "--reasoning-parser",
    "--chat-template": "--chat-template",
    "--enable-auto-tool-choice": "--tool-call-parser (or --no-tools)",
    "--gpu-memory-utilization": "--gpu-memory-utilization",
    "--max-model-len": "--max-model-len",
}

NONE_WORDS = {"none", "off"}


@dataclass(frozen=True)
class Family:
    """One row of the family table: which vLLM flags a model family needs."""

    name: str
    pattern: str  # regex, case-insensitive, searched in the model name after any org prefix
    examples: str
    tool_call_parser: str | None
    reasoning_parser: str | None = None
    chat_template: str | None = None  # passed by default; the file must exist where vLLM runs
    note: str = ""

    def matches(self, name: str) -> bool:
        return re.search(self.pattern, name, re.IGNORECASE) is not None


# First match wins, so specific rows come before general ones (Hermes-3-Llama-3.1 is Hermes,
# DeepSeek-R1-Distill-Qwen is a distill, Qwen3-Coder is not plain Qwen3).
FAMILIES: tuple[Family, ...] = (
    Family(
        "DeepSeek-R1 distill",
        r"deepseek-r1-distill",
        "DeepSeek-R1-Distill-Qwen-7B, DeepSeek-R1-Distill-Llama-8B",
        None,
        "deepseek_r1",
        note=(
            "DeepSeek-R1 distills have no tool-call format vLLM can parse: no tool flags are set. "
            "Use it as the user simulator, or run the agent with --tool-choice required"
        ),
    ),
    Family("Hermes 2/3", r"(^|[^a-z])hermes-?[23]([^0-9]|$)", "Hermes-3-Llama-3.1-8B", "hermes"),
    Family(
        "Qwen3-Coder",
        r"qwen3-coder",
        "Qwen3-Coder-30B-A3B-Instruct",
        "qwen3_coder",
    ),
    Family(
        "Qwen3.5/3.6",
        r"qwen3\.[5-9]",
        "Qwen3.5-9B",
        "qwen3_coder",
        "qwen3",
        note="XML tool calls (<function=...>); hermes would silently give no tool calls",
    ),
    Family("QwQ", r"(^|[^a-z])qwq", "QwQ-32B", "hermes", "deepseek_r1"),
    Family(
        "Qwen3",
        r"qwen3([^.0-9]|$)",
        "Qwen3-8B, Qwen3-30B-A3B-Instruct-2507",
        "hermes",
        "qwen3",
        note=(
            "thinking is on by default; turn it off per request with "
            'extra_body {"chat_template_kwargs": {"enable_thinking": false}}'
        ),
    ),
    Family("Qwen2.5", r"qwen2\.5", "Qwen2.5-7B-Instruct", "hermes"),
    Family(
        "Llama 4",
        r"llama-?4([^0-9]|$)",
        "Llama-4-Scout-17B-16E-Instruct",
        "llama4_pythonic",
        chat_template="examples/tool_chat_template_llama4_pythonic.jinja",
    ),
    Family(
        "Llama 3.1/3.2/3.3",
        r"llama-?3\.[123]([^0-9]|$)",
        "Llama-3.1-8B-Instruct, Llama-3.2-3B-Instruct, Llama-3.3-70B-Instruct",
        "llama3_json",
        note=(
            "vLLM also offers examples/tool_chat_template_llama3.1_json.jinja "
            "(pass it with --chat-template); small Llamas often emit malformed calls"
        ),
    ),
    Family("Magistral", r"magistral", "Magistral-Small-2506", "mistral", "mistral"),
    Family(
        "Mistral",
        r"mistral|mixtral|ministral|devstral|codestral",
        "Mistral-7B-Instruct-v0.3, Mistral-Small-3.2-24B-Instruct-2506",
        "mistral",
    ),
    Family(
        "Gemma 3",
        r"gemma-?3([^0-9n]|$)",
        "gemma-3-27b-it",
        "pythonic",
        chat_template="examples/tool_chat_template_gemma3_pythonic.jinja",
        note="no dedicated parser; Gemma 3 sometimes wraps calls in ```json fences",
    ),
    Family("Gemma 4", r"gemma-?4([^0-9]|$)", "gemma-4-* instruction models", "gemma4"),
    Family("gpt-oss", r"gpt-oss", "gpt-oss-20b, gpt-oss-120b", "openai"),
)


@dataclass(frozen=True)
class ToolFlags:
    """The tool-calling flags resolved for one model (family table + overrides)."""

    family: str | None  # family name, or None when nothing matched
    tool_call_parser: str | None
    reasoning_parser: str | None
    chat_template: str | None
    note: str = ""

    def args(self) -> list[str]:
        out: list[str] = []
        if self.tool_call_parser:
            out += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        if self.reasoning_parser:
            out += ["--reasoning-parser", self.reasoning_parser]
        if self.chat_template:
            out += ["--chat-template", self.chat_template]
        return out

    def describe(self) -> str:
        parts = [f"family {self.family}" if self.family else "no known family"]
        parts.append(
            f"tool parser {self.tool_call_parser}" if self.tool_call_parser else "no tool flags"
        )
        if self.reasoning_parser:
            parts.append(f"reasoning parser {self.reasoning_parser}")
        if self.chat_template:
            parts.append(f"chat template {self.chat_template}")
        return ", ".join(parts)


def _name_candidates(model: str) -> list[str]:
    """Names to match, best first: the part after any org prefix, then parent folders of a path.

    ``Qwen/Qwen3-8B`` -> ``Qwen3-8B``; ``/hf/models--Qwen--Qwen3-8B/snapshots/abc`` -> ``abc``,
    ``Qwen3-8B`` (from the Hugging Face cache folder name), ...
    """
    parts = [p for p in re.split(r"[/\\]", model.strip()) if p]
    out = []
    for part in reversed(parts):
        cache = re.fullmatch(r"models--[^-].*?--(.+)", part)
        out.append(cache.group(1) if cache else part)
    return out


def find_family(model: str) -> Family | None:
    """The first row of :data:`FAMILIES` that matches ``model``, or None."""
    for name in _name_candidates(model):
        for fam in FAMILIES:
            if fam.matches(name):
                return fam
    return None


def _check_name(value: str, allowed: tuple[str, ...], flag: str) -> None:
    if value not in allowed:
        raise UserError(
            f"unknown {flag} {value!r}; vLLM knows: {', '.join(allowed)} "
            "(a parser from --tool-parser-plugin/--reasoning-parser-plugin in --extra-args "
            "skips this check)"
        )


def _is_none(value: str | None) -> bool:
    return value is not None and value.strip().lower() in NONE_WORDS


def resolve_tool_flags(
    model: str,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
    chat_template: str | None = None,
    no_tools: bool = False,
    extra_args: list[str] | tuple[str, ...] = (),
) -> ToolFlags:
    """Flags for ``model`` from the family table, with overrides.

    ``reasoning_parser`` / ``chat_template`` given as ``"none"`` drop the family's value.
    ``no_tools`` drops the tool parser and the family's (tool) chat template, keeps the reasoning
    parser. An unknown family needs ``tool_call_parser`` or ``no_tools``.
    """
    fam = find_family(model)
    if no_tools and tool_call_parser and not _is_none(tool_call_parser):
        raise UserError("--no-tools and --tool-call-parser exclude each other")
    if tool_call_parser is not None and not tool_call_parser.strip():
        raise UserError("--tool-call-parser is empty")
    if fam is None and tool_call_parser is None and not no_tools:
        known = "; ".join(f"{f.name} ({f.examples})" for f in FAMILIES)
        raise UserError(
            f"no tool-calling flags known for model {model!r}: pass --tool-call-parser NAME "
            f"(and --reasoning-parser NAME for a thinking model), or --no-tools for a server "
            f"without tool calling. Known families: {known}"
        )
    plugins = " ".join(extra_args)
    # tool parser
    if no_tools or _is_none(tool_call_parser):
        tcp = None
    elif tool_call_parser is not None:
        tcp = tool_call_parser.strip()
        if "--tool-parser-plugin" not in plugins:
            _check_name(tcp, TOOL_CALL_PARSERS, "--tool-call-parser")
    else:
        tcp = fam.tool_call_parser if fam else None
    # reasoning parser
    if _is_none(reasoning_parser):
        rp = None
    elif reasoning_parser is not None:
        rp = reasoning_parser.strip()
        if not rp:
            raise UserError("--reasoning-parser is empty")
        if "--reasoning-parser-plugin" not in plugins:
            _check_name(rp, REASONING_PARSERS, "--reasoning-parser")
    else:
        rp = fam.reasoning_parser if fam else None
    # chat template
    if _is_none(chat_template):
        ct = None
    elif chat_template is not None:
        ct = chat_template
        if not ct.strip():
            raise UserError("--chat-template is empty")
    else:
        ct = None if (no_tools or fam is None) else fam.chat_template
    note = fam.note if fam and not no_tools else ""
    return ToolFlags(fam.name if fam else None, tcp, rp, ct, note)


def _template_is_path(value: str) -> bool:
    # vLLM takes a file path, an inline Jinja template, or a keyword such as "tool_use"
    if "{{" in value or "{%" in value:
        return False
    return "/" in value or os.sep in value or value.endswith((".jinja", ".j2"))


def family_table_markdown() -> str:
    """The family table as Markdown (docs/serve.md holds a copy)."""
    rows = [
        "| family | examples | tool parser | reasoning parser | chat template |",
        "|---|---|---|---|---|",
    ]
    for f in FAMILIES:
        rows.append(
            f"| {f.name} | {f.examples} | {f.tool_call_parser or '-'} | "
            f"{f.reasoning_parser or '-'} | {f.chat_template or '-'} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------------- errors
class ServeError(UserError):
    """The server did not become ready (exited, timed out). ``str()`` is one line."""

    def __init__(self, message: str, log_file: Path | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_file = log_file
        self.log_tail = log_tail


# --------------------------------------------------------------------------------- server
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/").split("/")[-1] or "model")[:60]


def _default_log_file(model: str, port: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return (
        Path(tempfile.gettempdir())
        / "emotau-serve"
        / f"vllm-{_slug(model)}-{port}-{stamp}-{os.getpid()}.log"
    )


def _split(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise UserError(f"cannot split {value!r} into arguments: {exc}") from None
    return [str(v) for v in value]


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _local_host(host: str) -> str:
    """Where to poll a server bound to ``host`` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def port_in_use(host: str, port: int) -> bool:
    """True if something listens on ``host:port`` (binding it as a server would fail)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return False  # let vLLM report an unresolvable host
    for family, socktype, proto, _, addr in infos:
        with socket.socket(family, socktype, proto) as s:
            # SO_REUSEADDR like uvicorn: TIME_WAIT leftovers do not count, a listener does
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError:
                return True
    return False


class VLLMServer:
    """One ``vllm serve`` process: build its command, start it, wait until ready, stop it.

    The process runs in its own process group with stdout and stderr in ``log_file``; ``stop()``
    signals the whole group (vLLM's engine and worker processes included).
    """

    def __init__(
        self,
        model: str,
        port: int = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        gpus: str | None = None,
        gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
        max_model_len: int | None = None,
        served_model_name: str | None = None,
        tool_call_parser: str | None = None,
        reasoning_parser: str | None = None,
        chat_template: str | None = None,
        no_tools: bool = False,
        log_file: str | os.PathLike[str] | None = None,
        vllm_command: str | list[str] | tuple[str, ...] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        extra_args: str | list[str] | tuple[str, ...] | None = None,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        poll_interval: float = 0.25,
        env: dict[str, str] | None = None,
    ) -> None:
        if not model or not model.strip():
            raise UserError("no model given")
        if not 1 <= int(port) <= 65535:
            raise UserError(f"--port must be 1..65535, got {port}")
        if not 0 < gpu_memory_utilization <= 1:
            raise UserError(
                f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        if max_model_len is not None and max_model_len <= 0:
            raise UserError(f"--max-model-len must be positive, got {max_model_len}")
        if startup_timeout <= 0:
            raise UserError(f"--startup-timeout must be positive, got {startup_timeout}")
        if gpus is not None:
            gpus = ",".join(g.strip() for g in str(gpus).split(",") if g.strip())
            if not re.fullmatch(r"[A-Za-z0-9-]+(,[A-Za-z0-9-]+)*", gpus):
                raise UserError(
                    f"--gpus must be comma-separated GPU indices (or UUIDs), e.g. 0 or 0,1; "
                    f"got {gpus!r}"
                )
        self.model = model.strip()
        self.port = int(port)
        self.host = host
        self.gpus = gpus
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.served_model_name = served_model_name
        self.extra_args = _split(extra_args)
        for a in self.extra_args:
            flag = a.split("=", 1)[0]
            if flag in _MANAGED_FLAGS:
                raise UserError(
                    f"{flag} in --extra-args: use emotau serve's own {_MANAGED_FLAGS[flag]}"
                )
        self.tool_flags = resolve_tool_flags(
            self.model, tool_call_parser, reasoning_parser, chat_template, no_tools, self.extra_args
        )
        self.vllm_command = _split(vllm_command) if vllm_command else list(DEFAULT_VLLM_COMMAND)
        if not self.vllm_command:
            raise UserError("--vllm-command is empty")
        self.log_file = Path(log_file) if log_file else _default_log_file(self.model, self.port)
        self.startup_timeout = float(startup_timeout)
        self.stop_timeout = float(stop_timeout)
        self.poll_interval = poll_interval
        self.extra_env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._stopped = False
        self._started_at = 0.0
        self.ready_after: float | None = None  # seconds from start() to ready

    # ------------------------------------------------------------------ description
    @property
    def model_id(self) -> str:
        """The name the server lists in ``/v1/models`` and that clients send as ``model``."""
        return self.served_model_name or self.model

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()  # reachable from other nodes too
        return f"http://{_url_host(host)}:{self.port}/v1"

    @property
    def _poll_url(self) -> str:
        return f"http://{_url_host(_local_host(self.host))}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    def tensor_parallel_size(self) -> int | None:
        """len(gpus) when several GPUs are given and --extra-args does not set it."""
        if self.gpus is None or "," not in self.gpus:
            return None
        if any(a.split("=", 1)[0] in ("--tensor-parallel-size", "-tp") for a in self.extra_args):
            return None
        return len(self.gpus.split(","))

    def command(self) -> list[str]:
        """The full argv of the server process."""
        cmd = [*self.vllm_command, self.model, "--host", self.host, "--port", str(self.port)]
        cmd += ["--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"]
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.served_model_name:
            cmd += ["--served-model-name", self.served_model_name]
        tp = self.tensor_parallel_size()
        if tp:
            cmd += ["--tensor-parallel-size", str(tp)]
        cmd += self.tool_flags.args()
        cmd += self.extra_args
        return cmd

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, CUDA_VISIBLE_DEVICES from ``gpus``, unbuffered output."""
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def shell_command(self) -> str:
        """The command as one copy-pasteable shell line (with CUDA_VISIBLE_DEVICES if set)."""
        prefix = f"CUDA_VISIBLE_DEVICES={self.gpus} " if self.gpus is not None else ""
        return prefix + shlex.join(self.command())

    def emotau_flags(self, role: str = "agent") -> str:
        """The emotau flags that point a role (agent or user) at this server."""
        url = self.base_url
        model = shlex.quote(self.model_id)
        if role == "user":
            return f"--user-base-url {url} --user-model {model}"
        return f"--agent-base-url {url} --model {model}"

    def __repr__(self) -> str:
        state = "not started" if self._proc is None else f"pid {self._proc.pid}"
        return f"VLLMServer({self.model!r}, port={self.port}, {state})"

    # ------------------------------------------------------------------ lifecycle
    def _check_executable(self) -> None:
        exe = self.vllm_command[0]
        found = (
            shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
        )
        if not found:
            raise UserError(
                f"vLLM executable {exe!r} not found; {VLLM_EXTRA_HINT} "
                "(on a GPU node), or pass --vllm-command"
            )

    def _check_template(self) -> None:
        ct = self.tool_flags.chat_template
        if ct and _template_is_path(ct) and not Path(ct).is_file():
            fam = f"{self.tool_flags.family} needs" if self.tool_flags.family else "needs"
            raise UserError(
                f"chat template {ct!r} not found (relative to {os.getcwd()}): {self.model} {fam} "
                f"vLLM's {Path(ct).name} (in the vLLM source tree, examples/); copy it to the node "
                "and pass --chat-template PATH, or --chat-template none for the model's own"
            )

    def start(self) -> VLLMServer:
        """Start the server process (it is not ready yet: call :meth:`wait_ready`)."""
        if self._proc is not None:
            raise RuntimeError(f"{self!r} was already started")
        self._check_template()
        self._check_executable()
        if port_in_use(self.host, self.port):
            raise UserError(
                f"port {self.port} on {self.host} is already in use (another server? see "
                f"`ss -ltnp | grep :{self.port}`); pick another with --port"
            )
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # noqa: SIM115 (closed in stop())
        except OSError as exc:
            raise UserError(f"cannot write the log file {self.log_file}: {exc}") from None
        self._log_offset = self._log.tell()
        header = f"# emotau serve {time.strftime('%Y-%m-%d %H:%M:%S')}: {self.shell_command()}\n"
        self._log.write(header.encode())
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,  # own process group: stop() signals vLLM's children too
            )
        except OSError as exc:  # not found, not executable, bad interpreter line
            self._close_log()
            raise UserError(
                f"cannot run {self.vllm_command[0]!r} ({exc.strerror or exc}); {VLLM_EXTRA_HINT}"
            ) from None
        self._started_at = time.monotonic()
        self._stopped = False
        atexit.register(self.stop)
        return self

    def wait_ready(self, timeout: float | None = None) -> VLLMServer:
        """Poll ``/health`` until 200, then ``/v1/models`` until the model is listed.

        Raises :class:`ServeError` (with the log tail) if the process exits first or the timeout
        passes; in the timeout case the process is stopped.
        """
        if self._proc is None:
            raise RuntimeError("wait_ready() before start()")
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = "no answer yet (vLLM listens only once the model is loaded)"
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise self._error(f"vLLM exited with status {rc} during start-up")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            per_request = max(0.2, min(5.0, remaining))
            status, body = self._get("/health", per_request)
            if status == 200:
                status, body = self._get("/v1/models", per_request)
                if status == 200:
                    ids = _model_ids(body)
                    if self.model_id in ids:
                        self.ready_after = time.monotonic() - self._started_at
                        return self
                    last = f"/v1/models lists {ids} but not {self.model_id!r}"
                elif status == 401:
                    last = "/v1/models answered 401 (an API key is set; see --extra-args)"
                else:
                    last = f"/v1/models answered {status or body}"
            elif status:
                last = f"/health answered {status}"
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        self.stop()
        raise self._error(
            f"vLLM was not ready within {timeout:g} s ({last}); stopped it "
            "(raise --startup-timeout for a large model)"
        )

    def _headers(self) -> dict[str, str]:
        key = _flag_value(self.extra_args, "--api-key") or self.environment().get("VLLM_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _get(self, path: str, timeout: float) -> tuple[int, str]:
        """(status, body); status 0 and the reason when nothing answered."""
        import urllib.error
        import urllib.request

        # no proxies: a cluster's http_proxy must not swallow requests to a local server
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(self._poll_url + path, headers=self._headers())
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, ...
            return 0, str(getattr(exc, "reason", exc))

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines this server wrote to its log."""
        try:
            with open(self.log_file, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(self._log_offset, size - 64 * 1024)
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _error(self, message: str) -> ServeError:
        return ServeError(
            f"{message}; log: {self.log_file}", log_file=self.log_file, log_tail=self.log_tail()
        )

    def _group_alive(self, pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal_group(self, pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _wait_group(self, pgid: int, deadline: float) -> bool:
        """Wait until the leader is reaped and the group is empty; False on timeout."""
        assert self._proc is not None
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            if self._proc.returncode is not None and not self._group_alive(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to the process group, up to ``stop_timeout`` s, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None or self._stopped:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self._signal_group(pgid, signal.SIGTERM)
        if not self._wait_group(pgid, time.monotonic() + self.stop_timeout):
            self._signal_group(pgid, signal.SIGKILL)
            self._wait_group(pgid, time.monotonic() + 10)
        # only now: a stop() cut short (a second Ctrl-C) is done again by the next call
        self._stopped = True
        self._close_log()
        atexit.unregister(self.stop)

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _model_ids(body: str) -> list[str]:
    try:
        data = json.loads(body)
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return []


# -------------------------------------------------------------------------------- command
class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGHUP while ``emotau serve`` blocks."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def _echo(msg: str) -> None:
    click.echo(msg)
    sys.stdout.flush()


@click.command(
    "serve",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("model")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="0.0.0.0 for other nodes.")
@click.option("--gpus", help="CUDA_VISIBLE_DEVICES for the server, e.g. 0 or 0,1 [inherit].")
@click.option(
    "--gpu-memory-utilization",
    type=float,
    default=DEFAULT_GPU_MEMORY_UTILIZATION,
    show_default=True,
    help="Fraction of each GPU's memory vLLM may take.",
)
@click.option("--max-model-len", type=int, help="Context length [the model's].")
@click.option("--served-model-name", help="Name clients use as model [MODEL].")
@click.option("--tool-call-parser", help="Override the family's parser ('none': no tool flags).")
@click.option("--reasoning-parser", help="Override the family's reasoning parser ('none').")
@click.option("--chat-template", help="Jinja file for vLLM ('none': the model's own).")
@click.option("--no-tools", is_flag=True, help="No tool flags (e.g. a user-simulator server).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Server log [a temp file].")
@click.option("--extra-args", help='More vLLM flags, e.g. "--enforce-eager --max-num-seqs 64".')
@click.option(
    "--vllm-command",
    default=" ".join(DEFAULT_VLLM_COMMAND),
    show_default=True,
    help="How to run vLLM.",
)
@click.option(
    "--startup-timeout",
    type=float,
    default=DEFAULT_STARTUP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for /health and /v1/models.",
)
@click.option("--dry-run", is_flag=True, help="Print the command and exit.")
def serve_command(**opts: Any) -> None:
    """Start vLLM's OpenAI-compatible server for MODEL with the tool-calling flags it needs.

    Waits until the server is ready, prints the flags that point emotau at it, then runs until
    Ctrl-C or SIGTERM and stops the server cleanly. See docs/serve.md.
    """
    if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", opts["host"] or ""):
        raise ServeError(f"--host {opts['host']!r} is not a host name or IP address")
    server = VLLMServer(
        opts["model"],
        port=opts["port"],
        host=opts["host"],
        gpus=opts["gpus"],
        gpu_memory_utilization=opts["gpu_memory_utilization"],
        max_model_len=opts["max_model_len"],
        served_model_name=opts["served_model_name"],
        tool_call_parser=opts["tool_call_parser"],
        reasoning_parser=opts["reasoning_parser"],
        chat_template=opts["chat_template"],
        no_tools=opts["no_tools"],
        log_file=opts["log_file"],
        vllm_command=opts["vllm_command"],
        startup_timeout=opts["startup_timeout"],
        extra_args=opts["extra_args"],
    )
    flags = server.tool_flags
    if opts["dry_run"]:
        _echo(f"# {flags.describe()}")
        if flags.note:
            _echo(f"# note: {flags.note}")
        _echo(server.shell_command())
        return
    _echo(f"emotau serve: {server.model} ({flags.describe()})")
    if flags.note:
        _echo(f"note: {flags.note}")
    _echo(f"$ {server.shell_command()}")
    role_order = ("user", "agent") if opts["no_tools"] else ("agent", "user")
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:  # respect nohup
                old[sig] = signal.signal(sig, _raise_stop)
    try:
        server.start()
        _echo(f"log: {server.log_file}")
        _echo(
            f"waiting for {server._poll_url}/health and /v1/models "
            f"(up to {server.startup_timeout:g} s; Ctrl-C to cancel)..."
        )
        try:
            server.wait_ready()
        except ServeError as exc:
            if exc.log_tail:
                click.echo(f"--- last lines of {exc.log_file} ---\n{exc.log_tail}\n---", err=True)
            raise
        _echo(f"ready after {server.ready_after:.0f} s: {server.base_url}")
        _echo(f"use with emotau: {server.emotau_flags(role_order[0])}")
        _echo(f"   (as the {role_order[1]}: {server.emotau_flags(role_order[1])})")
        _echo("serving; Ctrl-C or SIGTERM stops the server")
        assert server.process is not None
        while True:
            try:
                rc = server.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
            tail = server.log_tail()
            if tail:
                click.echo(f"--- last lines of {server.log_file} ---\n{tail}\n---", err=True)
            raise ServeError(
                f"vLLM exited with status {rc} while serving; log: {server.log_file}",
                log_file=server.log_file,
                log_tail=tail,
            )
    except (KeyboardInterrupt, _Stop) as exc:
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        _echo(f"emotau serve: {why}: stopping the server...")
        server.stop()
        _echo("emotau serve: stopped")
    finally:
        server.stop()
        for s, h in old.items():
            signal.signal(s, h)
