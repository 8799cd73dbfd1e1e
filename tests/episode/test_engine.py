from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from emotau.core._chat import ChatRequest, ChatResponse, ModelClient, ToolCall
from emotau.core._errors import InfraError
from emotau.core._types import ToolResult
from emotau.domains import load_domain
from emotau.episode._agents import AGENT_STRATEGIES
from emotau.episode._engine import EpisodeSetup, run_episode
from emotau.episode._users import USER_STRATEGIES
from emotau.episode._variants import VariantLibrary
from emotau.scripted._models import ScriptedAgent, ScriptedUser

LIB = VariantLibrary.default()


@pytest.fixture(scope="module")
def toy():
    return load_domain("toydomain:ToyDomain")


def setup(
    domain,
    task_id=0,
    variant="control",
    agent=None,
    user=None,
    agent_strategy="tool-calling",
    user_strategy="llm",
    max_steps=30,
    trial=0,
) -> EpisodeSetup:
    return EpisodeSetup(
        domain=domain,
        task=domain.tasks()[task_id],
        variant=LIB.select(variant),
        trial=trial,
        seed=0,
        agent_client=agent or ScriptedAgent(domain, {"skill": 1.0}),
        user_client=user or ScriptedUser(domain),
        agent_strategy=AGENT_STRATEGIES.get(agent_strategy),
        user_strategy=USER_STRATEGIES.get(user_strategy),
        max_steps=max_steps,
    )


def run(s: EpisodeSetup) -> dict[str, Any]:
    """One episode's record as the runner writes it."""
    return asyncio.run(run_episode(s)).to_dict()


@pytest.mark.parametrize("agent_strategy", ["tool-calling", "react", "act"])
@pytest.mark.parametrize("user_strategy", ["llm", "react", "verify", "reflection"])
def test_every_strategy_pair_solves_with_oracle(toy, agent_strategy, user_strategy) -> None:
    rec = run(
        setup(toy, 0, "frustration", agent_strategy=agent_strategy, user_strategy=user_strategy)
    )
    assert rec["status"] == "completed" and rec["success"], rec["reward_breakdown"]
    assert rec["termination"] == "user_goal_met"
    calls = [c["name"] for t in rec["turns"] for c in t.get("tool_calls", [])]
    assert calls == ["get_balance", "deposit"]
    json.dumps(rec)  # the record is JSON-serialisable as is


def test_trajectory_records_prompts_variant_and_timing(toy) -> None:
    rec = run(setup(toy, 0, "anger:severe"))
    vi = rec["variant_info"]
    assert vi["label"] == "anger:severe" and vi["text"] == LIB["anger"].texts["severe"]
    assert rec["user"]["system_prompt"].endswith(vi["text"])
    assert (
        "deposit money" in rec["user"]["system_prompt"]
        or "Deposit 20" in rec["user"]["system_prompt"]
    )
    assert rec["agent"]["system_prompt"] == toy.policy()
    assert all(t["duration_s"] >= 0 and t["t"] >= 0 for t in rec["turns"])
    tool_turn = next(t for t in rec["turns"] if t.get("tool_calls"))
    assert tool_turn["tool_calls"][0]["result"] == "100"
    assert rec["synthetic"] is True
    user_turn = rec["turns"][0]
    assert user_turn["raw"][0]["purpose"] == "reply"


def test_react_user_thought_never_reaches_agent(toy) -> None:
    rec = run(setup(toy, 0, "anxiety", user_strategy="react"))
    seen_by_agent = " ".join(str(m.get("content")) for m in rec["agent"]["messages"])
    assert "Thought:" not in seen_by_agent
    raw = [r["content"] for t in rec["turns"] if t["role"] == "user" for r in t["raw"]]
    assert any("Thought:" in r for r in raw)  # kept in the trajectory


def test_verify_and_reflection_make_extra_calls(toy) -> None:
    for strategy in ("verify", "reflection"):
        rec = run(setup(toy, 1, user_strategy=strategy))
        purposes = [r["purpose"] for t in rec["turns"] if t["role"] == "user" for r in t["raw"]]
        assert "verify" in purposes and purposes.count("reply") >= 2


