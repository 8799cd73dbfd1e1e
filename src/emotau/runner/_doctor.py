"""Checking endpoints before paying for a run: ``emotau doctor`` and the run's preflight.

For every configured role that is served over HTTP, ``doctor`` checks:
- the endpoint answers, and the model is listed;
- a plain chat works;
- whether reasoning leaks into the visible content (``<think>`` in ``content``);
- for the agent, whether the model calls a tool on its own under ``tool_choice=auto``
  (several probes), whether ``required`` works, and whether calls arrive as text;
- how long a call takes.
It ends with a verdict per role and the fix in words. ``preflight`` is the quick version
that ``emotau run`` does before the first episode: reachable, model listed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emotau.core import UserError
from emotau.models import describe_error, provider_for

if TYPE_CHECKING:
    from emotau.models import ModelConfig
    from emotau.runner._experiment import Experiment

PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up the current status of a customer's order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order id."}},
            "required": ["order_id"],
        },
    },
}
PROBE_MESSAGES = [
    {
        "role": "system",
        "content": "You are a customer-support agent. Look facts up with your tools; never guess.",
    },
    {"role": "user", "content": "Hi, where is my order A1B2C3? What is its status?"},
]
CHAT_MESSAGES = [{"role": "user", "content": "Reply with the single word: ready"}]


@dataclass
class RoleReport:
    role: str
    model: str
    base_url: str
    checks: list[tuple[str, str, str]] = field(default_factory=list)  # (check, status, detail)
    verdict: str = "ok"  # ok | warn | fail
    fixes: list[str] = field(default_factory=list)

    def add(self, check: str, status: str, detail: str) -> None:
        self.checks.append((check, status, detail))
        rank = {"ok": 0, "warn": 1, "fail": 2}
        if rank[status] > rank[self.verdict]:
            self.verdict = status

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "model": self.model,
            "base_url": self.base_url,
            "verdict": self.verdict,
            "checks": [{"check": c, "status": s, "detail": d} for c, s, d in self.checks],
            "fixes": self.fixes,
        }


def _http_roles(exp: Experiment) -> list[tuple[str, ModelConfig]]:
    """The roles served by the ``openai`` provider: the only ones these checks know how to
    probe (a plugin provider's client is its own business)."""
    return [(r, c) for r, c in exp.roles() if provider_for(c) == "openai"]


def _extra(cfg: ModelConfig) -> dict[str, Any]:
    return {"extra_body": cfg.extra_body} if cfg.extra_body else {}


async def preflight(exp: Experiment) -> None:
    """Refuse to start (UserError) when an endpoint cannot be used as the run will use it."""
    roles = _http_roles(exp)
    if not roles:
        return  # all scripted: nothing to reach (and no need to import openai)
    import openai

    for role, cfg in roles:
        client: Any = exp.make_client(role, cfg)
        where = f"{role} endpoint {cfg.base_url or 'https://api.openai.com/v1'}"
        try:
            try:
                served = await client.list_models()
            except openai.NotFoundError:
                served = None  # no /models on this server: a one-token chat must do
            if served is not None and cfg.model not in served:
                listed = ", ".join(served[:8]) + (" ..." if len(served) > 8 else "")
                raise UserError(
                    f"{role} model {cfg.model!r} is not served at {where}; it serves: "
                    f"{listed or 'nothing'}"
                )
            if served is None or cfg.extra_body:  # extra_body too: a rejected field fails now
                await client.call_api(
                    lambda api, c=cfg: api.chat.completions.create(
                        model=c.model, messages=CHAT_MESSAGES, max_tokens=1, **_extra(c)
                    ),
                )
            if role == "agent" and exp.spec.agent_strategy == "tool-calling":
                await _preflight_tools(client, cfg, exp.spec.tool_choice, where)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(
                f"{where} cannot be used: {client.redact(describe_error(exc))} "
                "(--no-preflight to skip)"
            ) from None
        finally:
            await client.aclose()


async def _preflight_tools(client: Any, cfg: ModelConfig, tool_choice: str, where: str) -> None:
    """One request with tools, as the run will send them: a server that rejects it fails now."""
    import openai

    try:
        await client.call_api(
            lambda api: api.chat.completions.create(
                model=cfg.model,
                messages=PROBE_MESSAGES,
                tools=[PROBE_TOOL],
                tool_choice=tool_choice,
                max_tokens=16,
                **_extra(cfg),
            ),
        )
    except openai.BadRequestError as exc:
        raise UserError(
            f"{where} rejects tool calls with tool_choice={tool_choice!r}: "
            f"{client.redact(describe_error(exc))}; start vLLM with --enable-auto-tool-choice "
            "and the family's --tool-call-parser (emotau serve does), or try --tool-choice "
            "required, or --agent-strategy react"
        ) from None


async def diagnose(exp: Experiment, probes: int = 5) -> list[RoleReport]:
    """The full check of every HTTP role (see the module docstring)."""
    reports = []
    for role, cfg in _http_roles(exp):
        reports.append(await _diagnose_role(exp, role, cfg, probes))
    return reports


async def _diagnose_role(exp: Experiment, role: str, cfg: ModelConfig, probes: int) -> RoleReport:
    import openai

    from emotau.models import recover_tool_calls, split_reasoning

    rep = RoleReport(role, cfg.model, cfg.base_url or "https://api.openai.com/v1")
    client: Any = exp.make_client(role, cfg)
    latencies: list[float] = []

    def describe(exc: BaseException) -> str:
        return client.redact(describe_error(exc))

    async def call(**kw: Any) -> Any:
        t0 = time.perf_counter()
        out = await client.call_api(
            lambda api: api.chat.completions.create(model=cfg.model, **_extra(cfg), **kw)
        )
        latencies.append(time.perf_counter() - t0)
        return out

    try:
        try:
            served = await client.list_models()
            if cfg.model in served:
                rep.add("model listed", "ok", f"{len(served)} model(s) served")
            else:
                rep.add("model listed", "fail", f"not in: {', '.join(served[:8]) or 'nothing'}")
                rep.fixes.append(f"use one of the served models, or start a server for {cfg.model}")
                return rep
        except openai.NotFoundError:
            rep.add("model listed", "warn", "the server has no /models endpoint")
        except Exception as exc:
            rep.add("reachable", "fail", describe(exc))
            rep.fixes.append(f"start the server or fix --{role}-base-url")
            return rep
        try:
            r = await call(messages=CHAT_MESSAGES, max_tokens=256)
            msg = r.choices[0].message
            raw = msg.content or ""
            visible, reasoning = split_reasoning(raw, getattr(msg, "reasoning_content", None))
            if visible:
                rep.add("chat", "ok", f"replied {visible[:40]!r}")
            else:
                rep.add("chat", "fail", "empty reply")
                rep.fixes.append("the model returns nothing: check the chat template / max_tokens")
            if "<think>" in raw.lower() or "</think>" in raw.lower():
                rep.add("reasoning", "warn", "reasoning appears in content (emotau strips it)")
                rep.fixes.append(
                    "start vLLM with a --reasoning-parser so reasoning is kept apart "
                    "(emotau serve picks it from the model family)"
                )
            elif reasoning:
                rep.add("reasoning", "ok", "kept apart from the content")
        except Exception as exc:
            rep.add("chat", "fail", describe(exc))
            return rep
        if role == "agent" and exp.spec.agent_strategy == "tool-calling":
            await _tool_probes(rep, call, probes, recover_tool_calls, describe)
        if latencies:
            rep.add(
                "latency",
                "ok",
                f"median {1000 * statistics.median(latencies):.0f} ms over {len(latencies)} calls",
            )
    finally:
        await client.aclose()
    return rep


async def _tool_probes(
    rep: RoleReport, call: Any, probes: int, recover: Any, describe: Any
) -> None:
    native = text = 0
    auto_rejected = False
    try:
        for _ in range(probes):
            r = await call(
                messages=PROBE_MESSAGES, tools=[PROBE_TOOL], tool_choice="auto", max_tokens=512
            )
            msg = r.choices[0].message
            if msg.tool_calls:
                native += 1
            elif recover(msg.content or "", ["get_order_status"])[0]:
                text += 1
    except Exception as exc:
        auto_rejected = True
        rep.add("tools (auto)", "fail", describe(exc))
        rep.fixes.append(
            "the server rejects tool_choice=auto: start vLLM with --enable-auto-tool-choice "
            "--tool-call-parser <parser for the family> (emotau serve does this)"
        )
    if not auto_rejected:
        status = "ok" if native == probes else ("warn" if native or text else "fail")
        detail = f"{native} of {probes} probes called a tool natively"
        if text:
            detail += f", {text} wrote the call as text (emotau recovers it)"
        rep.add("tools (auto)", status, detail)
    try:
        r = await call(
            messages=PROBE_MESSAGES, tools=[PROBE_TOOL], tool_choice="required", max_tokens=512
        )
        msg = r.choices[0].message
        as_text = not msg.tool_calls and bool(recover(msg.content or "", ["get_order_status"])[0])
        forced = bool(msg.tool_calls) or as_text
        detail = "called a tool" + (" (as text, recovered)" if as_text else "")
        rep.add(
            "tools (required)",
            "ok" if forced else "fail",
            detail if forced else "no tool call even when required",
        )
    except Exception as exc:
        forced = False
        rep.add("tools (required)", "fail", describe(exc))
    if auto_rejected:
        if forced:
            rep.fixes.append("tool_choice=required works here: run with --tool-choice required")
        return
    if native == 0 and text == 0:
        rep.fixes.append(
            f"0 of {probes} probes called a tool under auto: "
            + ("use --tool-choice required, or a larger model" if forced else "use a larger model")
        )
    elif native == 0 and text:
        rep.fixes.append(
            "tool calls arrive as text: start vLLM with --enable-auto-tool-choice and the "
            "family's --tool-call-parser (emotau serve picks it)"
        )
    elif native < probes:
        rep.fixes.append(
            f"only {native} of {probes} probes called a tool under auto: consider "
            "--tool-choice required"
        )


def render(reports: list[RoleReport]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for rep in reports:
        table = Table(title=f"{rep.role}: {rep.model} at {rep.base_url}", title_justify="left")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        for c, s, d in rep.checks:
            table.add_row(c, Text(s.upper(), style=colour[s]), d)
        parts.append(table)
        verdict = Text(f"verdict for {rep.role}: {rep.verdict.upper()}", style=colour[rep.verdict])
        parts.append(verdict)
        for fix in rep.fixes:
            parts.append(Text(f"  fix: {fix}"))
    if not reports:
        parts.append(Text("no role is served over HTTP (all scripted): nothing to check"))
    return Group(*parts)
