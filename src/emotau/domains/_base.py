"""The ``Domain`` interface: what a customer-service world must provide to emotau.

A domain supplies
- the agent's tools (OpenAI function schemas) and policy text (the agent's system prompt),
- tasks: the hidden customer goal, the ground-truth actions and the required outputs,
- a fresh :class:`Environment` per episode that executes tool calls against its own state,
- a reward with its breakdown.

The default :meth:`Domain.evaluate` implements the tau-bench style reward: the final database
state must equal the state reached by replaying the ground-truth actions on a fresh
environment, and every required output must have been said to the customer.
See ``docs/domains.md`` for a worked example (the built-in ``hotel`` domain).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from emotau.core import RewardResult, Task, ToolResult

if TYPE_CHECKING:
    from emotau.core import ModelClient


@dataclass(frozen=True)
class EpisodeOutcome:
    """How an episode went, as :meth:`Domain.score` sees it (read it, never change it).

    ``termination`` is the engine's reason (a :class:`emotau.core.Termination`); ``said`` every
    message the agent sent to the customer; ``called`` the tools the environment executed, in
    order; ``turns`` the record's turns in order (customer messages and agent steps with their
    tool calls, see ``docs/results.md``); ``judge`` the episode's view of the judge role's
    client (``None`` when the caller has none); ``metadata`` the episode's request metadata.
    """

    termination: str
    said: Sequence[str]
    called: Sequence[str]
    turns: Sequence[Mapping[str, Any]] = ()
    judge: ModelClient | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Environment(ABC):
    """The per-episode world. One instance per episode; never shared."""

    @abstractmethod
    def execute(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run one tool call. Unknown tools and bad arguments return ``error=True``, never raise."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A hash of the state that matters for the reward (equal states, equal hashes)."""

    def execute_user(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run one of the *customer's* tool calls (see :meth:`Domain.user_tools`)."""
        return ToolResult(f"Error: the customer has no tool {name!r}", error=True)


class Domain(ABC):
    """A customer-service world. Subclass it, or implement the same attributes and methods."""

    #: short identifier, e.g. ``"hotel"``
    name: str = ""
    #: changes whenever tasks, tools, data or policy change; recorded in every run
    version: str = "0"
    #: tools that end the episode (transfer to a human)
    terminal_tools: frozenset[str] = frozenset({"transfer_to_human_agents"})
    #: tools that change the state (used by the scripted agent to ask for confirmation)
    write_tools: frozenset[str] = frozenset()
    #: run :meth:`evaluate` in a worker thread (for rewards that take tens of milliseconds)
    evaluate_in_thread: bool = False
    #: the prompt of :meth:`user_system_prompt` sets no reply format: emotau adds the user
    #: strategy's format block (react's Thought/Message) to it, before the variant's block
    user_prompt_needs_format: bool = False

    def __init__(self) -> None:
        self._gt_fingerprints: dict[int, str] = {}

    @abstractmethod
    def tasks(self) -> Sequence[Task]:
        """All tasks, indexed by position: ``tasks()[i].id == i``."""

    @abstractmethod
    def tools(self) -> list[dict[str, Any]]:
        """OpenAI function schemas (``{"type": "function", "function": {...}}``)."""

    @abstractmethod
    def policy(self) -> str:
        """The agent's system prompt."""

    @abstractmethod
    def new_environment(self, task: Task) -> Environment:
        """A fresh environment for one episode of ``task``."""

    # ----------------------------------------------------------------- hooks with defaults
    def user_system_prompt(self, task: Task, strategy: str) -> str | None:
        """Override to supply the control user's system prompt (e.g. an upstream benchmark's).

        ``None`` means: use emotau's own prompt for that user strategy. Otherwise the text is
        used as it is (see :attr:`user_prompt_needs_format`) and a variant appends its block.
        """
        return None

    async def score(self, task: Task, env: Environment, outcome: EpisodeOutcome) -> RewardResult:
        """The episode's reward; what the engine calls when an episode ends.

        The default runs :meth:`evaluate` (in a worker thread when :attr:`evaluate_in_thread`,
        so a slow reward does not stall other episodes). Override it when the reward needs more
        than the final state and what was said: how the episode ended, the ordered turns, or an
        LLM judge (awaited here, on the event loop).
        """
        args = (task, env, outcome.said, outcome.called)
        if self.evaluate_in_thread:
            return await asyncio.to_thread(self.evaluate, *args)
        return self.evaluate(*args)

    def user_tools(self, task: Task) -> list[dict[str, Any]]:
        """OpenAI function schemas of the tools the *customer* may call in ``task`` (e.g. a
        phone's settings); executed by :meth:`Environment.execute_user`. Most domains have none.
        """
        return []

    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools()]

    def replay_ground_truth(self, task: Task) -> Environment:
        """A fresh environment after the task's ground-truth actions (terminal tools skipped)."""
        env = self.new_environment(task)
        for action in task.actions:
            if action.name not in self.terminal_tools:
                env.execute(action.name, action.arguments)
        return env

    def ground_truth_fingerprint(self, task: Task) -> str:
        """Fingerprint after replaying the task's actions on a fresh environment (cached)."""
        fp = self._gt_fingerprints.get(task.id)
        if fp is None:
            fp = self._gt_fingerprints[task.id] = self.replay_ground_truth(task).fingerprint()
        return fp

    def evaluate(
        self,
        task: Task,
        env: Environment,
        said: Sequence[str],
        called: Sequence[str] | None = None,
    ) -> RewardResult:
        """Binary reward: state equal to the ground truth AND every required output said.

        ``said`` is every message the agent sent to the customer; ``called`` the names of the
        tool calls the agent executed (the engine always passes it). When given, a transfer to a
        human must happen exactly when the ground truth has one: an agent that hands off a
        customer it should have served, or keeps one it should have handed off, fails.
        """
        db_match = env.fingerprint() == self.ground_truth_fingerprint(task)
        norm = [normalize_text(m) for m in said if m]
        outputs = {o: any(output_mentioned(o, s) for s in norm) for o in task.outputs}
        ok = db_match and all(outputs.values())
        breakdown: dict[str, Any] = {"db_match": db_match, "outputs": outputs}
        if called is not None:
            required = any(a.name in self.terminal_tools for a in task.actions)
            done = any(name in self.terminal_tools for name in called)
            breakdown["transfer"] = {"required": required, "done": done}
            ok = ok and required == done
        return RewardResult(1.0 if ok else 0.0, breakdown)


