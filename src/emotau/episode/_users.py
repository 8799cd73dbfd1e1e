"""User (customer) simulator strategies.

Every episode builds its own simulator with its own system prompt (base prompt + variant block)
and its own message history, so episodes of different variants never share state.

The simulator's history has the roles flipped, as the customer model sees it: the agent's
messages are ``user`` messages and the customer's own lines are ``assistant`` messages.

Strategies:
- ``llm``: one call per customer message.
- ``react``: the model writes a private ``Thought:`` and then ``Message:``; only the message
  reaches the agent, the thought is kept in the trajectory.
- ``verify``: each candidate message is checked by a second call against the goal and rules;
  up to ``max_attempts`` candidates, only an accepted one enters the history.
- ``reflection``: like verify, but a rejected candidate is followed by a reflection call that
  explains the problem and writes an improved message.

Customer-side tools (a domain's ``user_tools``, e.g. tau2's phone in telecom) work with every
strategy: the customer model may answer with tool calls instead of a message; they are executed
at once (through ``run_tool``, against the episode's environment), their results go back into the
customer's history, and the model is asked again, up to ``MAX_TOOL_ROUNDS`` times per message.
"""

from __future__ import annotations

import json
import re
from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from emotau.core import (
    ChatRequest,
    ChatResponse,
    InfraError,
    ModelClient,
    Registry,
    ToolResult,
    UserSimulatorError,
    subclass_of,
)

STOP_GOAL_MET = "###STOP###"
STOP_GAVE_UP = "###QUIT###"
#: stops that upstream tau2's customers use: transferred to a human, request out of scope
STOP_TRANSFER = "###TRANSFER###"
STOP_OUT_OF_SCOPE = "###OUT-OF-SCOPE###"
#: token -> the stop it means, checked in this order
STOPS = {
    STOP_GAVE_UP: "gave_up",
    STOP_TRANSFER: "transfer",
    STOP_OUT_OF_SCOPE: "out_of_scope",
    STOP_GOAL_MET: "goal_met",
}
#: most rounds of customer tool calls before one message to the agent
MAX_TOOL_ROUNDS = 10
#: runs one customer tool call: (name, arguments) -> result
ToolRunner = Callable[[str, Mapping[str, Any]], ToolResult]
#: the support chat's greeting that opens the customer's history (the agent never sees it)
CHAT_OPENER = "Hello, you're through to customer support. How can I help you today?"

_BASE_PROMPT = """\
You are role-playing a customer who has contacted a company's support chat. A support agent
will answer you. Your goal is described below; the agent does not know it.

# Your goal
{instruction}

# How to play the customer
- Write only the customer's next message: one message per turn, plain text, no labels.
- Give information step by step, as the agent needs it; do not hand over the whole goal at once,
  and do not copy the goal's sentences word for word.
- Use only the facts in your goal. If you are asked for something your goal does not give, say
  that you do not know or do not have it. Never make up names, numbers, dates or ids.
- Accept or refuse what the agent proposes exactly as your goal says.
- When everything in your goal has been taken care of, write a short closing message that ends
  with {stop}.
- If the agent cannot or will not do what you need and you decide to leave without it, write a
  short closing message that ends with {quit}.
- You are the customer, never the agent: do not offer to look things up or perform actions.
"""

_REACT_FORMAT = """
# Reply format
Each reply has two parts. First a line starting with `Thought:` where you privately reason about
your goal and what to say next (the agent never sees it). Then a line starting with `Message:`
followed by exactly the message the agent will receive.
"""

_VERIFY_PROMPT = """\
You review one message written by a simulated customer in a support chat.

Customer's goal:
{instruction}

Conversation so far (agent and customer):
{transcript}

Candidate next customer message:
{candidate}

Is the candidate a plausible next message from this customer: consistent with the goal, not
inventing facts, not acting as the agent, and ending the chat only if the goal has been dealt
with? Answer with one word, YES or NO."""

