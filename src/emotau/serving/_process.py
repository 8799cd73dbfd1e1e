"""One ``vllm serve`` process: its command line, start-up, readiness checks and stop.

Python use (e.g. an agent and a user server side by side in a Slurm job)::

    from emotau.serving import VLLMServer

    with VLLMServer("Qwen/Qwen3-8B", port=8000, gpus="0") as agent, VLLMServer(
        "Qwen/Qwen2.5-7B-Instruct", port=8001, gpus="1", no_tools=True
    ) as user:
        ...  # agent.base_url, user.base_url

Standard library only (``emotau --help`` loads it).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from emotau.core import UserError
from emotau.serving._families import BUILTIN_PARSERS, ParserNames, resolve_tool_flags

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: GiB of RAM for the KV cache of a vLLM on a CPU (VLLM_CPU_KVCACHE_SPACE), unless set already
DEFAULT_CPU_KV_CACHE_GIB = 4.0
DEVICES = ("auto", "gpu", "cpu")
#: device files of a GPU: NVIDIA, NVIDIA under WSL, AMD (ROCm)
_GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")
DEFAULT_STARTUP_TIMEOUT = 900.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_VLLM_COMMAND = ("vllm", "serve")
LOG_TAIL_LINES = 20
#: a Python exception line ("ValueError: ...", "torch.OutOfMemoryError: ...")
_EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception)\b: \S")
VLLM_EXTRA_HINT = "vLLM is an optional GPU extra: pip install 'emotau[vllm]'"

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


def detect_device() -> str:
    """``gpu`` when this machine shows a GPU device file, else ``cpu``."""
    return "gpu" if any(os.path.exists(f) for f in _GPU_DEVICE_FILES) else "cpu"


def _template_is_path(value: str) -> bool:
    # vLLM takes a file path, an inline Jinja template, or a keyword such as "tool_use"
    if "{{" in value or "{%" in value:
        return False
    return "/" in value or os.sep in value or value.endswith((".jinja", ".j2"))


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
        gpu_memory_utilization: float | None = None,
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
        device: str = "auto",
        cpu_kv_cache_gib: float | None = None,
        parsers: ParserNames | None = None,
    ) -> None:
        if not model or not model.strip():
            raise UserError("no model given")
        if not 1 <= int(port) <= 65535:
            raise UserError(f"--port must be 1..65535, got {port}")
        if device not in DEVICES:
            raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
        if device == "auto":  # GPUs named: a GPU, whatever this machine (a login node) shows
            device = "gpu" if gpus is not None else detect_device()
        self.device = device
        if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
            raise UserError(
                f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        if gpu_memory_utilization is not None and self.device == "cpu":
            raise UserError(
                "--gpu-memory-utilization is for GPUs: on a CPU vLLM would take that share of "
                "RAM; size the KV cache with --cpu-kv-cache GIB instead"
            )
        if cpu_kv_cache_gib is not None and (cpu_kv_cache_gib <= 0 or self.device != "cpu"):
            raise UserError("--cpu-kv-cache must be positive, and is only for a CPU (--device cpu)")
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
        self.gpu_memory_utilization = (
            None
            if self.device == "cpu"
            else (gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION)
        )
        self.cpu_kv_cache_gib = cpu_kv_cache_gib
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
            self.model, tool_call_parser, reasoning_parser, chat_template, no_tools,
            self.extra_args, parsers or BUILTIN_PARSERS,
        )  # fmt: skip
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
    def poll_url(self) -> str:
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
        if self.gpu_memory_utilization is not None:  # on a CPU vLLM applies it to RAM
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
        """The server's environment: ours, CUDA_VISIBLE_DEVICES from ``gpus``, unbuffered output;
        on a CPU, the KV cache size (VLLM_CPU_KVCACHE_SPACE, GiB)."""
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus
        if self.device == "cpu":
            if self.cpu_kv_cache_gib is not None:
                env["VLLM_CPU_KVCACHE_SPACE"] = f"{self.cpu_kv_cache_gib:g}"
            else:
                env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{DEFAULT_CPU_KV_CACHE_GIB:g}")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def shell_command(self) -> str:
        """The command as one copy-pasteable shell line (with CUDA_VISIBLE_DEVICES if set)."""
        env = self.environment()
        prefix = f"CUDA_VISIBLE_DEVICES={self.gpus} " if self.gpus is not None else ""
        if self.device == "cpu":
            prefix += f"VLLM_CPU_KVCACHE_SPACE={env['VLLM_CPU_KVCACHE_SPACE']} "
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
        import http.client  # here, not at the top: `emotau --help` loads this module
        import urllib.error
        import urllib.request

        # no proxies: a cluster's http_proxy must not swallow requests to a local server
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(self.poll_url + path, headers=self._headers())
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, ...
            return 0, str(getattr(exc, "reason", exc))

    def _log_lines(self) -> list[str]:
        """What this server wrote to its log (its last 4 MB)."""
        try:
            with open(self.log_file, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(self._log_offset, size - 4 * 1024 * 1024))
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines this server wrote to its log, after the first exception
        line above them (the root cause: vLLM's last lines are usually the wrappers around it,
        e.g. "Engine core initialization failed. See root cause above")."""
        text = self._log_lines()
        tail = text[-lines:]
        above = len(text) - len(tail)
        cause = next(
            (i for i, line in enumerate(text[:above]) if _EXCEPTION_LINE.match(line)), None
        )
        if cause is None:
            return "\n".join(tail)
        head = f"(root cause, line {cause + 1} of {len(text)}:) {text[cause].strip()}"
        return "\n".join([head, "...", *tail])

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