def git_commit(root: Path) -> str | None:
    """The first 12 hex digits of ``HEAD`` of the git checkout at ``root`` (read only), or
    ``None`` when it is not one; used to record which upstream benchmark a run used."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha[:12] or None


# --------------------------------------------------------------------------- output matching
_TRAILING_ZEROS = re.compile(r"(\d\.\d*?)0+(?!\d)")


_BARE_POINT = re.compile(r"(\d)\.(?!\d)")


_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower case, no thousands commas, no trailing decimal zeros, single spaces.

    ``"$1,212.50"`` -> ``"$1212.5"``, ``"516.0"`` -> ``"516"``.
    """
    text = text.lower().replace(",", "")
    text = _TRAILING_ZEROS.sub(r"\1", text)
    text = _BARE_POINT.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


def output_mentioned(output: str, normalized_message: str) -> bool:
    """Whether ``output`` appears in a normalized message as a whole token sequence.

    Unlike a plain substring test, ``"10"`` does not match ``"100"``, ``"10.5"`` or ``"3.10"``,
    while ``"212.50"`` matches ``"$212.5"`` and ``"1,212"`` matches ``"1212.00"``.
    """
    needle = normalize_text(output)
    pattern = r"(?<![a-z0-9])(?<!\d\.)" + re.escape(needle) + r"(?![a-z0-9]|\.\d)"
    return re.search(pattern, normalized_message) is not None


# --------------------------------------------------------------------------- state helper
def freeze(obj: Any) -> Any:
    """Deep read-only copy: dicts become mapping proxies, lists become tuples."""
    if isinstance(obj, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in obj.items()})
    if isinstance(obj, list | tuple):
        return tuple(freeze(v) for v in obj)
    return obj


def thaw(obj: Any) -> Any:
    """Deep mutable copy of a (possibly frozen) structure."""
    if isinstance(obj, Mapping):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [thaw(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    """JSON text of a frozen or plain structure (what a tool returns to the agent)."""
    return json.dumps(obj, default=dict, sort_keys=True)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Database:
    """Copy-on-write tables over a frozen base shared by all episodes.

    Reads return frozen records (mutating them raises), :meth:`edit` returns a private mutable
    copy. Creating an episode's state is O(1) and :meth:`fingerprint` hashes only what changed,
    so two databases with the same base have equal fingerprints iff their contents are equal.
    """

    __slots__ = ("_base", "_changes")

    def __init__(self, base: Mapping[str, Mapping[str, Any]]) -> None:
        self._base = base
        self._changes: dict[str, dict[str, Any]] = {}

    @staticmethod
    def freeze_tables(tables: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
        return freeze(tables)

    def get(self, table: str, key: str) -> Any | None:
        """A read-only view of a record (``None`` if absent); use :meth:`edit` to change it."""
        changes = self._changes.get(table)
        if changes is not None and key in changes:
            rec = changes[key]
            return MappingProxyType(rec) if isinstance(rec, dict) else rec
        return self._base.get(table, _EMPTY).get(key)

    def edit(self, table: str, key: str) -> dict[str, Any]:
        """A mutable record that replaces the base one in this database. KeyError if absent."""
        changes = self._changes.setdefault(table, {})
        rec = changes.get(key)
        if rec is None:
            base = self._base.get(table, _EMPTY).get(key) if key not in changes else None
            if base is None:
                raise KeyError(key)
            rec = changes[key] = thaw(base)
        return rec

    def insert(self, table: str, key: str, record: dict[str, Any]) -> None:
        if self.get(table, key) is not None:
            raise KeyError(f"{table}/{key} already exists")
        self._changes.setdefault(table, {})[key] = record

    def delete(self, table: str, key: str) -> None:
        self._changes.setdefault(table, {})[key] = None

    def keys(self, table: str) -> Iterable[str]:
        changes = self._changes.get(table, {})
        base = self._base.get(table, _EMPTY)
        for k in base:
            if changes.get(k, True) is not None:
                yield k
        for k, v in changes.items():
            if v is not None and k not in base:
                yield k

    def values(self, table: str) -> Iterable[Any]:
        for k in self.keys(table):
            yield self.get(table, k)

    def fingerprint(self) -> str:
        diff: dict[str, dict[str, Any]] = {}
        for table, changes in self._changes.items():
            base = self._base.get(table, _EMPTY)
            for key, rec in changes.items():
                old = base.get(key)
                if rec is None and old is None:
                    continue
                if rec is not None and old is not None and thaw(old) == rec:
                    continue
                diff.setdefault(table, {})[key] = rec
        blob = json.dumps(diff, sort_keys=True, default=dict).encode()
        return hashlib.sha256(blob).hexdigest()
