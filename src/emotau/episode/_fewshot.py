"""The ``few-shot`` agent strategy: native tool calls, with example conversations in the
system prompt.

This is the strategy of upstream tau-bench's ``--agent-strategy few-shot``, written anew: the
examples come from a *displays file* (JSON Lines; each line an object whose
``"messages_display"`` is one whole conversation as text, the format of tau-bench's
``few_shot_data/*.jsonl``, or a bare JSON string). Each episode's prompt holds ``examples`` of
them (5 unless the spec says otherwise), drawn without replacement from the run seed, the task
and the trial: every variant of a task and trial sees the same examples (a paired comparison),
and a rerun sees the same ones again. Upstream draws them from its process-wide random state.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from emotau.core import UserError
from emotau.episode._agents import AgentStrategy, ToolCallingAgent

#: how many examples an episode's prompt holds unless ``agent_options.examples`` says
DEFAULT_EXAMPLES = 5

_PROMPT = """\
{policy}

# Example conversations

Below are {count} earlier conversations between a support agent and customers. Use them to see
how the tools are called and how the policy is applied step by step. They are illustrations
only: the people, accounts and details in them belong to other cases, so never carry any of it
over to the customer you are helping now.

{examples}
"""

_EXAMPLE = "## Example {number}\n\n{display}"


def read_displays(path: str | Path) -> tuple[str, ...]:
    """The conversations of a displays file; :class:`UserError` (one line) if it has none or
    a line is not one."""
    where = f"few-shot displays file {str(path)!r}"
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {where}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{where} is not UTF-8 text") from None
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}, line {number}: not JSON ({exc.msg})") from None
        display = obj.get("messages_display") if isinstance(obj, dict) else obj
        if not isinstance(display, str) or not display.strip():
            raise UserError(
                f"{where}, line {number}: expected an object with a non-empty "
                '"messages_display" string (or a JSON string)'
            )
        out.append(display.strip())
    if not out:
        raise UserError(f"{where} has no displays (one JSON object per line)")
    return tuple(out)


class FewShotAgent(ToolCallingAgent):
    """Tool calling with example conversations after the policy (see the module)."""

    name = "few-shot"
    #: set by :meth:`configured`: the displays file's conversations and how many to show
    displays: ClassVar[tuple[str, ...]] = ()
    examples: ClassVar[int] = DEFAULT_EXAMPLES

    @classmethod
    def configured(cls, options: Mapping[str, Any]) -> type[AgentStrategy]:
        unknown = sorted(set(options) - {"displays_path", "examples"})
        if unknown:
            raise UserError(
                f"agent strategy 'few-shot': unknown agent_options {', '.join(unknown)}; "
                "allowed: displays_path, examples"
            )
        path = options.get("displays_path")
        if not isinstance(path, str) or not path:
            raise UserError(
                "agent strategy 'few-shot' needs a displays file: --few-shot-displays-path "
                "FILE (agent_options.displays_path in a config)"
            )
        examples = options.get("examples", DEFAULT_EXAMPLES)
        if not isinstance(examples, int) or isinstance(examples, bool) or not 0 < examples <= 100:
            raise UserError(
                f"agent strategy 'few-shot': examples must be an integer from 1 to 100, "
                f"got {examples!r}"
            )
        displays = read_displays(path)
        if len(displays) < examples:
            raise UserError(
                f"few-shot displays file {path!r} has {len(displays)} displays, fewer than the "
                f"{examples} examples asked for (--few-shot-examples)"
            )
        attrs = {"displays": displays, "examples": examples, "__module__": cls.__module__}
        return type(cls.__name__, (cls,), attrs)

    @classmethod
    def options_identity(cls) -> dict[str, Any]:
        blob = json.dumps([_PROMPT, _EXAMPLE, list(cls.displays)]).encode()
        return {
            "displays": len(cls.displays),
            "examples": cls.examples,
            "digest": hashlib.sha256(blob).hexdigest()[:16],
        }

    def chosen(self) -> Sequence[str]:
        """This episode's examples: drawn from the seed, the task and the trial alone."""
        md = self.metadata
        rng = random.Random(f"few-shot:{md.get('seed', 0)}:{md.get('task_id')}:{md.get('trial')}")
        return rng.sample(self.displays, min(self.examples, len(self.displays)))

    def build_system_prompt(self, policy: str, tools: list[dict[str, Any]]) -> str:
        chosen = self.chosen()
        examples = "\n\n".join(
            _EXAMPLE.format(number=i, display=d) for i, d in enumerate(chosen, 1)
        )
        return _PROMPT.format(policy=policy, count=len(chosen), examples=examples).rstrip("\n")
