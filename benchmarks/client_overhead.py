"""Client overhead per call against the mock server at zero latency, and request rate at 200 ms.

Starts `emotau mock-server` in its own process (so its CPU is not counted here), then:
1. overhead: N sequential calls through emotau's OpenAI client; prints wall and client CPU per
   call (CPU of this process = the client's overhead, since the server runs elsewhere), for a
   small request and for a hotel-sized one (policy + 16 tool schemas); the same with litellm
   when it is installed.
2. throughput: 256 concurrent callers for a fixed time against a 200 ms server; prints the
   achieved request rate against the ideal 256 / 0.2 s, and the most requests in flight as
   counted by the mock server.

    python benchmarks/client_overhead.py [--calls 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any


def start_mock(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emotau", "mock-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "emotau mock server listening on http://127.0.0.1:P/v1"
    return proc, line.strip().rsplit(" ", 1)[-1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats") as r:
        return json.loads(r.read())


def requests_for(kind: str) -> Any:
    from emotau.domains import load_domain
    from emotau.models.base import ChatRequest

    if kind == "small":
        return ChatRequest([{"role": "user", "content": "hi"}])
    dom = load_domain("hotel")
    msgs = [
        {"role": "system", "content": dom.policy()},
        {"role": "user", "content": "I need to cancel my booking, my e-mail is a@b.c."},
    ]
    return ChatRequest(msgs, tools=dom.tools(), tool_choice="auto")


async def overhead(base_url: str, calls: int, kind: str) -> tuple[float, float]:
    from emotau.models.openai_client import OpenAIClient
    from emotau.spec import ModelConfig

    model = "scripted-user" if kind == "small" else "scripted-agent-notools"
    client = OpenAIClient("agent", ModelConfig(model=model, base_url=base_url))
    req = requests_for(kind)
    for _ in range(50):  # warm up connections and imports
        await client.complete(req)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await client.complete(req)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    await client.aclose()
    return 1000 * wall / calls, 1000 * cpu / calls


async def litellm_overhead(base_url: str, calls: int, kind: str) -> tuple[float, float] | None:
    try:
        import litellm
    except ImportError:
        return None
    req = requests_for(kind)
    model = "scripted-user" if kind == "small" else "scripted-agent-notools"
    kw: dict[str, Any] = {
        "model": f"openai/{model}",
        "api_base": base_url,
        "api_key": "x",
        "messages": req.messages,
    }
    if req.tools:
        kw["tools"] = req.tools
    for _ in range(20):
        await litellm.acompletion(**kw)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await litellm.acompletion(**kw)
    return 1000 * (time.perf_counter() - w0) / calls, 1000 * (time.process_time() - c0) / calls


async def throughput(base_url: str, seconds: float, callers: int) -> tuple[int, float, float]:
    from emotau.models.openai_client import ClientSettings, OpenAIClient
    from emotau.spec import ModelConfig

    client = OpenAIClient(
        "user",
        ModelConfig(model="scripted-user", base_url=base_url),
        ClientSettings(max_connections=callers),
    )
    req = requests_for("small")
    done = 0
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await client.complete(req)
            done += 1

    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.aclose()
    return done, wall, cpu


def episodes_in_flight(
    url: str, episodes: int, concurrency: int, workers: int
) -> tuple[float, int, float, float]:
    """An `emotau run` with `concurrency` hotel episodes in flight against the mock server."""
    import tempfile

    cfg_text = (
        f'[agent]\nmodel = "scripted-agent"\nbase_url = "{url}"\n'
        f'[user]\nmodel = "scripted-user"\nbase_url = "{url}"\n'
    )
    trials = max(1, round(episodes / (45 * 6)))
    with tempfile.TemporaryDirectory() as out:
        cfg = f"{out}/c.toml"
        with open(cfg, "w") as fh:
            fh.write(cfg_text)
        before = stats(url)["requests"]
        t0 = time.perf_counter()
        child = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%U %S",
                sys.executable,
                "-m",
                "emotau",
                "run",
                "--config",
                cfg,
                "--out",
                out,
                "--quiet",
                "--num-trials",
                str(trials),
                "--max-concurrency",
                str(concurrency),
                "--workers",
                str(workers),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        user, system = map(float, child.stderr.strip().splitlines()[-1].split())  # children too
        return wall, stats(url)["requests"] - before, trials * 45 * 6 / wall, user + system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--callers", type=int, default=256)
    ap.add_argument("--episodes", type=int, default=2700)
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    print(f"event loop: {args.loop}")

    proc, url = start_mock()
    try:
        for kind in ("small", "hotel"):
            wall, cpu = asyncio.run(overhead(url, args.calls, kind))
            print(
                f"emotau client, {kind} request: {wall:.2f} ms/call round trip, "
                f"{cpu:.2f} ms/call client CPU ({args.calls} sequential calls, 0 ms server)"
            )
            lite = asyncio.run(litellm_overhead(url, args.calls // 4, kind))
            if lite is None:
                print("litellm: not installed (pip install litellm to compare)")
            else:
                print(
                    f"litellm, {kind} request: {lite[0]:.2f} ms/call round trip, "
                    f"{lite[1]:.2f} ms/call client CPU"
                )
    finally:
        proc.terminate()
        proc.wait()

    proc, url = start_mock("--latency", "0.2")
    try:
        server0 = cpu_seconds(proc.pid)
        done, wall, cpu = asyncio.run(throughput(url, args.seconds, args.callers))
        server_cpu = cpu_seconds(proc.pid) - server0
        st = stats(url)
    finally:
        proc.terminate()
        proc.wait()
    ideal = args.callers / 0.2
    for workers in (1, 2):
        proc, url = start_mock("--latency", "0.2")
        try:
            server0 = cpu_seconds(proc.pid)
            ewall, reqs, eps, ecpu = episodes_in_flight(url, args.episodes, args.callers, workers)
            eserver = cpu_seconds(proc.pid) - server0
            est = stats(url)
        finally:
            proc.terminate()
            proc.wait()
        print(
            f"{args.callers} hotel episodes in flight at 200 ms, {workers} worker(s): "
            f"{reqs / ewall:.0f} req/s = {100 * reqs / ewall / ideal:.1f}% of the ideal "
            f"{ideal:.0f} req/s ({eps:.1f} episodes/s, {reqs} requests in {ewall:.1f} s incl. "
            f"start-up); emotau CPU {100 * ecpu / ewall:.0f}% of one core "
            f"({1000 * ecpu / reqs:.2f} ms/request), mock server CPU "
            f"{100 * eserver / ewall:.0f}%, max {est['max_in_flight']} in flight"
        )
    rate = done / wall
    print(
        f"{args.callers} callers at 200 ms: {rate:.0f} req/s = {100 * rate / ideal:.1f}% of the "
        f"ideal {ideal:.0f} req/s; client CPU {100 * cpu / wall:.0f}% of one core, mock server "
        f"CPU {100 * server_cpu / wall:.0f}%; mock server counted max {st['max_in_flight']} "
        f"in flight over {st['requests']} requests"
    )


if __name__ == "__main__":
    main()