class Scripted(ModelClient):
    """Replies from a fixed list (then repeats the last one)."""

    def __init__(self, replies: list[ChatResponse | Exception]) -> None:
        self.replies = replies
        self.n = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        r = self.replies[min(self.n, len(self.replies) - 1)]
        self.n += 1
        if isinstance(r, Exception):
            raise r
        return r


def test_transfer_ends_episode(toy) -> None:
    rec = run(setup(toy, 2))
    assert rec["termination"] == "transfer_to_human" and rec["success"]


def test_max_steps(toy) -> None:
    rec = run(setup(toy, 0, max_steps=1))
    assert rec["termination"] == "max_steps" and rec["reward"] == 0.0 and rec["scored"]


def test_user_gives_up_is_not_goal_met(toy) -> None:
    stubborn = Scripted([ChatResponse("Check my balance."), ChatResponse("Forget it. ###QUIT###")])
    talker = Scripted([ChatResponse("Let me see what I can do.")])
    rec = run(setup(toy, 1, agent=talker, user=stubborn))
    assert rec["termination"] == "user_gave_up" and rec["scored"] and rec["reward"] == 0.0
    assert "###" not in rec["turns"][-1]["content"]


@pytest.mark.parametrize("strategy", ["tool-calling", "react"])
@pytest.mark.parametrize("finish_reason", [None, "stop"])
def test_empty_agent_completion_is_infrastructure(toy, strategy, finish_reason) -> None:
    blank = ChatResponse("  ", prompt_tokens=40, completion_tokens=1, finish_reason=finish_reason)
    rec = run(setup(toy, 1, agent=Scripted([blank]), agent_strategy=strategy))
    assert rec["status"] == "infra_error" and not rec["scored"] and rec["reward"] is None
    assert f"finish_reason={finish_reason!r}, 40 prompt and 1 completion tokens" in rec["error"]


@pytest.mark.parametrize("strategy", ["tool-calling", "react"])
def test_empty_reply_that_used_the_token_budget_is_the_agents_failure(toy, strategy) -> None:
    """Whitespace with finish_reason "length": scored 0 even where every check would pass."""
    user = Scripted([ChatResponse("What's my balance?"), ChatResponse("Is that in euros?")])
    if strategy == "react":
        look = 'Action: {"name": "get_balance", "arguments": {"account": "B2"}}'
        say = 'Action: {"name": "respond", "arguments": {"content": "Your balance is 5."}}'
        first, second = ChatResponse(look), ChatResponse(say)
    else:
        first = ChatResponse(None, [ToolCall("c1", "get_balance", '{"account": "B2"}')])
        second = ChatResponse("Your balance is 5.")
    blank = ChatResponse(" \n\n ", prompt_tokens=300, completion_tokens=64, finish_reason="length")
    agent = Scripted([first, second, blank])
    rec = run(setup(toy, 1, agent=agent, user=user, agent_strategy=strategy))
    assert rec["status"] == "completed" and rec["termination"] == "agent_empty_reply"
    assert rec["scored"] and rec["reward"] == 0.0 and not rec["success"]
    bd = rec["reward_breakdown"]  # every check of the domain's passed; the conversation did not
    assert bd["db_match"] and bd["outputs"] == {"5": True} and not bd["transfer"]["done"]
    assert "finish_reason='length', 300 prompt and 64 completion tokens" in rec["error"]
    assert agent.n == 3 and rec["usage"]["agent"]["calls"] == 3  # asked once, never again
    assert rec["num_agent_steps"] == 2  # the empty reply is no turn: nobody received it
    assert all((t.get("content") or "").strip() for t in rec["turns"] if t["role"] == "user")


