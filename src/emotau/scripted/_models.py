"""Scripted models: in-process, deterministic stand-ins for LLMs (offline runs, tests, demos).

Both are ordinary :class:`ModelClient` implementations that decide what to say from the request
alone (messages + metadata), so they behave the same in-process and behind the mock server.

**Scripted agent** (an oracle): follows the task's ground-truth actions, asks the customer to
confirm before its first write, and finally tells the customer the required outputs. Its
``skill`` (probability of a flawless episode, default 0.92) drops under emotional variants by
``penalty[emotion] * intensity_factor[intensity]``, so demo runs differ between variants.
Options (``[agent.options]`` in the config): ``skill``, ``penalty`` (a table emotion -> drop),
``default_penalty`` (emotions not in the table), ``latency`` (seconds slept per call). A
flawed episode skips a write, forgets an output, or hands off to a human. Results produced with
scripted models are synthetic and are labelled so everywhere.

**Scripted user**: opens with the task's request in the style of its variant (mixing in the
variant's ``phrases``), answers identity questions from the task's facts, confirms proposed
actions (a confused customer first asks what will happen), and ends with the stop token.
Options (``[user.options]``): ``patience`` (messages before it gives up), ``latency``.

**Scripted judge**: accepts every claim ("YES", or every natural-language assertion met), and
labels customer messages for ``emotau analyze --emotion-judge`` (``purpose = "emotion_labels"``)
with emotau's own lexicon (:func:`emotau.emotion.lexicon_label`: the lexicon's detected
emotion, and an intensity 0..3 from the strongest score). Its labels therefore agree with the
lexicon by construction: they test the labelling pipeline, not an LLM's judgement. No options.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from emotau.core import ChatRequest, ChatResponse, ModelClient, Task, ToolCall
from emotau.domains import Domain
from emotau.emotion import lexicon_label
from emotau.episode import (
    RESPOND,
    STOP_GAVE_UP,
    STOP_GOAL_MET,
    format_text_action,
    parse_text_action,
)

DEFAULT_PENALTY = {"frustration": 0.12, "anxiety": 0.07, "anger": 0.2, "confusion": 0.15}
INTENSITY_FACTOR = {"mild": 0.5, "moderate": 1.0, "severe": 1.6}
_CONFIRM_MARK = "Shall I go ahead?"
_YES_RE = re.compile(r"\b(yes|yeah|yep|go ahead|please do|proceed|ok|okay|sure|confirm)", re.I)


def _damaged(result: str) -> bool:
    """Whether a tool result says the call itself could not be read (not a tool's refusal)."""
    return "arguments are not valid JSON" in result or "arguments must be a JSON object" in result


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"option {name!r} must be a number from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


def _rng(metadata: Mapping[str, Any], *extra: object) -> random.Random:
    key = "|".join(str(metadata.get(k)) for k in ("seed", "domain", "task_id", "variant", "trial"))
    return random.Random("|".join([key, *map(str, extra)]))


def _task(domain: Domain, metadata: Mapping[str, Any]) -> Task:
    return domain.tasks()[int(metadata["task_id"])]


def _usage(messages: Sequence[Mapping[str, Any]], text: str) -> tuple[int, int]:
    # a cheap, deterministic token estimate (4 characters per token)
    prompt = sum(len(m.get("content") or "") for m in messages) // 4
    return prompt, max(1, len(text) // 4)


class ScriptedAgent(ModelClient):
    synthetic = True

    def __init__(self, domain: Domain, options: Mapping[str, Any] | None = None) -> None:
        opts = dict(options or {})
        self.domain = domain
        self.skill = _number(opts.pop("skill", 0.92), "skill", 0.0, 1.0)
        penalty = opts.pop("penalty", {})
        if not isinstance(penalty, Mapping):
            raise ValueError("option 'penalty' must be a table of emotion = number")
        self.penalty = {
            **DEFAULT_PENALTY,
            **{str(k): _number(v, f"penalty.{k}", 0.0, 1.0) for k, v in penalty.items()},
        }
        self.default_penalty = _number(opts.pop("default_penalty", 0.1), "default_penalty", 0, 1)
        self.latency = _number(opts.pop("latency", 0.0), "latency", 0.0, 3600.0)
        if opts:
            raise ValueError(f"unknown scripted agent options: {', '.join(sorted(opts))}")

    # -- episode plan -------------------------------------------------------------------
    def success_probability(self, metadata: Mapping[str, Any]) -> float:
        p = self.skill
        for emotion, intensity in zip(
            metadata.get("emotions", ()), metadata.get("intensities", ()), strict=False
        ):
            p -= self.penalty.get(emotion, self.default_penalty) * INTENSITY_FACTOR.get(
                intensity, 1.0
            )
        return min(1.0, max(0.0, p))

    def plan(self, task: Task, metadata: Mapping[str, Any]) -> tuple[list[Any], list[str]]:
        """The actions and outputs of this episode, flawed with probability 1 - skill."""
        actions = list(task.actions)
        outputs = list(task.outputs)
        rng = _rng(metadata, "agent")
        if rng.random() < self.success_probability(metadata):
            return actions, outputs
        writes = [i for i, a in enumerate(actions) if a.name in self.domain.write_tools]
        modes = ["transfer"]
        if writes:
            modes.append("skip_write")
        if outputs:
            modes.append("forget_output")
        mode = rng.choice(modes)
        if mode == "skip_write":
            del actions[rng.choice(writes)]
        elif mode == "forget_output":
            outputs.pop(rng.randrange(len(outputs)))
        else:
            transfer = sorted(self.domain.terminal_tools)[0]
            actions = [*actions[: rng.randrange(len(actions) + 1)], _Action(transfer)]
        return actions, outputs

    # -- reading the conversation ----------------------------------------------------------
    @staticmethod
    def _history(
        messages: Sequence[Mapping[str, Any]], text_mode: bool
    ) -> tuple[int, list[str], str]:
        """(successful calls so far, texts said to the customer, last customer message).

        A call that arrived damaged (its JSON cut in transit) does not count, so the oracle tries
        it again; a call the tool itself rejected counts (ground truths contain such calls).
        """
        calls = 0
        said: list[str] = []
        last_user = ""
        pending: dict[str, str] = {}  # tool_call_id -> name, waiting for its result
        for m in messages:
            role = m.get("role")
            content = m.get("content") or ""
            if role == "assistant":
                if text_mode:
                    name, args, _ = parse_text_action(content)
                    if name == RESPOND and args:
                        said.append(str(args.get("content", "")))
                    elif name:
                        pending["text"] = name
                    continue
                for tc in m.get("tool_calls") or []:
                    fn = tc.get("function", {})
                    if fn.get("name") == RESPOND:
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            said.append(str(json.loads(fn.get("arguments") or "{}")["content"]))
                    else:
                        pending[tc.get("id", "")] = fn.get("name", "")
                if not m.get("tool_calls") and content:
                    said.append(content)
            elif role == "tool":
                if pending.pop(m.get("tool_call_id", ""), None) is not None:
                    calls += 0 if _damaged(content) else 1
            elif role == "user":
                if content.startswith("Observation:"):
                    if pending.pop("text", None):
                        calls += 0 if _damaged(content) else 1
                else:
                    last_user = content
        return calls, said, last_user

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        md = request.metadata
        task = _task(self.domain, md)
        text_mode = not request.tools
        actions, outputs = self.plan(task, md)
        calls, said, last_user = self._history(request.messages, text_mode)

        call = None
        text = None
        if calls < len(actions):
            nxt = actions[calls]
            first_write = nxt.name in self.domain.write_tools and not any(
                a.name in self.domain.write_tools for a in actions[:calls]
            )
            asked = bool(said) and _CONFIRM_MARK in said[-1]
            if first_write and not (asked and _YES_RE.search(last_user)):
                if asked and len(said) >= 4:
                    call = nxt  # the customer keeps talking past the question: go on
                else:
                    text = self._confirmation(actions[calls:], clarify=asked)
            else:
                call = nxt
        elif not any("anything else" in s for s in said):
            parts = (
                ["Everything is done."]
                if task.actions
                else ["I'm sorry, but under our policy I can't make that change."]
            )
            if outputs:
                parts.append("For your records: " + "; ".join(outputs) + ".")
            parts.append("Is there anything else I can help you with?")
            text = " ".join(parts)
        else:
            text = "You're welcome. Have a good day!"

        if call is not None:
            if text_mode:
                thought = (
                    "Next step of the procedure." if md.get("agent_strategy") == "react" else None
                )
                content = format_text_action(call.name, call.arguments, thought)
                return self._response(request, content)
            args = json.dumps(dict(call.arguments))
            tc = ToolCall(f"call_{md.get('task_id')}_{len(request.messages)}", call.name, args)
            return self._response(request, None, [tc])
        assert text is not None
        if text_mode:
            thought = "Talk to the customer." if md.get("agent_strategy") == "react" else None
            return self._response(request, format_text_action(RESPOND, {"content": text}, thought))
        if any(t["function"]["name"] == RESPOND for t in request.tools or ()):
            args = json.dumps({"content": text})  # tool_choice=required: talk through respond
            tc = ToolCall(f"call_{md.get('task_id')}_say{len(said)}", RESPOND, args)
            return self._response(request, None, [tc])
        return self._response(request, text)

    @staticmethod
    def _confirmation(remaining: Sequence[Any], clarify: bool) -> str:
        steps = "; ".join(
            f"{a.name.replace('_', ' ')} ({', '.join(f'{k}={v}' for k, v in a.arguments.items())})"
            for a in remaining
        )
        lead = "Let me explain more simply. I will now:" if clarify else "Here is what I will do:"
        return f"{lead} {steps}. {_CONFIRM_MARK}"

    @staticmethod
    def _response(
        request: ChatRequest, content: str | None, calls: list[ToolCall] | None = None
    ) -> ChatResponse:
        p, c = _usage(request.messages, content or json.dumps([t.arguments for t in calls or []]))
        return ChatResponse(content, calls or [], None, p, c, 0.0)


class _Action:
    __slots__ = ("arguments", "name")

    def __init__(self, name: str, arguments: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.arguments = arguments or {"summary": "The customer needs further help."}


_ID_WORDS = {
    "email": ("e-mail", "email", "mail"),
    "name": ("name",),
    "phone": ("phone", "number"),
    "booking_id": ("booking", "reservation", "confirmation"),
}


class ScriptedUser(ModelClient):
    synthetic = True

    def __init__(self, domain: Domain, options: Mapping[str, Any] | None = None) -> None:
        opts = dict(options or {})
        self.domain = domain
        self.patience = int(_number(opts.pop("patience", 12), "patience", 1, 10_000))
        self.latency = _number(opts.pop("latency", 0.0), "latency", 0.0, 3600.0)
        if opts:
            raise ValueError(f"unknown scripted user options: {', '.join(sorted(opts))}")

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        md = request.metadata
        purpose = md.get("purpose", "reply")
        if purpose == "verify":
            return ChatResponse("YES", prompt_tokens=10, completion_tokens=1)
        calls = self._tool_calls(request, md)
        if calls:
            return ChatResponse(None, calls, prompt_tokens=10, completion_tokens=10 * len(calls))
        message = self._message(request.messages, md)
        if purpose == "reflect":
            return ChatResponse(f"The message was fine.\nMessage: {message}")
        if md.get("user_format") == "react":
            message = f"Thought: I will reply as my goal says.\nMessage: {message}"
        p, c = _usage(request.messages, message)
        return ChatResponse(message, prompt_tokens=p, completion_tokens=c)

    def _tool_calls(self, request: ChatRequest, md: Mapping[str, Any]) -> list[ToolCall]:
        """The task's own customer-side gold calls (``metadata["user_actions"]``), made once,
        all at the start, when the customer has tools."""
        if not request.tools:
            return []
        actions = list(_task(self.domain, md).metadata.get("user_actions") or ())
        done = sum(1 for m in request.messages if m.get("role") == "tool")
        return [
            ToolCall(f"user_call_{i}", a["name"], json.dumps(a["arguments"]))
            for i, a in enumerate(actions)
            if i >= done
        ]

    def _message(self, messages: Sequence[Mapping[str, Any]], md: Mapping[str, Any]) -> str:
        task = _task(self.domain, md)
        own = [m for m in messages if m.get("role") == "assistant" and not m.get("tool_calls")]
        turn = len(own)
        rng = _rng(md, "user", turn)
        phrases = list(md.get("phrases") or ())
        flavour = (
            (rng.choice(phrases) + " ") if phrases and (turn == 0 or rng.random() < 0.6) else ""
        )
        if turn == 0:
            opening = task.opening or task.instruction.split(".")[0] + "."
            return f"{flavour}{opening}"
        if turn >= self.patience:
            return f"{flavour}I've spent long enough on this. Goodbye. {STOP_GAVE_UP}"
        agent = str(messages[-1].get("content") or "") if messages[-1].get("role") == "user" else ""
        low = agent.lower()
        if _CONFIRM_MARK.lower() in low or "would you like me to" in low:
            confused = "confusion" in md.get("emotions", ())
            already = any("what exactly" in str(m.get("content")) for m in own)
            if confused and not already:
                return f"{flavour}Sorry, what exactly will that change for me?"
            return f"{flavour}Yes, please go ahead."
        asked = [
            k for k, words in _ID_WORDS.items() if k in task.facts and any(w in low for w in words)
        ]
        if asked and "?" in agent:
            facts = ", ".join(f"my {k.replace('_', ' ')} is {task.facts[k]}" for k in asked)
            return f"{flavour}Sure, {facts}."
        return f"{flavour}Thank you, that's everything I needed. {STOP_GOAL_MET}"


class ScriptedJudge(ModelClient):
    """A stand-in judge: accepts every claim ("YES", or every NL assertion met, as JSON), and
    labels emotions with emotau's lexicon (see the module docstring)."""

    synthetic = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        if options:
            raise ValueError(f"unknown scripted judge options: {', '.join(sorted(options))}")

    async def complete(self, request: ChatRequest) -> ChatResponse:
        md = request.metadata
        if md.get("purpose") == "nl_assertions":
            n = int(md.get("statements", 0))
            results = [
                {"statement": i, "met": True, "justification": "scripted judge"}
                for i in range(1, n + 1)
            ]
            text = json.dumps({"results": results})
            return ChatResponse(text, prompt_tokens=10 * n, completion_tokens=len(text) // 4)
        if md.get("purpose") == "emotion_labels":
            text = json.dumps({"labels": self.emotion_labels(request.messages, md.get("count"))})
            p, c = _usage(request.messages, text)
            return ChatResponse(text, prompt_tokens=p, completion_tokens=c)
        return ChatResponse("YES", prompt_tokens=10, completion_tokens=1)

    @staticmethod
    def emotion_labels(
        messages: Sequence[Mapping[str, Any]], count: Any = None
    ) -> list[dict[str, Any]]:
        """``[{"id", "emotion", "intensity"}]`` for messages 1..``count`` of the prompt (all the
        prompt has when ``count`` is missing). An id the prompt lacks gets no label, so the
        caller's parser rejects the answer instead of reading a made-up one."""
        found = _judged_messages(messages)
        try:
            n = int(count)
        except (TypeError, ValueError):
            n = max(found, default=0)
        labels = []
        for i in range(1, n + 1):
            if i in found:
                emotion, intensity = lexicon_label(found[i])
                labels.append({"id": i, "emotion": emotion, "intensity": intensity})
        return labels


def _judged_messages(messages: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """The messages to label by id: the lines ``{"id": i, "text": "..."}`` of the first user
    message that has any (the judge labeller's prompt writes one JSON object per line; a retry
    repeats that prompt first, then the rejected answer and the complaint)."""
    for m in messages:
        if m.get("role") != "user":
            continue
        found: dict[int, str] = {}
        for line in str(m.get("content") or "").splitlines():
            line = line.strip()
            if not (line.startswith("{") and line.endswith("}")):
                continue
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                continue
            i = item.get("id")
            if isinstance(i, int) and not isinstance(i, bool):
                found.setdefault(i, item["text"])
        if found:
            return found
    return {}


def scripted_client(role: str, config: Any, domain: Domain) -> ModelClient:
    options = dict(config.options)
    if role == "agent":
        return ScriptedAgent(domain, options)
    if role == "user":
        return ScriptedUser(domain, options)
    if role == "judge":
        return ScriptedJudge(options)
    raise ValueError(f"no scripted model for role {role!r}")


def provider(role: str, config: Any, domain: Domain, settings: Any) -> ModelClient:
    """The ``scripted`` model provider: the offline models, in process."""
    return scripted_client(role, config, domain)
