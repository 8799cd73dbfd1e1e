"""A stand-in for ``vllm serve`` (standard library only), run as ``python fake_vllm.py serve ...``.

Behaves like vLLM's OpenAI-compatible server as far as ``emotau serve`` can tell: nothing listens
during the model "load" (connection refused), then ``/health`` may answer 503 for a while, then
``/health`` answers 200 and ``/v1/models`` lists the model. SIGTERM ends it cleanly.

Knobs (environment variables):
- ``FAKE_VLLM_RECORD``: write {"argv", "env", "pid", "child_pid"} as JSON to this file.
- ``FAKE_VLLM_STARTUP_DELAY``: seconds before listening (default 0.5).
- ``FAKE_VLLM_UNHEALTHY_FOR``: seconds after listening during which /health answers 503.
- ``FAKE_VLLM_EXIT_CODE``: print an error and exit with this code after the delay instead.
- ``FAKE_VLLM_IGNORE_SIGTERM``: "1" to ignore SIGTERM (tests the SIGKILL escalation).
- ``FAKE_VLLM_CHILD``: "1" to start a child process in the same group (like vLLM's engine core).
- ``FAKE_VLLM_LIST_MODEL``: list this name in /v1/models instead of the served one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    argv = sys.argv[1:]
    args_for_parse = argv[1:] if argv[:1] == ["serve"] else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name")
    args, _unknown = parser.parse_known_args(args_for_parse)
    served = os.environ.get("FAKE_VLLM_LIST_MODEL") or args.served_model_name or args.model

    stop = threading.Event()
    if os.environ.get("FAKE_VLLM_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

    child = None
    if os.environ.get("FAKE_VLLM_CHILD") == "1":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    record = os.environ.get("FAKE_VLLM_RECORD")
    if record:
        with open(record + ".tmp", "w") as f:
            json.dump(
                {
                    "argv": argv,
                    "env": {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")},
                    "pid": os.getpid(),
                    "child_pid": child.pid if child else None,
                },
                f,
            )
        os.replace(record + ".tmp", record)

    print(f"INFO fake vllm: loading {args.model}", flush=True)
    if stop.wait(float(os.environ.get("FAKE_VLLM_STARTUP_DELAY", "0.5"))):
        print("INFO fake vllm: SIGTERM during load, exiting", flush=True)
        return 0
    exit_code = os.environ.get("FAKE_VLLM_EXIT_CODE")
    if exit_code:
        print("ERROR fake vllm: torch.OutOfMemoryError: CUDA out of memory", file=sys.stderr)
        return int(exit_code)

    healthy_at = time.monotonic() + float(os.environ.get("FAKE_VLLM_UNHEALTHY_FOR", "0"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200 if time.monotonic() >= healthy_at else 503, b"")
            elif self.path == "/v1/models":
                body = {"object": "list", "data": [{"id": served, "object": "model"}]}
                self._send(200, json.dumps(body).encode())
            else:
                self._send(404, b'{"error": "not found"}')

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *a: object) -> None:
            print(f"INFO fake vllm: {fmt % a}", flush=True)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"INFO: Uvicorn running on http://{args.host}:{args.port}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    print("INFO fake vllm: shut down", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
