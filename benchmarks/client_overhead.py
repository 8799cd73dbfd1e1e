"""emotau's OpenAI-compatible client against the mock server: overhead and request rate.

Each mock server runs in its own process, so its CPU is not counted as the client's.

1. overhead: sequential calls at zero server latency; client CPU per call (this process's CPU =
   the client's overhead) for a small request and a hotel-sized one (policy + 16 tool schemas);
   the same with litellm when it is installed.
2. callers: 256 concurrent callers (split over P processes) against a 200 ms server for a fixed
   time; achieved request rate against the ideal 256 / 0.2 s = 1280 req/s; CPU of the clients
   and of the mock server; most requests in flight, as counted by the mock server.
3. episodes: `emotau run` with 256 hotel episodes in flight (over W workers) against a 200 ms
   server; rate over the whole run and in steady state (the server's count over a window after
   start-up, before the tail); CPU.

    python benchmarks/client_overhead.py [--calls 2000] [--seconds 10] [--episodes 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from emotau.scripted import spawn

IDEAL = 256 / 0.2


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats") as r:
        return json.loads(r.read())


def make_request(kind: str) -> Any:
    from emotau.core import ChatRequest
    from emotau.domains import load_domain

    if kind == "small":
        return ChatRequest([{"role": "user", "content": "hi"}])
    dom = load_domain("hotel")
    msgs = [
        {"role": "system", "content": dom.policy()},
        {"role": "user", "content": "I need to cancel my booking, my e-mail is a@b.c."},
    ]
    return ChatRequest(msgs, tools=dom.tools(), tool_choice="auto")


def _model(kind: str) -> str:
    return "scripted-user" if kind == "small" else "scripted-agent-notools"


async def overhead(url: str, calls: int, kind: str) -> tuple[float, float]:
    from emotau.models import ModelConfig, OpenAIClient

    client = OpenAIClient("agent", ModelConfig(model=_model(kind), base_url=url))
    req = make_request(kind)
    for _ in range(50):  # warm up connections and imports
        await client.complete(req)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await client.complete(req)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    await client.aclose()
    return 1000 * wall / calls, 1000 * cpu / calls


async def litellm_overhead(url: str, calls: int, kind: str) -> tuple[float, float] | None:
    try:
        import litellm
    except ImportError:
        return None
    req = make_request(kind)
    kw: dict[str, Any] = {
        "model": f"openai/{_model(kind)}",
        "api_base": url,
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


async def _callers(url: str, seconds: float, callers: int) -> tuple[int, float]:
    from emotau.models import ClientSettings, ModelConfig, OpenAIClient

    client = OpenAIClient(
        "user",
        ModelConfig(model="scripted-user", base_url=url),
        ClientSettings(max_connections=callers),
    )
    req = make_request("small")
    done = 0
    stop_at = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await client.complete(req)
            done += 1

    c0 = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    await client.aclose()
    return done, time.process_time() - c0


def _caller_process(url: str, seconds: float, callers: int, out: Any) -> None:
    out.put(asyncio.run(_callers(url, seconds, callers)))


def callers_run(seconds: float, processes: int) -> str:
    with spawn("--latency", "0.2") as mock:
        url, pid = mock.url, mock.pid
        s0 = cpu_seconds(pid)
        q: Any = mp.get_context("fork").Queue()
        kids = [
            mp.get_context("fork").Process(
                target=_caller_process, args=(url, seconds, 256 // processes, q)
            )
            for _ in range(processes)
        ]
        t0 = time.perf_counter()
        for k in kids:
            k.start()
        time.sleep(min(2.0, seconds / 4))  # past connection set-up and the first waves
        a, ta = stats(url)["requests"], time.perf_counter()
        time.sleep(seconds / 2)
        b, tb = stats(url)["requests"], time.perf_counter()
        results = [q.get() for _ in kids]
        for k in kids:
            k.join()
        wall = time.perf_counter() - t0
        server = cpu_seconds(pid) - s0
        st = stats(url)
    done = sum(r[0] for r in results)
    cpu = sum(r[1] for r in results)
    rate = done / wall
    return (
        f"256 callers over {processes} process(es) at 200 ms: steady "
        f"{(b - a) / (tb - ta):.0f} req/s = {100 * (b - a) / (tb - ta) / IDEAL:.1f}% of ideal; "
        f"whole window {rate:.0f} req/s = {100 * rate / IDEAL:.1f}%; "
        f"clients' CPU {100 * cpu / wall:.0f}% of one core, "
        f"mock server CPU {100 * server / wall:.0f}%; max {st['max_in_flight']} in "
        f"flight over {st['requests']} requests"
    )


def episodes_run(episodes: int, workers: int, dist: str) -> str:
    trials = max(1, round(episodes / (45 * 6)))
    out = tempfile.mkdtemp()
    with spawn("--latency", "0.2", "--latency-dist", dist) as mock:
        url = mock.url
        with open(f"{out}/c.toml", "w") as fh:
            fh.write(
                f'[agent]\nmodel = "scripted-agent"\nbase_url = "{url}"\n'
                f'[user]\nmodel = "scripted-user"\nbase_url = "{url}"\n'
            )
        s0, r0 = cpu_seconds(mock.pid), stats(url)["requests"]
        t0 = time.perf_counter()
        child = subprocess.Popen(
            [
                "/usr/bin/time",
                "-f",
                "%U %S",
                sys.executable,
                "-m",
                "emotau",
                "run",
                "--config",
                f"{out}/c.toml",
                "--out",
                out,
                "--quiet",
                "--num-trials",
                str(trials),
                "--max-concurrency",
                "256",
                "--workers",
                str(workers),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(6)  # past start-up
        a, ta = stats(url)["requests"], time.perf_counter()
        time.sleep(10)  # well before the tail
        b, tb = stats(url)["requests"], time.perf_counter()
        _, err = child.communicate()
        assert child.returncode == 0, err
        wall = time.perf_counter() - t0
        server = cpu_seconds(mock.pid) - s0
        st = stats(url)
    user, system = map(float, err.strip().splitlines()[-1].split())  # includes the workers
    reqs = st["requests"] - r0
    steady = (b - a) / (tb - ta)
    return (
        f"256 hotel episodes in flight, {workers} worker(s), {dist} 200 ms: steady "
        f"{steady:.0f} req/s = {100 * steady / IDEAL:.1f}% of ideal; whole run "
        f"{reqs / wall:.0f} req/s ({trials * 270 / wall:.0f} episodes/s, {wall:.1f} s incl. "
        f"start-up and tail); emotau CPU {100 * (user + system) / wall:.0f}% of one core "
        f"({1000 * (user + system) / reqs:.2f} ms/request), mock server CPU "
        f"{100 * server / wall:.0f}%; max {st['max_in_flight']} in flight"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--episodes", type=int, default=4000)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores")

    with spawn() as mock:
        url = mock.url
        for kind in ("small", "hotel"):
            wall, cpu = asyncio.run(overhead(url, args.calls, kind))
            print(
                f"emotau client, {kind} request: {cpu:.2f} ms/call client CPU, {wall:.2f} ms "
                f"round trip ({args.calls} sequential calls, 0 ms server)"
            )
            lite = asyncio.run(litellm_overhead(url, args.calls // 4, kind))
            print(
                "litellm: not installed (pip install litellm to compare)"
                if lite is None
                else f"litellm, {kind} request: {lite[1]:.2f} ms/call client CPU, "
                f"{lite[0]:.2f} ms round trip"
            )
    for processes in (1, 2):
        print(callers_run(args.seconds, processes))
    for workers, dist in ((1, "fixed"), (2, "fixed"), (2, "exponential")):
        print(episodes_run(args.episodes, workers, dist))


if __name__ == "__main__":
    main()
