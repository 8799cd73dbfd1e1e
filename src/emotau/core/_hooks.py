"""Lifecycle hooks: plugins that observe a run without touching the episode loop.

A hook is a :class:`Hook` subclass published in the entry-point group ``emotau.hooks`` and
named in the spec (``hooks = ["name"]``) or with ``emotau run --hook NAME``. emotau calls:

- ``on_run_start(run)`` once per process, before its first episode (``run.run_dir`` is the run
  directory: a hook may write its own files there, e.g. ``run_dir / "activations"``);
- ``on_episode_start(ctx)`` before each episode;
- ``on_model_call(call, request, response)`` after each model call of the episode that
  returned a response (agent, user and judge);
- ``on_episode_end(ctx, record)`` with the finished record, just before it is written;
- ``on_run_end(run)`` once per process, after its last episode (also after an interruption).

Every method is a coroutine (``async def``) and runs in the event loop of the process that runs
the episode; a plain ``def`` also works, but whatever a hook does there delays the episodes.
Hooks observe: they are not part of a spec's identity and must not change the request, the
response or the record they are shown.

Errors: an exception in ``on_run_start`` stops the run before its first episode
(:class:`UserError`). Any other exception is caught: the episode is kept as it is, the error
is listed in the record's ``hook_errors`` and logged (once per hook and method per process)
on the ``emotau.hooks`` logger.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotau.core._chat import ChatRequest, ChatResponse
from emotau.core._errors import UserError
from emotau.core._registry import Registry, subclass_of

log = logging.getLogger("emotau.hooks")


@dataclass(frozen=True)
class RunContext:
    """The run a process is executing."""

    #: the run directory (spec.json, episodes/); a hook may add its own files or folders
    run_dir: Path
    #: the slice of the grid this process runs, ``"i/N"`` (``"0/1"`` for a whole run)
    shard: str
    #: the run's spec as JSON (``RunSpec.model_dump(mode="json")``)
    spec: Mapping[str, Any]
    #: the spec's identity hash (``spec.json``'s ``hash``)
    spec_hash: str


@dataclass(frozen=True)
class EpisodeContext:
    """Which episode of the grid this is."""

    domain: str
    task_id: int
    #: the variant's label, e.g. ``anger:severe`` or ``control``
    variant: str
    trial: int
    #: the run's seed
    seed: int
    #: None when the episode runs outside a run directory
    run: RunContext | None = None


@dataclass(frozen=True)
class ModelCallContext:
    """One model call of an episode."""

    episode: EpisodeContext
    #: ``agent``, ``user`` or ``judge``
    role: str
    #: the index in ``record["turns"]`` of the turn being produced; calls made while scoring
    #: (the judge) have ``len(record["turns"])``
    turn_index: int
    #: what the call is for when a role makes several kinds (``reply``, ``verify``,
    #: ``reflect``, ``nl_assertions``); None when the request says nothing
    purpose: str | None
    #: position of this call among all the episode's model calls, from 0
    call_index: int

    @property
    def domain(self) -> str:
        return self.episode.domain

    @property
    def task_id(self) -> int:
        return self.episode.task_id

    @property
    def variant(self) -> str:
        return self.episode.variant

    @property
    def trial(self) -> int:
        return self.episode.trial

    @property
    def seed(self) -> int:
        return self.episode.seed


class Hook:
    """Base class of hooks: every method does nothing; override the ones you need.

    Options given in the spec (``[[hooks]] name = "x" options = {...}``) are passed to
    ``__init__`` as keyword arguments. ``__init__`` also runs when the spec is checked, so keep
    it cheap (check the options, raise ``ValueError`` for bad ones) and do expensive set-up in
    :meth:`on_run_start`.
    """

    async def on_run_start(self, run: RunContext) -> None:
        """Once per process, before its first episode."""

    async def on_episode_start(self, ctx: EpisodeContext) -> None:
        """Before the episode's first model call."""

    async def on_model_call(
        self, call: ModelCallContext, request: ChatRequest, response: ChatResponse
    ) -> None:
        """After a model call returned (``request.messages`` is a copy of the history then)."""

    async def on_episode_end(self, ctx: EpisodeContext, record: Mapping[str, Any]) -> None:
        """With the finished record, just before it is written (do not modify it)."""

    async def on_run_end(self, run: RunContext) -> None:
        """Once per process, after its last episode (also when the run was interrupted)."""


