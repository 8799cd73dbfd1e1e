"""Lifecycle hooks used by the tests (loaded as ``hookdemo:Recorder`` or via an entry point)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from emotau.core._chat import ChatRequest, ChatResponse
from emotau.core._hooks import EpisodeContext, Hook, ModelCallContext, RunContext


class Recorder(Hook):
    """Keeps every event it sees (in process: the test reads ``Recorder.events``)."""

    events: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    async def on_run_start(self, run: RunContext) -> None:
        self.events.append(("run_start", run))

    async def on_episode_start(self, ctx: EpisodeContext) -> None:
        self.events.append(("episode_start", ctx))

    async def on_model_call(
        self, call: ModelCallContext, request: ChatRequest, response: ChatResponse
    ) -> None:
        self.events.append(("model_call", call, request, response))

    async def on_episode_end(self, ctx: EpisodeContext, record: Mapping[str, Any]) -> None:
        self.events.append(("episode_end", ctx, json.loads(json.dumps(record))))

    def on_run_end(self, run: RunContext) -> None:  # a plain def works too
        self.events.append(("run_end", run))


class Broken(Hook):
    """Fails on every agent call and at every episode's end."""

    async def on_model_call(
        self, call: ModelCallContext, request: ChatRequest, response: ChatResponse
    ) -> None:
        if call.role == "agent":
            raise RuntimeError("the probe fell over")

    async def on_episode_end(self, ctx: EpisodeContext, record: Mapping[str, Any]) -> None:
        raise KeyError("no such layer")


class FailsToStart(Hook):
    async def on_run_start(self, run: RunContext) -> None:
        raise OSError("cannot open the activation store")


class PerEpisodeFiles(Hook):
    """Writes RUN_DIR/hook-out/TASK-VARIANT-TRIAL.json once per episode (never twice)."""

    async def on_run_start(self, run: RunContext) -> None:
        out = run.run_dir / "hook-out"
        out.mkdir(exist_ok=True)
        (out / f"run-{run.shard.replace('/', '-of-')}.txt").write_text(str(os.getpid()))
        self.calls: dict[tuple[int, str, int], int] = {}

    async def on_model_call(
        self, call: ModelCallContext, request: ChatRequest, response: ChatResponse
    ) -> None:
        key = (call.task_id, call.variant, call.trial)
        self.calls[key] = self.calls.get(key, 0) + 1

    async def on_episode_end(self, ctx: EpisodeContext, record: Mapping[str, Any]) -> None:
        assert ctx.run is not None
        name = f"{ctx.task_id}-{ctx.variant}-{ctx.trial}.json"
        info = {
            "pid": os.getpid(),
            "shard": ctx.run.shard,
            "record_shard": record["shard"],
            "calls": self.calls.pop((ctx.task_id, ctx.variant, ctx.trial), 0),
        }
        with open(ctx.run.run_dir / "hook-out" / name, "x") as f:  # "x": a second time fails
            json.dump(info, f)