def test_user_empty_reply_that_used_the_token_budget_is_a_simulator_error(toy) -> None:
    blank = ChatResponse("  ", prompt_tokens=80, completion_tokens=32, finish_reason="length")
    rec = run(setup(toy, 1, user=Scripted([blank])))
    assert rec["status"] == "completed" and rec["termination"] == "user_simulator_error"
    assert not rec["scored"] and rec["reward"] is None
    assert "finish_reason='length', 80 prompt and 32 completion tokens" in rec["error"]
    stop = ChatResponse("", prompt_tokens=80, completion_tokens=0, finish_reason="stop")
    rec = run(setup(toy, 1, user=Scripted([stop])))  # a glitch of the server's
    assert rec["status"] == "infra_error" and "finish_reason='stop'" in rec["error"]


def test_turns_record_how_each_call_ended(toy) -> None:
    user = Scripted(
        [
            ChatResponse("What's my balance?", prompt_tokens=12, completion_tokens=5),
            ChatResponse("Thanks. ###STOP###", finish_reason="stop", usage_reported=False),
        ]
    )
    agent = Scripted(
        [
            ChatResponse(
                None,
                [ToolCall("c1", "get_balance", '{"account": "B2"}')],
                prompt_tokens=50,
                completion_tokens=9,
                finish_reason="tool_calls",
            ),
            ChatResponse("It is 5.", prompt_tokens=70, completion_tokens=4, finish_reason="stop"),
        ]
    )
    rec = run(setup(toy, 1, agent=agent, user=user))
    ends = [
        (t["role"], t["finish_reason"], t["prompt_tokens"], t["completion_tokens"])
        for t in rec["turns"]
    ]
    assert ends == [
        ("user", None, 12, 5),
        ("agent", "tool_calls", 50, 9),
        ("agent", "stop", 70, 4),
        ("user", "stop", None, None),  # the server gave no token counts
    ]
    assert rec["turns"][0]["raw"][0]["finish_reason"] is None


def test_agent_error_after_max_errors_invalid_actions(toy) -> None:
    bad = Scripted([ChatResponse(None, [ToolCall("c", "get_balance", "{oops")])])
    s = setup(toy, 1, agent=bad)
    s = EpisodeSetup(**{**s.__dict__, "max_errors": 3})
    rec = run(s)
    assert rec["termination"] == "agent_error" and rec["scored"] and rec["reward"] == 0.0
    assert rec["num_agent_steps"] == 3 and "3 invalid actions in a row" in rec["error"]


def test_failed_transfer_is_not_a_transfer(toy) -> None:
    class NoSummaryEnvDomain(type(toy)):
        pass

    agent = Scripted(
        [
            ChatResponse(None, [ToolCall("c1", "transfer_to_human_agents", '{"summary": 5}')]),
            ChatResponse("I cannot help, sorry."),
        ]
    )
    dom = NoSummaryEnvDomain()
    orig = dom.new_environment

    def env_rejecting_transfer(task):
        env = orig(task)
        execute = env.execute

        def ex(name, args):
            if name == "transfer_to_human_agents" and not isinstance(args.get("summary"), str):
                return ToolResult("Error: summary must be a string", error=True)
            return execute(name, args)

        env.execute = ex
        return env

    dom.new_environment = env_rejecting_transfer
    rec = run(setup(dom, 2, agent=agent))
    assert rec["termination"] == "user_goal_met"  # the failed call did not end the episode
    assert rec["reward"] == 0.0 and rec["reward_breakdown"]["transfer"]["done"] is False


class Boom(ModelClient):
    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise RuntimeError("bug in a client")


def test_unexpected_exception_is_recorded_not_scored(toy) -> None:
    rec = run(setup(toy, 0, agent=Boom()))
    assert rec["status"] == "infra_error" and rec["reward"] is None
    assert "internal error: RuntimeError: bug in a client" in rec["error"]
    assert "Traceback" in rec["error"]