_REFLECT_PROMPT = """\
The candidate customer message below was judged inconsistent with the customer's goal or the
role-play rules.

Customer's goal:
{instruction}

Conversation so far (agent and customer):
{transcript}

Rejected candidate:
{candidate}

In one or two sentences explain what is wrong, then write a corrected message on a line that
starts with `Message:`."""


def user_prompt_templates() -> list[str]:
    """emotau's own user-simulator prompt templates, in a fixed order."""
    return [CHAT_OPENER, _BASE_PROMPT, _REACT_FORMAT, _VERIFY_PROMPT, _REFLECT_PROMPT]


def base_user_prompt(instruction: str) -> str:
    """emotau's own control prompt for a customer with this goal."""
    return _BASE_PROMPT.format(
        instruction=instruction.strip(), stop=STOP_GOAL_MET, quit=STOP_GAVE_UP
    )


@dataclass
class UserTurn:
    """One customer message as the agent will see it, plus what produced it."""

    text: str
    stop: str | None = None  # "goal_met" | "gave_up" | "transfer" | "out_of_scope"
    raw: list[dict[str, Any]] = field(default_factory=list)  # every call: purpose, content, ...
    #: customer tool calls made before this message: name, arguments, result, error
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: how the call that wrote the message ended: ``finish_reason``, ``prompt_tokens``,
    #: ``completion_tokens`` (see :meth:`emotau.core.ChatResponse.ending`; None: not known)
    ending: dict[str, Any] = field(
        default_factory=lambda: dict.fromkeys(
            ("finish_reason", "prompt_tokens", "completion_tokens")
        )
    )


def split_stop(text: str) -> tuple[str, str | None]:
    """Remove stop tokens; return the visible text and which stop (if any) was given.

    emotau's prompts use ``###STOP###`` and ``###QUIT###``; upstream tau2's customers also end
    with ``###TRANSFER###`` and ``###OUT-OF-SCOPE###``. A text with several takes the first of
    quit, transfer, out of scope, goal met.
    """
    stop = next((s for token, s in STOPS.items() if token in text), None)
    if stop:
        for token in STOPS:
            text = text.replace(token, "")
        text = text.strip()
    return text, stop


def _record(purpose: str, response: ChatResponse) -> dict[str, Any]:
    """One user-model call as the trajectory keeps it (content, reasoning, usage)."""
    rec: dict[str, Any] = {"purpose": purpose, "content": response.content}
    if response.reasoning:
        rec["reasoning"] = response.reasoning
    rec["latency_s"] = round(response.latency_s, 6)
    rec["tokens"] = [response.prompt_tokens, response.completion_tokens]
    rec["finish_reason"] = response.finish_reason
    if response.retries:
        rec["retries"] = response.retries
    if response.cost_usd is not None:
        rec["cost_usd"] = round(response.cost_usd, 8)
    return rec


