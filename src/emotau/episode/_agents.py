"""Agent strategies: how the agent model's output becomes actions.

- ``tool-calling``: native function calls (OpenAI ``tools``); all calls in a reply are executed.
- ``react``: the model writes a ``Thought:`` and then one ``Action:`` as JSON text.
- ``act``: the same without the thought.
- ``few-shot`` (in ``_fewshot``): ``tool-calling`` whose system prompt also holds example
  conversations drawn from a displays file (tau-bench's few-shot agent).

A malformed action (bad JSON, unknown tool, wrong arguments, a ``<tool_call>`` written as text
that cannot be read) is the agent's own mistake: it gets an error observation and the episode
goes on. A reply with nothing in it is the server's failure (:class:`InfraError`), unless the
model spent its whole token budget on it (:class:`EmptyReplyError`: the agent's failure).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from emotau.core import (
    ChatRequest,
    ChatResponse,
    EmptyReplyError,
    InfraError,
    ModelClient,
    Registry,
    UserError,
    subclass_of,
)

RESPOND = "respond"


@dataclass
class ParsedCall:
    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    error: str | None = None  # set when the call cannot be executed as written
    recovered: str | None = None  # the text format it was recovered from, if any


@dataclass
class AgentTurn:
    """One agent completion turned into either tool calls or a message to the customer."""

    response: ChatResponse
    text: str | None = None
    calls: list[ParsedCall] = field(default_factory=list)


class AgentStrategy(ABC):
    name: ClassVar[str]

    def __init__(
        self,
        client: ModelClient,
        policy: str,
        tools: list[dict[str, Any]],
        metadata: Mapping[str, Any],
        tool_choice: str | None = None,
    ) -> None:
        self.client = client
        self.tools = tools
        self.tool_choice = tool_choice
        self.metadata = {**metadata, "role": "agent", "agent_strategy": self.name}
        self.system_prompt = self.build_system_prompt(policy, tools)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]

    @classmethod
    def configured(cls, options: Mapping[str, Any]) -> type[AgentStrategy]:
        """The strategy set up with a spec's ``agent_options``: the class itself, or a subclass
        that holds what the options load. Raises :class:`UserError` for options it does not
        take (by default: any)."""
        if options:
            raise UserError(
                f"agent strategy {cls.name!r} takes no agent_options; got "
                + ", ".join(sorted(options))
            )
        return cls

    @classmethod
    def options_identity(cls) -> dict[str, Any] | None:
        """What of a :meth:`configured` strategy's options changes results (hashed into the
        run's identity), or None when it has no options."""
        return None

    def build_system_prompt(self, policy: str, tools: list[dict[str, Any]]) -> str:
        return policy

    def add_user_message(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    @abstractmethod
    def add_tool_result(self, call: ParsedCall, content: str) -> None: ...

    @abstractmethod
    async def act(self) -> AgentTurn: ...


#: entry-point group ``emotau.agents``: AgentStrategy subclasses whose ``name`` is their entry
#: point's name
AGENT_STRATEGIES: Registry[type[AgentStrategy]] = Registry(
    "agent strategy",
    check=subclass_of(AgentStrategy, named=True),
    aliases={
        "tool_calling": "tool-calling",
        "function-calling": "tool-calling",
        "few_shot": "few-shot",
    },
)


def _require_output(response: ChatResponse) -> None:
    """A reply with nothing in it: the agent's failure when it spent its whole token budget
    (``finish_reason`` ``"length"``: :class:`EmptyReplyError`), else the server's
    (:class:`InfraError`: never scored)."""
    if not response.blank:
        return
    what = f"the agent model returned an empty reply ({response.describe_ending()})"
    if response.finish_reason == "length":
        raise EmptyReplyError(f"{what}: it spent its whole token budget and wrote nothing")
    raise InfraError(what)


def _parse_arguments(raw: str | None) -> tuple[dict[str, Any] | None, str | None]:
    if raw is None or raw.strip() == "":
        return {}, None
    try:
        args = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(args, dict):
        return None, "arguments must be a JSON object"
    return args, None


#: the extra tool a tool-calling agent gets under ``tool_choice="required"`` to talk
RESPOND_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": RESPOND,
        "description": "Send a message to the customer. Use it whenever you talk to them.",
        "parameters": {
            "type": "object",
            "properties": {"content": {"type": "string", "description": "The message."}},
            "required": ["content"],
        },
    },
}