def test_malformed_tool_call_is_agent_mistake_and_episode_goes_on(toy) -> None:
    agent = Scripted(
        [
            ChatResponse(None, [ToolCall("c1", "get_balance", '{"account": "B2"')]),  # bad JSON
            ChatResponse(None, [ToolCall("c2", "no_such_tool", "{}")]),
            ChatResponse(None, [ToolCall("c3", "get_balance", '{"account": "B2"}')]),
            ChatResponse("Your balance is 5."),
        ]
    )
    rec = run(setup(toy, 1, agent=agent))
    results = [c for t in rec["turns"] for c in t.get("tool_calls", [])]
    assert results[0]["error"] and "not valid JSON" in results[0]["result"]
    assert results[0]["raw_arguments"] == '{"account": "B2"'
    assert results[1]["error"] and "unknown tool" in results[1]["result"]
    assert results[2]["result"] == "5"
    assert rec["success"] and rec["termination"] == "user_goal_met"


def test_react_agent_unparseable_action_gets_error_observation(toy) -> None:
    agent = Scripted(
        [
            ChatResponse("I will just chat"),
            ChatResponse('Action: {"name": "respond", "arguments": {"content": "It is 5."}}'),
        ]
    )
    rec = run(setup(toy, 1, agent=agent, agent_strategy="act"))
    first = rec["turns"][1]["tool_calls"][0]
    assert first["error"] and "no 'Action:'" in first["result"]
    assert rec["success"]


def test_infra_error_is_not_scored(toy) -> None:
    rec = run(setup(toy, 0, agent=Scripted([InfraError("connection refused")])))
    assert rec["status"] == "infra_error" and not rec["scored"] and rec["reward"] is None
    assert rec["termination"] == "infra_error" and "connection refused" in rec["error"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Thought: a\nMessage: Hi.\nThought: I will lie later.", "Hi."),
        ("Thought: x\nMessage: one\nThought: y\nMessage: two", "two"),
        ("just text", "just text"),
        # tau-bench's own react format (its control prompt is upstream's, unchanged)
        (
            "Thought:\nI should ask about the refund.\n\nUser Response:\nWhere is my refund?",
            "Where is my refund?",
        ),
    ],
)
def test_react_parse_never_leaks_thought(raw, expected) -> None:
    from emotau.episode._users import parse_react_message

    assert parse_react_message(raw) == expected


@pytest.mark.parametrize("raw", ["Thought: only thinking", "Thought: t\nMessage:   "])
def test_react_parse_rejects_missing_message(raw) -> None:
    from emotau.core._errors import UserSimulatorError
    from emotau.episode._users import parse_react_message

    with pytest.raises(UserSimulatorError):
        parse_react_message(raw)


def test_user_simulator_error(toy) -> None:
    bad = Scripted([ChatResponse("Thought: I am thinking but never answer")])
    rec = run(setup(toy, 0, user=bad, user_strategy="react"))
    assert rec["termination"] == "user_simulator_error" and not rec["scored"]
    assert rec["status"] == "completed"  # finished, but excluded from scores


def test_episodes_of_different_variants_side_by_side_stay_isolated(toy) -> None:
    labels = ["control", "frustration:severe", "anxiety", "anger:mild", "confusion", "neutral"]

    async def many() -> list[dict[str, Any]]:
        setups = [setup(toy, i % 3, labels[i % len(labels)], trial=i) for i in range(300)]
        return [r.to_dict() for r in await asyncio.gather(*(run_episode(s) for s in setups))]

    recs = asyncio.run(many())
    texts = {lab: LIB.select(lab).text for lab in labels}
    for rec in recs:
        prompt = rec["user"]["system_prompt"]
        own = texts[rec["variant"]]
        assert own in prompt
        for other, text in texts.items():
            if other != rec["variant"] and text:
                assert text not in prompt
        assert rec["variant_info"]["text_sha256"] == LIB.select(rec["variant"]).text_sha256


def test_usage_is_metered_per_role(toy) -> None:
    rec = run(setup(toy, 0))
    usage = rec["usage"]
    user_turns = sum(1 for t in rec["turns"] if t["role"] == "user")
    agent_turns = sum(1 for t in rec["turns"] if t["role"] == "agent")
    assert usage["user"]["calls"] == user_turns > 0
    assert usage["agent"]["calls"] == agent_turns > 0
    assert usage["agent"]["prompt_tokens"] > 0 and usage["retries"] == 0
