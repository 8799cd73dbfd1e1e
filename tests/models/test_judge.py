"""The judge role and what a domain's ``score`` hook receives (EpisodeOutcome).

Runs everywhere: a toy domain whose reward has a natural-language part judged by the run's
judge role, in process and over HTTP through the mock server's ``scripted-judge``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from emotau.core._chat import ChatRequest, ChatResponse, ModelClient
from emotau.episode._users import split_stop
from emotau.models._judge import format_conversation, judge_statements, parse_judgements
from emotau.scripted._models import ScriptedJudge
from helpers import all_lines, emotau, mock_server, run_one_episode
from toydomain import JudgedToy


class Judge(ModelClient):
    """Answers from a list of texts; records the requests it got."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(self.texts.pop(0) if len(self.texts) > 1 else self.texts[0])


def verdict(*met: bool) -> str:
    return json.dumps(
        {"results": [{"statement": i, "met": m, "justification": "x"} for i, m in enumerate(met)]}
    )


def episode(dom: JudgedToy, judge: ModelClient | None, task_id: int = 0, **kw: Any) -> dict:
    return run_one_episode(dom, dom.tasks()[task_id], variant="frustration", judge=judge, **kw)


def test_score_gets_termination_turns_judge_and_metadata() -> None:
    dom = JudgedToy()
    judge = Judge(verdict(True, True))
    rec = episode(dom, judge)
    assert rec["reward"] == 1.0 and rec["reward_breakdown"]["nl"] == [True, True]
    (out,) = dom.seen
    assert out.termination == rec["termination"] == "user_goal_met"
    assert out.turns is rec["turns"] or list(out.turns) == rec["turns"]
    assert out.called == ["get_balance", "deposit"]
    assert out.metadata["variant"] == "frustration" and out.metadata["task_id"] == 0
    # the judge saw the whole conversation, in order, and was told how many statements
    (req,) = judge.requests
    text = req.messages[0]["content"]
    first_user = rec["turns"][0]["content"]
    assert text.index(f"CUSTOMER: {first_user}") < text.index("AGENT calls get_balance")
    assert "1. The agent greets the customer.\n2. The agent states the balance." in text
    assert req.metadata["role"] == "judge" and req.metadata["statements"] == 2
    assert rec["usage"]["judge"]["calls"] == 1


def test_an_unmet_statement_fails_the_episode() -> None:
    rec = episode(JudgedToy(), Judge(verdict(True, False)))
    assert rec["reward"] == 0.0 and rec["reward_breakdown"]["nl"] == [True, False]
    assert rec["reward_breakdown"]["db_match"] is True


def test_unreadable_judge_is_retried_then_an_infra_error_never_a_zero() -> None:
    judge = Judge("I think both hold.", verdict(True, True))
    rec = episode(JudgedToy(), judge)
    assert rec["reward"] == 1.0 and len(judge.requests) == 2
    rec = episode(JudgedToy(), Judge("no json here"))
    assert rec["status"] == "infra_error" and not rec["scored"] and rec["reward"] is None
    assert "judge gave no usable answer in 3 attempts" in rec["error"]


def test_scripted_judge_marks_the_episode_synthetic() -> None:
    dom = JudgedToy()
    rec = episode(dom, ScriptedJudge())
    assert rec["reward"] == 1.0 and rec["synthetic"] is True
    assert rec["usage"]["judge"]["calls"] == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "no JSON object"),
        ('{"results": []}', "expected 2 results"),
        ('{"results": [{"met": true}, {"met": "yes"}]}', "boolean 'met'"),
        ('{"results": [{"met": true}, 3]}', "boolean 'met'"),
        ("[1, 2]", "no JSON object"),
    ],
)
def test_parse_judgements_rejects_bad_answers(content: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_judgements(content, 2)


def test_parse_judgements_reads_json_inside_prose() -> None:
    got = parse_judgements(f"Here you go:\n```json\n{verdict(False, True)}\n```", 2)
    assert [g.met for g in got] == [False, True] and got[0].justification == "x"


def test_no_statements_no_call() -> None:
    judge = Judge("unused")
    assert asyncio.run(judge_statements(judge, [], [], {})) == []
    assert judge.requests == []


def test_format_conversation_shows_tool_calls_and_notes() -> None:
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "agent", "content": "Let me check.", "tool_calls": [
            {"name": "get_balance", "arguments": {"account": "A1"}, "result": "100"}
        ]},
        {"role": "agent", "content": "You have 100."},
    ]  # fmt: skip
    assert format_conversation(turns).splitlines() == [
        "CUSTOMER: Hi",
        "AGENT (note to self): Let me check.",
        'AGENT calls get_balance({"account": "A1"}) -> 100',
        "AGENT: You have 100.",
    ]


def test_judge_over_http_through_the_mock_server(tmp_path) -> None:
    with mock_server("--skill", "1.0", "--oracle-domains", "toydomain:JudgedToy") as url:
        r = emotau(
            "run", "--domain", "toydomain:JudgedToy", "--variants", "control,anger",
            "--num-trials", "1", "--out", str(tmp_path), "--name", "j",
            "--model", "scripted-agent", "--user-model", "scripted-user", "--base-url", url,
            "--judge-model", "scripted-judge", "--judge-base-url", url, "--quiet",
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    eps = all_lines(tmp_path / "j")
    assert len(eps) == 6 and all(e["scored"] for e in eps)
    assert all(e["reward_breakdown"]["nl"] == [True, True] for e in eps)
    assert all(e["usage"]["judge"]["calls"] == 1 and e["synthetic"] for e in eps)


def test_max_steps_reaches_score_as_the_termination() -> None:
    dom = JudgedToy()
    rec = episode(dom, Judge(verdict(True, True)), max_steps=1)
    assert rec["termination"] == "max_steps" and dom.seen[0].termination == "max_steps"


@pytest.mark.parametrize(
    ("text", "visible", "stop"),
    [
        ("Thanks! ###STOP###", "Thanks!", "goal_met"),
        ("Bye ###QUIT###", "Bye", "gave_up"),
        ("OK, thank you. ###TRANSFER###", "OK, thank you.", "transfer"),
        ("###OUT-OF-SCOPE###", "", "out_of_scope"),
        ("Never mind ###TRANSFER### ###STOP###", "Never mind", "transfer"),
        ("No stop here", "No stop here", None),
    ],
)
def test_stop_tokens(text: str, visible: str, stop: str | None) -> None:
    assert split_stop(text) == (visible, stop)


def test_a_transfer_stop_ends_the_episode() -> None:
    from emotau.episode._engine import USER_STOPS

    assert USER_STOPS["transfer"] == "user_transferred"
    assert USER_STOPS["out_of_scope"] == "user_out_of_scope"

    class Bye(ModelClient):
        async def complete(self, request: ChatRequest) -> ChatResponse:
            return ChatResponse("I was told to call another number. ###OUT-OF-SCOPE###")

    dom = JudgedToy()
    rec = run_one_episode(dom, dom.tasks()[1], user=Bye(), judge=Judge(verdict(True, True)))
    assert rec["termination"] == "user_out_of_scope" and rec["num_agent_steps"] == 0


def test_real_agent_with_the_offline_judge_is_refused(tmp_path) -> None:
    r = emotau(
        "run", "--domain", "toydomain:JudgedToy", "--out", str(tmp_path),
        "--model", "some-model", "--base-url", "http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "3 of the selected judged-toy tasks are judged by the judge role" in r.stderr
    assert "--judge-model" in r.stderr and not any(tmp_path.iterdir())