class UserStrategy(ABC):
    name: ClassVar[str]
    format: ClassVar[str] = "plain"

    def __init__(
        self,
        client: ModelClient,
        system_prompt: str,
        instruction: str,
        metadata: Mapping[str, Any],
        max_attempts: int = 3,
        tools: list[dict[str, Any]] | None = None,
        run_tool: ToolRunner | None = None,
    ) -> None:
        self.client = client
        self.tools = tools or None
        self.run_tool = run_tool
        self._tool_log: list[dict[str, Any]] = []  # this message's tool calls so far
        self.instruction = instruction
        #: exactly what the model gets (see ``emotau.episode.build_user_prompt``)
        self.system_prompt = system_prompt
        self.metadata = {
            **metadata,
            "role": "user",
            "user_strategy": self.name,
            "user_format": self.format,
        }
        self.max_attempts = max_attempts
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": CHAT_OPENER},
        ]

    @classmethod
    def prompt_suffix(cls) -> str:
        """This strategy's reply-format block, added to a customer prompt that sets no format
        (see ``emotau.episode.build_user_prompt``)."""
        return ""

    async def start(self) -> UserTurn:
        return await self._next()

    async def reply(self, agent_text: str) -> UserTurn:
        self.messages.append({"role": "user", "content": agent_text})
        return await self._next()

    # -- the parts strategies vary
    async def _call(self, messages: list[dict[str, Any]], purpose: str) -> ChatResponse:
        meta = {**self.metadata, "purpose": purpose}
        if purpose != "reply" or self.tools is None:
            response = await self.client.complete(ChatRequest(messages=messages, metadata=meta))
        else:
            response = await self._reply_with_tools(messages, meta)
        if response.content is None or not response.content.strip():
            what = (
                f"the user model's {purpose} call got an empty reply ({response.describe_ending()})"
            )
            if response.finish_reason == "length":  # the model's own failure: not retried
                raise UserSimulatorError(f"{what}: it spent its whole token budget on nothing")
            raise InfraError(what)
        return response

    async def _reply_with_tools(
        self, messages: list[dict[str, Any]], meta: dict[str, Any]
    ) -> ChatResponse:
        """A reply call with the customer's tools: run its tool calls until it writes text."""
        for _ in range(MAX_TOOL_ROUNDS):
            request = ChatRequest(messages=messages, tools=self.tools, metadata=meta)
            response = await self.client.complete(request)
            if not response.tool_calls:
                return response
            messages.append(response.message())  # kept: the tools really ran
            for call in response.tool_calls:
                try:
                    if call.error:  # a <tool_call> written as text that could not be read
                        raise ValueError(call.error)
                    args = json.loads(call.arguments or "{}")
                    if not isinstance(args, dict):
                        raise ValueError("arguments are not a JSON object")
                except ValueError as exc:
                    result = ToolResult(f"Error: invalid arguments: {exc}", error=True)
                    args = None
                else:
                    assert self.run_tool is not None, "tools without run_tool"
                    result = self.run_tool(call.name, args)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": result.content}
                )
                self._tool_log.append(
                    {"id": call.id, "name": call.name, "arguments": args}
                    | ({"raw_arguments": call.arguments} if args is None else {})
                    | {"result": result.content, "error": result.error}
                )
        raise UserSimulatorError(
            f"customer made {MAX_TOOL_ROUNDS} rounds of tool calls without writing a message"
        )

    def parse(self, content: str) -> str:
        """The message the agent will see from one raw completion."""
        return content.strip()

    async def _candidate(self, raw: list[dict[str, Any]]) -> tuple[ChatResponse, str]:
        """One reply call: the response and the message it holds."""
        response = await self._call(self.messages, "reply")
        raw.append(_record("reply", response))
        return response, self.parse(response.content or "")

    async def _next(self) -> UserTurn:
        raw: list[dict[str, Any]] = []
        source, message = await self._candidate(raw)
        return self._accept(source.content or "", message, raw, source)

    def _accept(
        self,
        content: str,
        message: str,
        raw: list[dict[str, Any]],
        source: ChatResponse | None = None,
    ) -> UserTurn:
        """The turn for ``message``; ``content`` enters the history, ``source`` is the call
        that wrote the message."""
        self.messages.append({"role": "assistant", "content": content})
        text, stop = split_stop(message)
        calls, self._tool_log = self._tool_log, []
        turn = UserTurn(text, stop, raw, calls)
        if source is not None:
            turn.ending = source.ending()
        return turn

    def transcript(self) -> str:
        lines = []
        for m in self.messages[2:]:
            if m["role"] == "tool":
                lines.append(f"(the customer's tool answered: {m['content']})")
            elif m.get("tool_calls"):
                names = ", ".join(c["function"]["name"] for c in m["tool_calls"])
                lines.append(f"(the customer used a tool: {names})")
            elif m["role"] == "user":
                lines.append(f"Agent: {m['content']}")
            else:
                lines.append(f"Customer: {self.parse(m['content'])}")
        return "\n".join(lines) or "(no messages yet)"


