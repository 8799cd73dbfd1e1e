"""A stand-in for ``vllm serve`` that really answers: emotau's mock server on vLLM's flags.

``python fake_vllm_mock.py serve MODEL --host H --port P [vLLM flags...]`` runs
``emotau mock-server --host H --port P`` (the scripted models over HTTP), so a Slurm job that
starts "vLLM" for its shard gets a server it can run episodes against. ``FAKE_VLLM_LATENCY``
sets the mock's seconds per request (default 0).
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, _vllm_flags = parser.parse_known_args(argv)
    latency = os.environ.get("FAKE_VLLM_LATENCY", "0")
    cmd = [sys.executable, "-m", "emotau", "mock-server", "--host", args.host]
    cmd += ["--port", str(args.port), "--latency", latency]
    os.execv(sys.executable, cmd)


if __name__ == "__main__":
    main()