#: entry-point group ``emotau.hooks``: each entry point names a :class:`Hook` subclass
HOOKS: Registry[type[Hook]] = Registry("hook", check=subclass_of(Hook))


def load_hook(name: str, options: Mapping[str, Any] | None = None) -> tuple[str, Hook]:
    """The registered name of hook ``name`` (or a ``package.module:Class``) and an instance
    made with ``options``; UserError when it is unknown or refuses its options."""
    found = HOOKS.resolve(name, allow_refs=True)
    if found.param is not None:
        raise UserError(f"hook {name!r}: hooks take options, not a ':' parameter")
    try:
        return found.name, found.plugin(**dict(options or {}))
    except (TypeError, ValueError) as exc:
        raise UserError(f"hook {name!r}: {exc}") from None


async def _call(fn: Any, *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


class HookSet:
    """The hooks of one process's run: starts and ends them, makes each episode's view."""

    def __init__(self, hooks: Sequence[tuple[str, Hook]], run: RunContext | None = None) -> None:
        self.hooks = list(hooks)
        self.run = run
        self._logged: set[tuple[str, str]] = set()
        self._started: list[tuple[str, Hook]] = []

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def report(self, name: str, event: str, exc: Exception) -> dict[str, str]:
        """A hook error as recorded in ``hook_errors``; logged the first time per hook/event."""
        error = {"hook": name, "event": event, "error": f"{type(exc).__name__}: {exc}"[:1000]}
        if (name, event) not in self._logged:
            self._logged.add((name, event))
            log.warning(
                "emotau: hook %r failed in %s: %s (episodes are kept; later errors of this "
                "hook here are only listed in the records' hook_errors)",
                name,
                event,
                error["error"],
            )
        return error

    async def start(self) -> None:
        """``on_run_start`` of every hook; UserError (after ending those started) if one fails."""
        if self.run is None:
            return
        for name, hook in self.hooks:
            try:
                await _call(hook.on_run_start, self.run)
            except Exception as exc:
                await self.end()
                raise UserError(
                    f"hook {name!r} failed to start: {type(exc).__name__}: {exc}"
                ) from None
            self._started.append((name, hook))

    async def end(self) -> None:
        """``on_run_end`` of every hook that started; errors are logged."""
        started, self._started = self._started, []
        for name, hook in started:
            try:
                await _call(hook.on_run_end, self.run)
            except Exception as exc:
                self.report(name, "on_run_end", exc)

    def episode(self, ctx: EpisodeContext) -> EpisodeHooks:
        return EpisodeHooks(self, ctx)


class EpisodeHooks:
    """One episode's hooks; collects their errors in :attr:`errors` (the record's
    ``hook_errors``)."""

    def __init__(self, hooks: HookSet, ctx: EpisodeContext) -> None:
        self._set = hooks
        self.ctx = ctx
        self.errors: list[dict[str, str]] = []
        self.calls = 0

    async def _each(self, event: str, *args: Any) -> None:
        for name, hook in self._set.hooks:
            try:
                await _call(getattr(hook, event), *args)
            except Exception as exc:
                self.errors.append(self._set.report(name, event, exc))

    async def start(self) -> None:
        await self._each("on_episode_start", self.ctx)

    async def model_call(
        self, role: str, turn_index: int, request: ChatRequest, response: ChatResponse
    ) -> None:
        purpose = request.metadata.get("purpose")
        call = ModelCallContext(
            self.ctx, role, turn_index, None if purpose is None else str(purpose), self.calls
        )
        self.calls += 1
        # the history list keeps growing after the call: show the hooks a snapshot
        seen = dataclasses.replace(request, messages=list(request.messages))
        await self._each("on_model_call", call, seen, response)

    async def end(self, record: Mapping[str, Any]) -> None:
        await self._each("on_episode_end", self.ctx, record)