#: entry-point group ``emotau.users``: UserStrategy subclasses whose ``name`` is their entry
#: point's name
USER_STRATEGIES: Registry[type[UserStrategy]] = Registry(
    "user strategy", check=subclass_of(UserStrategy, named=True)
)


class LLMUser(UserStrategy):
    name = "llm"


#: where the message starts: emotau's "Message:", or tau-bench's react "User Response:"
_MESSAGE_RE = re.compile(r"^\s*(?:Message|User Response)\s*:", re.IGNORECASE | re.MULTILINE)
_THOUGHT_RE = re.compile(r"^\s*Thought\s*:", re.IGNORECASE | re.MULTILINE)


def parse_react_message(content: str) -> str:
    """The text of the last ``Message:`` block, up to any later ``Thought:``; never the thought.

    Output with no markers at all is taken as a plain message. A thought without a message, or
    an empty message, raises :class:`UserSimulatorError`.
    """
    matches = list(_MESSAGE_RE.finditer(content))
    if matches:
        rest = content[matches[-1].end() :]
        later_thought = _THOUGHT_RE.search(rest)
        message = (rest[: later_thought.start()] if later_thought else rest).strip()
        if not message:
            raise UserSimulatorError("react user wrote an empty Message")
        return message
    if _THOUGHT_RE.search(content):
        raise UserSimulatorError("react user wrote a Thought but no Message")
    return content.strip()


class ReactUser(UserStrategy):
    name = "react"
    format = "react"

    @classmethod
    def prompt_suffix(cls) -> str:
        return _REACT_FORMAT

    def parse(self, content: str) -> str:
        return parse_react_message(content)

    async def _next(self) -> UserTurn:
        raw: list[dict[str, Any]] = []
        for attempt in range(self.max_attempts):
            response = await self._call(self.messages, "reply")
            raw.append(_record("reply", response))
            content = response.content or ""
            try:
                message = self.parse(content)
            except UserSimulatorError:
                if attempt == self.max_attempts - 1:
                    raise
                continue
            return self._accept(content, message, raw, response)
        raise AssertionError("unreachable")


def _is_yes(text: str) -> bool:
    return bool(re.match(r"\W*(yes|true|valid|consistent)\b", text.strip(), re.IGNORECASE))


class VerifyUser(UserStrategy):
    name = "verify"

    async def _verify(self, message: str, raw: list[dict[str, Any]]) -> bool:
        prompt = _VERIFY_PROMPT.format(
            instruction=self.instruction, transcript=self.transcript(), candidate=message
        )
        response = await self._call([{"role": "user", "content": prompt}], "verify")
        ok = _is_yes(response.content or "")
        raw.append({**_record("verify", response), "accepted": ok})
        return ok

    async def _next(self) -> UserTurn:
        raw: list[dict[str, Any]] = []
        for _ in range(self.max_attempts):
            source, message = await self._candidate(raw)
            if await self._verify(message, raw):
                break
        else:
            raw.append({"purpose": "verify", "content": None, "note": "no candidate accepted"})
        return self._accept(source.content or "", message, raw, source)


class ReflectionUser(VerifyUser):
    name = "reflection"

    async def _next(self) -> UserTurn:
        raw: list[dict[str, Any]] = []
        source, message = await self._candidate(raw)
        content = source.content or ""
        for _ in range(self.max_attempts - 1):
            if await self._verify(message, raw):
                break
            prompt = _REFLECT_PROMPT.format(
                instruction=self.instruction, transcript=self.transcript(), candidate=message
            )
            response = await self._call([{"role": "user", "content": prompt}], "reflect")
            raw.append(_record("reflect", response))
            reflected = response.content or ""
            if not _MESSAGE_RE.search(reflected):
                continue  # unusable reflection: keep the previous candidate
            try:
                message = parse_react_message(reflected)
            except UserSimulatorError:
                continue
            content, source = message, response
        return self._accept(content, message, raw, source)
