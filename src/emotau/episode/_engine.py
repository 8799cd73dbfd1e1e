"""The episode loop: agent <-> user <-> environment, one episode, one JSON-able record.

Everything an episode touches is created here for it alone: the environment state, the user
simulator (with its variant's prompt) and the agent's message history. Nothing is shared with
other episodes except the read-only domain and the stateless model clients.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emotau.core import (
    ChatResponse,
    EmptyReplyError,
    EpisodeHooks,
    EpisodeRecord,
    InfraError,
    ModelClient,
    RetryBudget,
    Status,
    Task,
    Termination,
    ToolResult,
    UserSimulatorError,
)
from emotau.domains import Domain, EpisodeOutcome
from emotau.episode._agents import AgentStrategy, ParsedCall
from emotau.episode._prompts import build_user_prompt
from emotau.episode._users import UserStrategy, UserTurn
from emotau.episode._variants import VariantSelection
from emotau.models import EpisodeClient

#: a customer's stop (see ``emotau.users.split_stop``) -> the termination it means
USER_STOPS = {
    "goal_met": Termination.USER_GOAL_MET,
    "gave_up": Termination.USER_GAVE_UP,
    "transfer": Termination.USER_TRANSFERRED,
    "out_of_scope": Termination.USER_OUT_OF_SCOPE,
}


@dataclass(frozen=True)
class EpisodeSetup:
    """Everything one episode needs; built by the runner, never mutated."""

    domain: Domain
    task: Task
    variant: VariantSelection
    trial: int
    seed: int
    agent_client: ModelClient
    user_client: ModelClient
    agent_strategy: type[AgentStrategy]
    user_strategy: type[UserStrategy]
    max_steps: int
    max_errors: int = 10
    tool_choice: str | None = None
    retry_budget: int = 20
    #: how the domain was named in the spec (lets a mock server load the same domain)
    domain_ref: str | None = None
    #: the judge role's client, for domains whose reward needs one (tau2's NL assertions)
    judge_client: ModelClient | None = None
    #: the episode's lifecycle hooks (the runner calls their start and end around the episode)
    hooks: EpisodeHooks | None = None


class _Episode:
    def __init__(self, s: EpisodeSetup) -> None:
        self.s = s
        self.t0 = time.perf_counter()
        self.turns: list[dict[str, Any]] = []
        self.said: list[str] = []  # what the agent said to the customer
        self.called: list[str] = []  # tools the environment executed
        self.env = s.domain.new_environment(s.task)
        self.budget = RetryBudget(s.retry_budget)
        hooks, turns = s.hooks, self.turns  # hooks see each call and the turn it is for
        self.agent_client = EpisodeClient(s.agent_client, self.budget, hooks, "agent", turns)
        self.user_client = EpisodeClient(s.user_client, self.budget, hooks, "user", turns)
        self.judge_client = (
            EpisodeClient(s.judge_client, self.budget, hooks, "judge", turns)
            if s.judge_client is not None
            else None
        )
        self.meta = meta = {
            "domain": s.domain.name,
            "domain_ref": s.domain_ref or s.domain.name,
            "task_id": s.task.id,
            "variant": s.variant.label,
            "emotions": s.variant.emotions,
            "intensities": s.variant.emotion_intensities,
            "phrases": s.variant.phrases(),
            "trial": s.trial,
            "seed": s.seed,
        }
        prompt = build_user_prompt(s.domain, s.task, s.user_strategy, s.variant)
        user_tools = s.domain.user_tools(s.task)
        self.user_tool_names = frozenset(t["function"]["name"] for t in user_tools)
        self.user = s.user_strategy(
            self.user_client,
            prompt.text,
            s.task.instruction,
            meta,
            tools=user_tools or None,
            run_tool=self._execute_user,
        )
        tools = s.domain.tools()
        self.tool_names = frozenset(t["function"]["name"] for t in tools)
        self.agent = s.agent_strategy(
            self.agent_client, s.domain.policy(), tools, meta, s.tool_choice
        )

    def _turn(self, role: str, started: float, **fields: Any) -> None:
        now = time.perf_counter()
        self.turns.append(
            {"role": role, "t": round(started - self.t0, 6), "duration_s": round(now - started, 6)}
            | fields
        )

    async def _user(self, agent_text: str | None) -> UserTurn:
        started = time.perf_counter()
        turn = await (self.user.start() if agent_text is None else self.user.reply(agent_text))
        calls = {"tool_calls": turn.tool_calls} if turn.tool_calls else {}
        self._turn(
            "user", started, content=turn.text, stop=turn.stop, raw=turn.raw, **calls, **turn.ending
        )
        return turn

    def _agent_turn(self, started: float, r: ChatResponse, **fields: Any) -> None:
        """Record one agent step: ``fields``, then the call's latency, tokens, cost and end."""
        usage: dict[str, Any] = {
            "latency_s": round(r.latency_s, 6),
            "tokens": [r.prompt_tokens, r.completion_tokens],
        }
        if r.retries:
            usage["retries"] = r.retries
        if r.cost_usd is not None:
            usage["cost_usd"] = round(r.cost_usd, 8)
        self._turn("agent", started, **fields, **usage, **r.ending())

    def _execute_user(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        if name not in self.user_tool_names:
            return ToolResult(f"Error: unknown tool {name!r}", error=True)
        return self.env.execute_user(name, arguments)

    def _execute(self, call: ParsedCall) -> ToolResult:
        if call.error is not None:
            return ToolResult(f"Error: {call.error}", error=True)
        if call.name not in self.tool_names:
            return ToolResult(f"Error: unknown tool {call.name!r}", error=True)
        result = self.env.execute(call.name, call.arguments or {})
        if not result.error:
            self.called.append(call.name)
        return result

    async def loop(self) -> tuple[Termination, str | None]:
        """Run to the end; return (termination reason, error message)."""
        turn = await self._user(None)
        if turn.stop:
            return USER_STOPS[turn.stop], None
        self.agent.add_user_message(turn.text)
        errors_in_a_row = 0
        for _ in range(self.s.max_steps):
            started = time.perf_counter()
            try:
                act = await self.agent.act()
            except EmptyReplyError as exc:  # the agent wrote nothing: the end of the episode
                return Termination.AGENT_EMPTY_REPLY, str(exc)
            r = act.response
            if not act.calls:
                errors_in_a_row = 0
                self._agent_turn(started, r, content=act.text, reasoning=r.reasoning)
                self.said.append(act.text or "")
                turn = await self._user(act.text)
                if turn.stop:
                    return USER_STOPS[turn.stop], None
                self.agent.add_user_message(turn.text)
                continue
            results = []
            for call in act.calls:
                result = self._execute(call)
                self.agent.add_tool_result(call, result.content)
                results.append(
                    {
                        "id": call.id,
                        "name": call.name,
                        "arguments": call.arguments,
                        "raw_arguments": call.raw_arguments if call.arguments is None else None,
                        "result": result.content,
                        "error": result.error,
                    }
                    | ({"recovered": call.recovered} if call.recovered else {})
                )
            self._agent_turn(
                started, r, content=r.content, reasoning=r.reasoning, tool_calls=results
            )
            if any(name in self.s.domain.terminal_tools for name in self.called):
                return Termination.TRANSFER_TO_HUMAN, None
            errors_in_a_row = errors_in_a_row + 1 if all(r["error"] for r in results) else 0
            if errors_in_a_row >= self.s.max_errors:
                return Termination.AGENT_ERROR, f"{errors_in_a_row} invalid actions in a row"
        return Termination.MAX_STEPS, None


async def run_episode(s: EpisodeSetup) -> EpisodeRecord:
    """Run one episode and return its record (see ``docs/results.md`` for the fields)."""
    started_at = time.time()
    ep = _Episode(s)
    error: str | None = None
    reward: float | None = None
    breakdown: Mapping[str, Any] | None = None
    try:
        termination, error = await ep.loop()
        if termination != Termination.USER_SIMULATOR_ERROR:
            outcome = EpisodeOutcome(
                termination, ep.said, ep.called, ep.turns, ep.judge_client, ep.meta
            )
            result = await s.domain.score(s.task, ep.env, outcome)
            reward, breakdown = result.reward, result.breakdown
            if termination == Termination.AGENT_EMPTY_REPLY:
                reward = 0.0  # the agent broke off the conversation: never a success
    except InfraError as exc:
        termination, error = Termination.INFRA_ERROR, str(exc)
    except UserSimulatorError as exc:
        termination, error = Termination.USER_SIMULATOR_ERROR, str(exc)
    except Exception as exc:  # a bug in a domain, a client or emotau: never scored, retried
        termination = Termination.INFRA_ERROR
        error = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-8)}"
    status = Status.INFRA_ERROR if termination == Termination.INFRA_ERROR else Status.COMPLETED
    if status != Status.COMPLETED:
        reward = breakdown = None
    return EpisodeRecord(
        task_id=s.task.id,
        variant=s.variant.label,
        trial=s.trial,
        status=status,
        scored=reward is not None,
        reward=reward,
        success=reward is not None and reward >= 1.0,
        reward_breakdown=breakdown,
        termination=termination,
        error=error,
        num_turns=sum(1 for t in ep.turns if t["role"] == "user" or not t.get("tool_calls")),
        num_agent_steps=sum(1 for t in ep.turns if t["role"] == "agent"),
        num_tool_calls=sum(len(t.get("tool_calls") or ()) for t in ep.turns),
        started_at=started_at,
        duration_s=round(time.perf_counter() - ep.t0, 6),
        synthetic=ep.agent_client.synthetic
        or ep.user_client.synthetic
        or bool(ep.judge_client and ep.judge_client.calls and ep.judge_client.synthetic),
        usage={
            "agent": ep.agent_client.usage(),
            "user": ep.user_client.usage(),
            **(
                {"judge": ep.judge_client.usage()}
                if ep.judge_client and ep.judge_client.calls
                else {}
            ),
            "retries": ep.budget.used,
        },
        variant_info=s.variant.record(),
        turns=ep.turns,
        agent={"system_prompt": ep.agent.system_prompt, "messages": ep.agent.messages[1:]},
        user={"system_prompt": ep.user.system_prompt, "messages": ep.user.messages[1:]},
    )