class ToolCallingAgent(AgentStrategy):
    """Native function calls. Under ``tool_choice="required"`` the model must call a tool on
    every turn, so it also gets ``respond`` (talk to the customer): the fix for small models
    that never call tools on their own under ``auto``."""

    name = "tool-calling"
    _pending_respond: str | None = None

    def _request_tools(self) -> list[dict[str, Any]]:
        return [*self.tools, RESPOND_TOOL] if self.tool_choice == "required" else self.tools

    async def act(self) -> AgentTurn:
        request = ChatRequest(
            messages=self.messages,
            tools=self._request_tools(),
            tool_choice=self.tool_choice,
            metadata=self.metadata,
        )
        response = await self.client.complete(request)
        _require_output(response)
        self.messages.append(response.message())
        if not response.tool_calls:
            return AgentTurn(response, text=response.content or "")
        calls = []
        for tc in response.tool_calls:
            args, err = (None, tc.error) if tc.error else _parse_arguments(tc.arguments)
            calls.append(ParsedCall(tc.id, tc.name, args, tc.arguments, err, tc.recovered))
        if self.tool_choice == "required":
            spoken = [c for c in calls if c.name == RESPOND]
            if len(calls) == 1 and spoken and spoken[0].error is None:
                said = (spoken[0].arguments or {}).get("content")
                if isinstance(said, str) and said.strip():
                    self._pending_respond = spoken[0].id
                    return AgentTurn(response, text=said)
            for c in spoken:
                c.error = c.error or (
                    'respond needs {"content": "<message>"} and must be the only call of its turn'
                )
        return AgentTurn(response, calls=calls)

    def add_user_message(self, text: str) -> None:
        if self._pending_respond is not None:  # every tool call needs its result message
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": self._pending_respond,
                    "name": RESPOND,
                    "content": "Delivered. The customer's reply follows.",
                }
            )
            self._pending_respond = None
        super().add_user_message(text)

    def add_tool_result(self, call: ParsedCall, content: str) -> None:
        self.messages.append(
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content}
        )


# --------------------------------------------------------------------- text actions (ReAct)
_ACTION_RE = re.compile(r"^\s*Action\s*:", re.IGNORECASE | re.MULTILINE)
_FENCE_RE = re.compile(r"^```(?:json)?\s*|\s*```$")


def format_text_action(name: str, arguments: Mapping[str, Any], thought: str | None) -> str:
    """How a text-acting agent writes an action (used by the scripted model too)."""
    action = json.dumps({"name": name, "arguments": dict(arguments)})
    return f"Thought: {thought}\nAction: {action}" if thought is not None else f"Action: {action}"


def parse_text_action(text: str) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """``(name, arguments, error)`` from the last ``Action:`` line of a text-acting agent."""
    matches = list(_ACTION_RE.finditer(text or ""))
    if not matches:
        return None, None, "no 'Action:' found"
    body = _FENCE_RE.sub("", text[matches[-1].end() :].strip()).strip()
    try:
        obj, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        return None, None, f"the action is not valid JSON ({exc.msg})"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, None, 'the action must be {"name": ..., "arguments": {...}}'
    args = obj.get("arguments", {})
    if not isinstance(args, dict):
        return obj["name"], None, "arguments must be a JSON object"
    return obj["name"], args, None


_TEXT_FORMAT = """\
# How to act

You act by writing text, not by calling functions natively. Each reply does exactly one action.
{thought_rule}Then write one line that starts with `Action:` followed by a JSON object with two
keys, "name" and "arguments". To call a tool, use its name and its arguments. To send a message
to the customer, use the name "{respond}" with {{"content": "<your message>"}}.

Example:
{example}

After a tool call you receive its result in a message starting with "Observation:". Customer
messages arrive as they are.

# Tools
{tools}
"""


def agent_prompt_templates() -> list[str]:
    """emotau's own agent prompt templates (the text-acting format), in a fixed order."""
    return [_TEXT_FORMAT]


class _TextActingAgent(AgentStrategy):
    with_thought: ClassVar[bool]
    _counter: int = 0

    def build_system_prompt(self, policy: str, tools: list[dict[str, Any]]) -> str:
        specs = json.dumps([t["function"] for t in tools], indent=1)
        example = format_text_action(
            RESPOND,
            {"content": "Could you tell me your e-mail address?"},
            "I need to identify the customer first." if self.with_thought else None,
        )
        rule = (
            "First write one line that starts with `Thought:` and reasons about the next step. "
            if self.with_thought
            else ""
        )
        fmt = _TEXT_FORMAT.format(thought_rule=rule, respond=RESPOND, example=example, tools=specs)
        return f"{policy}\n\n{fmt}"

    async def act(self) -> AgentTurn:
        request = ChatRequest(messages=self.messages, metadata=self.metadata)
        response = await self.client.complete(request)
        _require_output(response)
        content = response.content or ""
        self.messages.append({"role": "assistant", "content": content})
        name, args, err = parse_text_action(content)
        self._counter += 1
        call_id = f"text-{self._counter}"
        if err is None and name == RESPOND:
            said = args.get("content") if args else None
            if isinstance(said, str):
                return AgentTurn(response, text=said)
            err = 'respond needs {"content": "<message>"}'
        if name is None:
            name = "<unparsed>"
        return AgentTurn(response, calls=[ParsedCall(call_id, name, args, content, err)])

    def add_tool_result(self, call: ParsedCall, content: str) -> None:
        self.messages.append({"role": "user", "content": f"Observation: {content}"})


class ReactAgent(_TextActingAgent):
    name = "react"
    with_thought = True


class ActAgent(_TextActingAgent):
    name = "act"
    with_thought = False
