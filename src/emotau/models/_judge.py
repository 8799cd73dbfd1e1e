"""The ``judge`` role: an LLM that checks natural-language assertions against a conversation.

Used by domains whose reward has natural-language parts (tau2's ``nl_assertions``), through the
run's ``judge`` endpoint: ``--judge-model``/``--judge-base-url`` or ``[judge]`` in the config.
The prompt is emotau's own. The judge answers in JSON; an answer that cannot be read is asked
again, and after ``attempts`` unreadable answers the episode is an infrastructure error (never
scored, retried on resume), because a judge that cannot answer says nothing about the agent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from emotau.core import ChatRequest, InfraError, ModelClient

_PROMPT = """\
You check a finished customer-support conversation between a support AGENT and a CUSTOMER.
Below are the conversation and a numbered list of statements about what should have happened
in it. For each statement decide from the conversation alone whether it holds.
A statement about what the agent said or did holds only if the conversation shows it.

# Conversation
{conversation}

# Statements
{statements}

Answer with JSON only, no other text, in exactly this form, one entry per statement, in order:
{{"results": [{{"statement": 1, "met": true, "justification": "one short sentence"}}]}}"""

T = TypeVar("T")

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Judgement:
    met: bool
    justification: str


def format_conversation(turns: Sequence[Mapping[str, Any]]) -> str:
    """An episode's turns (the record's ``turns``) as plain text for the judge."""
    lines: list[str] = []
    for t in turns:
        if t.get("role") == "user":
            lines.append(f"CUSTOMER: {t.get('content') or ''}")
            continue
        if t.get("content") and t.get("tool_calls"):
            lines.append(f"AGENT (note to self): {t['content']}")
        elif t.get("content") or not t.get("tool_calls"):
            lines.append(f"AGENT: {t.get('content') or ''}")
        for c in t.get("tool_calls") or ():
            args = json.dumps(c.get("arguments"), sort_keys=True)
            lines.append(f"AGENT calls {c.get('name')}({args}) -> {c.get('result')}")
    return "\n".join(lines) or "(empty conversation)"


def parse_judgements(content: str, n: int) -> list[Judgement]:
    """The judge's answer for ``n`` statements; ValueError if it is not one entry per statement."""
    match = _JSON_OBJECT.search(content or "")
    if not match:
        raise ValueError("no JSON object in the judge's answer")
    data = json.loads(match.group(0))
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or len(results) != n:
        raise ValueError(f"expected {n} results, got {results!r:.200}")
    out = []
    for r in results:
        met = r.get("met") if isinstance(r, dict) else None
        if not isinstance(met, bool):
            raise ValueError(f"result without a boolean 'met': {r!r:.200}")
        out.append(Judgement(met, str(r.get("justification") or "")))
    return out


async def judge_statements(
    client: ModelClient,
    statements: Sequence[str],
    turns: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, Any],
    attempts: int = 3,
) -> list[Judgement]:
    """Ask the judge whether each statement holds in the conversation."""
    if not statements:
        return []
    prompt = _PROMPT.format(
        conversation=format_conversation(turns),
        statements="\n".join(f"{i}. {s}" for i, s in enumerate(statements, 1)),
    )
    meta = {**metadata, "role": "judge", "purpose": "nl_assertions", "statements": len(statements)}
    n = len(statements)
    return await ask_judge(
        client, prompt, lambda answer: parse_judgements(answer, n), metadata=meta,
        attempts=attempts, wanted=f"one JSON object with one result for each of the {n} statements",
    )  # fmt: skip


async def ask_judge(
    client: ModelClient,
    prompt: str,
    parse: Callable[[str], T],
    *,
    metadata: Mapping[str, Any],
    attempts: int = 3,
    wanted: str = "the JSON object",
    what: str = "answer",
) -> T:
    """Ask the judge ``prompt`` until ``parse`` accepts its answer (ValueError: unusable).

    The one judge loop of emotau: after an unusable answer the judge is shown its answer, the
    problem and what is ``wanted``, so that a deterministic model can change it. After
    ``attempts`` unusable answers, :class:`InfraError` ("judge gave no usable ``what`` in N
    attempts: <the last problem>"); the client's own errors propagate.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    problem = ""
    for _ in range(attempts):
        response = await client.complete(
            ChatRequest(messages=list(messages), metadata=dict(metadata))
        )
        try:
            return parse(response.content or "")
        except ValueError as exc:  # json.JSONDecodeError is one
            problem = " ".join(str(exc).split())
            if response.blank:  # it ran out of tokens (other empty replies were retried)
                problem = f"an empty reply ({response.describe_ending()}): {problem}"
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": response.content or ""},
                {
                    "role": "user",
                    "content": f"That answer could not be used ({problem}). "
                    f"Reply with only {wanted}.",
                },
            ]
    raise InfraError(f"judge gave no usable {what} in {attempts} attempts: {problem}")
