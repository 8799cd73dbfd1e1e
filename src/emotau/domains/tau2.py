"""tau2-bench (sierra-research/tau2-bench, also called tau^3-bench) as emotau domains.

``--domain tau2:mock`` (and ``tau2:airline``, ``tau2:retail``, ``tau2:telecom`` when the
installed data has them). Everything comes from the installed upstream package at run time;
emotau ships none of its code or data. Install upstream from its repository (Python >= 3.12)::

    git clone https://github.com/sierra-research/tau2-bench
    pip install -e ./tau2-bench
    export TAU2_DATA_DIR=$PWD/tau2-bench/data      # the PARENT of tau2/

How it maps onto emotau (see ``docs/tau2.md`` for what is and is not supported):

- tools: upstream's agent tool objects (``Tool.openai_schema``); ``write_tools`` are those
  upstream types as ``WRITE``. User-side tools (telecom, mock) are not available to emotau's
  simulated customer.
- policy: upstream's ``LLMAgent`` system prompt (its agent instruction + the domain policy),
  built by upstream's code.
- tasks: upstream's task set (default split), ``Task.id`` = position, upstream id in
  ``metadata["upstream_id"]``; ``actions`` are the assistant-side gold actions and ``outputs``
  the ``communicate_info`` strings.
- environment: one upstream ``Environment`` per episode, initialised as upstream's orchestrator
  does (``set_state`` with the task's initialisation data, actions and message history); every
  tool call runs through upstream's ``Environment.get_response`` and is recorded as upstream
  ``AssistantMessage``/``ToolMessage`` objects.
- reward: upstream's ``evaluate_simulation(..., EvaluationType.ALL)`` on a ``SimulationRun``
  built from the task's message history, the recorded tool calls and what the agent said.
  Natural-language assertions are never sent to upstream's hard-coded judge model: they go to
  the run's ``judge`` role (:mod:`emotau.judge`); without one they are reported as not judged
  (see :meth:`Tau2Domain.evaluate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from emotau.core import Action, RewardResult, Task, Termination, ToolResult, UserError
from emotau.domains._base import Domain, Environment, EpisodeOutcome, git_commit
from emotau.models import Judgement, judge_statements

#: upstream needs this Python (pyproject: requires-python >=3.12,<3.14)
MIN_PYTHON = (3, 12)
INSTALL = (
    "install tau2-bench from its repository into a Python >= 3.12 environment: "
    "git clone https://github.com/sierra-research/tau2-bench && pip install -e ./tau2-bench, "
    "then set TAU2_DATA_DIR to the checkout's data directory (the parent of tau2/, e.g. "
    "tau2-bench/data). Do not `pip install tau2`: that PyPI package is unrelated"
)

#: a judge for natural-language assertions: (assertions, upstream messages) -> one
#: ``(met, justification)`` per assertion, in order (for calling ``evaluate`` directly; a run
#: uses its ``judge`` role instead)
NLJudge = Callable[[list[str], list[Any]], Sequence[tuple[bool, str]]]
#: emotau's termination reasons -> upstream's (``evaluate_simulation`` scores anything other
#: than a user or agent stop as 0)
TERMINATIONS = {
    Termination.USER_GOAL_MET: "user_stop",
    Termination.USER_GAVE_UP: "user_stop",
    Termination.USER_TRANSFERRED: "user_stop",
    Termination.USER_OUT_OF_SCOPE: "user_stop",
    # upstream's customer answers a transfer with a stop
    Termination.TRANSFER_TO_HUMAN: "user_stop",
    Termination.MAX_STEPS: "max_steps",
    Termination.AGENT_ERROR: "too_many_errors",
    Termination.AGENT_EMPTY_REPLY: "agent_error",
}


def _upstream() -> Any:
    """Import upstream tau2 (no network for litellm), or raise a one-line UserError."""
    if sys.version_info[:2] < MIN_PYTHON:
        raise UserError(
            f"tau2 domains need Python >= {'.'.join(map(str, MIN_PYTHON))} (this is "
            f"{sys.version.split()[0]}); {INSTALL}"
        )
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:  # upstream logs through loguru on import (.env, data dir) and on every replay
        from loguru import logger

        logger.disable("tau2")
    except ImportError:  # loguru is an upstream dependency: missing means no upstream
        pass
    try:
        import tau2.registry  # imports and registers every upstream domain
        from tau2.utils import utils as tau2_utils
    except ImportError as exc:
        raise UserError(f"tau2-bench is not importable ({exc}); {INSTALL}") from None
    data_dir = Path(tau2_utils.DATA_DIR)
    if not (data_dir / "tau2" / "domains").is_dir():
        hint = (
            " (it looks like the tau2/ folder itself: use its parent)"
            if (data_dir / "domains").is_dir()
            else ""
        )
        raise UserError(
            f"tau2-bench data not found: {data_dir / 'tau2' / 'domains'} does not exist"
            f"{hint}; set TAU2_DATA_DIR to the checkout's data directory (the parent of tau2/)"
        )
    import tau2

    return tau2


@functools.cache
def upstream_version() -> str:
    """``tau2-bench <package version> git:<commit>`` of the installed upstream."""
    tau2 = _upstream()
    try:
        pkg = metadata.version("tau2")
    except metadata.PackageNotFoundError:
        pkg = "unknown"
    root = Path(tau2.__file__).resolve().parent.parent.parent  # src/tau2/__init__.py -> repo
    commit = git_commit(root) if (root / ".git").exists() else None
    return f"tau2-bench {pkg} git:{commit or 'unknown'}"


def _needs_nl_judge(t2task: Any) -> bool:
    from tau2.data_model.tasks import RewardType

    ec = t2task.evaluation_criteria
    return bool(ec is not None and RewardType.NL_ASSERTION in ec.reward_basis and ec.nl_assertions)


def _opening(t2task: Any) -> str:
    """A one-line request for the scripted user (upstream's instructions, first sentence)."""
    ins = t2task.user_scenario.instructions
    text = getattr(ins, "reason_for_call", None) or str(ins)
    text = " ".join(text.split())
    first = text.split(". ")[0].rstrip(".")
    return f"{first}." if first else ""


class Tau2Environment(Environment):
    """One episode's upstream ``Environment``; records every tool call as upstream messages."""

    def __init__(self, domain: Tau2Domain, t2task: Any) -> None:
        self.domain = domain
        self.t2task = t2task
        self.env = domain.build_upstream_env()
        init = t2task.initial_state
        self.history: list[Any] = (
            [m.model_copy(deep=True) for m in init.message_history]
            if init is not None and init.message_history
            else []
        )
        self.env.set_state(
            initialization_data=init.initialization_data if init is not None else None,
            initialization_actions=init.initialization_actions if init is not None else None,
            message_history=[m.model_copy(deep=True) for m in self.history],
        )
        self.env.sync_tools()
        #: upstream AssistantMessage/ToolMessage pairs, in execution order
        self.recorded: list[Any] = []
        #: (name, arguments) of each recorded pair, to place it among the episode's turns
        self.recorded_calls: list[tuple[str, dict[str, Any]]] = []

    def execute(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        return self._call("assistant", name, arguments)

    def execute_user(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """A customer tool call (telecom's phone, mock's notifications), as upstream's user."""
        return self._call("user", name, arguments)

    def _call(self, requestor: str, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        from tau2.data_model.message import AssistantMessage, ToolCall, UserMessage

        try:
            call = ToolCall(
                id=f"call_{len(self.recorded) // 2 + 1}",
                name=str(name),
                arguments=dict(arguments) if isinstance(arguments, Mapping) else {},
                requestor=requestor,
            )
            result = self.env.get_response(call)  # upstream: exception -> "Error: ..."
        except Exception as exc:  # never raise into the engine
            return ToolResult(f"Error: {type(exc).__name__}: {exc}", error=True)
        message = AssistantMessage if requestor == "assistant" else UserMessage
        self.recorded.append(message(role=requestor, content=None, tool_calls=[call]))
        self.recorded.append(result)
        self.recorded_calls.append((call.name, call.arguments))
        return ToolResult(result.content or "", error=bool(result.error))

    def fingerprint(self) -> str:
        return f"{self.env.get_db_hash()}|{self.env.get_user_db_hash()}"

    def trajectory(
        self, said: Sequence[str], turns: Sequence[Mapping[str, Any]] | None = None
    ) -> list[Any]:
        """The episode as upstream messages: the task's message history, then the episode.

        With ``turns`` (the record's, as the engine passes them) the episode is in its real
        order: customer messages (after the customer's own tool calls, if any), agent messages
        and the recorded tool calls where they happened.
        Without them (a direct ``evaluate`` call): the recorded tool calls, then what the agent
        said; upstream's DB, env-assertion, action and communicate checks do not depend on the
        order, only its NL-assertion judge does.
        """
        from tau2.data_model.message import AssistantMessage, UserMessage

        out = [m.model_copy(deep=True) for m in self.history]
        if turns is None:
            out += [m.model_copy(deep=True) for m in self.recorded]
            out += [AssistantMessage(role="assistant", content=s) for s in said if s]
            return out
        pending = 0  # index of the next recorded call not yet placed
        for t in turns:
            for c in t.get("tool_calls") or ():
                if pending < len(self.recorded_calls) and self.recorded_calls[pending] == (
                    c.get("name"),
                    c.get("arguments") or {},
                ):  # calls that never reached the environment (bad JSON, unknown tool) have none
                    out += [
                        m.model_copy(deep=True)
                        for m in self.recorded[2 * pending : 2 * pending + 2]
                    ]
                    pending += 1
            if t.get("role") == "user":
                if t.get("content"):
                    out.append(UserMessage(role="user", content=t["content"]))
            elif not t.get("tool_calls"):
                out.append(AssistantMessage(role="assistant", content=t.get("content") or ""))
        out += [m.model_copy(deep=True) for m in self.recorded[2 * pending :]]
        return out


class Tau2Domain(Domain):
    """``tau2:<domain>``: upstream tau2-bench's tools, policy, tasks, environment and evaluator."""

    evaluate_in_thread = True
    user_prompt_needs_format = True  # upstream's user prompt asks for plain messages

    def __init__(
        self,
        domain: str = "mock",
        split: str | None = None,
        task_set: str | None = None,
        nl_judge: NLJudge | None = None,
    ) -> None:
        """``domain``: an upstream domain; ``split``: one of its task splits (``train``,
        ``test``, telecom's ``small``/``full``...; default: upstream's default, ``base``);
        ``task_set``: another registered task set for the domain (default: the domain's)."""
        super().__init__()
        _upstream()
        from tau2.agent.llm_agent import LLMAgent
        from tau2.environment.toolkit import ToolType, get_tool_types
        from tau2.registry import registry

        if domain not in registry.get_domains():
            raise UserError(
                f"unknown tau2 domain {domain!r}; the installed tau2-bench has: "
                f"{', '.join(sorted(registry.get_domains()))}"
            )
        self.upstream_name = domain
        self.task_set = task_set or domain
        self.split = split
        self.name = (
            f"tau2:{domain}"
            + ("" if self.task_set == domain else f"[{self.task_set}]")
            + (f":{split}" if split else "")
        )
        self.version = upstream_version()
        self.nl_judge = nl_judge
        self._env_constructor = registry.get_env_constructor(domain)
        try:
            env = self.build_upstream_env()
            loader = registry.get_tasks_loader(self.task_set)
            t2tasks = list(loader(split) if split else loader())
        except (FileNotFoundError, OSError) as exc:
            raise UserError(
                f"tau2 domain {domain!r} cannot be loaded: upstream data file missing "
                f"({exc}); this tau2-bench checkout lacks it (TAU2_DATA_DIR or a partial clone?)"
            ) from None
        except ValueError as exc:
            if split and "split" in str(exc).lower():
                splits = registry.get_task_splits_loader(self.task_set)
                names = ", ".join(sorted(splits())) if splits else "none"
                raise UserError(
                    f"tau2 domain {domain!r} has no task split {split!r}; its splits: {names}"
                ) from None
            raise
        except ImportError as exc:  # an optional dependency of one upstream domain
            raise UserError(f"tau2 domain {domain!r} cannot be built: {exc}") from None
        tools = env.get_tools()
        self._tools = [t.openai_schema for t in tools]
        # upstream's own agent system prompt: its agent instruction wrapped around the policy
        self._policy = LLMAgent(
            tools=tools, domain_policy=env.get_policy(), llm="none"
        ).system_prompt
        types = get_tool_types(env.tools)
        self.write_tools = frozenset(n for n, t in types.items() if t == ToolType.WRITE)
        self.terminal_tools = frozenset(
            {"transfer_to_human_agents"} & {t.name for t in tools}
        ) or frozenset({"transfer_to_human_agents"})
        self._tools_env = env  # read-only: tool schemas and the customer's tool objects
        self._user_tools: dict[int, list[Any]] = {}
        self._t2tasks = t2tasks
        self._tasks = [self._task(i, t) for i, t in enumerate(t2tasks)]

    # ------------------------------------------------------------------ upstream objects
    def build_upstream_env(self) -> Any:
        """A fresh upstream ``Environment`` built by upstream's registry constructor."""
        return self._env_constructor(solo_mode=False)

    def upstream_task(self, task: Task | int) -> Any:
        """The upstream ``tau2.data_model.tasks.Task`` behind an emotau task (or its index)."""
        return self._t2tasks[task if isinstance(task, int) else task.id]

    def _task(self, i: int, t: Any) -> Task:
        ec = t.evaluation_criteria
        gold = list(ec.actions or []) if ec is not None else []
        init = t.initial_state
        user_side = (
            [a for a in gold if a.requestor != "assistant"]
            + [a for a in (ec.env_assertions or []) if a.env_type == "user"]
            if ec is not None
            else []
        )
        meta: dict[str, Any] = {
            "upstream_id": t.id,
            "reward_basis": [r.value for r in ec.reward_basis] if ec is not None else [],
            "nl_assertions": list(ec.nl_assertions or []) if ec is not None else [],
            "needs_nl_judge": _needs_nl_judge(t),
            "needs_user_tools": bool(user_side),
            # the customer's own gold tool calls (what the scripted user performs)
            "user_actions": [
                {"name": a.name, "arguments": dict(a.arguments)}
                for a in gold
                if a.requestor == "user"
            ],
            "has_message_history": bool(init is not None and init.message_history),
        }
        return Task(
            id=i,
            instruction=str(t.user_scenario),
            actions=tuple(
                Action(a.name, dict(a.arguments)) for a in gold if a.requestor == "assistant"
            ),
            outputs=tuple(ec.communicate_info or ()) if ec is not None else (),
            opening=_opening(t),
            metadata=meta,
        )

    # ------------------------------------------------------------------ Domain interface
    def tasks(self) -> Sequence[Task]:
        return self._tasks

    def tools(self) -> list[dict[str, Any]]:
        return self._tools

    def policy(self) -> str:
        return self._policy

    def _user_tool_objects(self, task: Task) -> list[Any]:
        """Upstream's customer tools for the task, chosen as upstream's runner chooses them."""
        tools = self._user_tools.get(task.id)
        if tools is None:
            include = self.upstream_task(task).user_tools
            try:
                tools = list(self._tools_env.get_user_tools(include=include) or [])
            except Exception:  # upstream: no user toolkit -> a user without tools
                tools = []
            self._user_tools[task.id] = tools
        return tools

    def user_tools(self, task: Task) -> list[dict[str, Any]]:
        """The customer's tools (mock: notifications; telecom: the phone), as upstream gives
        them to its user simulator (``get_user_tools(include=task.user_tools)``)."""
        return [t.openai_schema for t in self._user_tool_objects(task)]

    def new_environment(self, task: Task) -> Tau2Environment:
        return Tau2Environment(self, self.upstream_task(task))

    def user_system_prompt(self, task: Task, strategy: str) -> str:
        """Upstream ``UserSimulator.system_prompt`` for the task, built by upstream's code.

        The simulator is built with the task's customer tools, so upstream picks
        ``simulation_guidelines_tools.md`` when there are some and ``simulation_guidelines.md``
        otherwise; its ``<scenario>`` is ``str(task.user_scenario)``.
        Constructing it makes no LLM call. Upstream's prompt asks for plain messages, so a
        strategy with its own reply format (``react``) gets that format's block appended by
        emotau (:attr:`user_prompt_needs_format`), then a variant's block.
        """
        from tau2.user.user_simulator import UserSimulator

        t2task = self.upstream_task(task)
        user = UserSimulator(
            llm="none",
            instructions=str(t2task.user_scenario),
            tools=self._user_tool_objects(task) or None,
        )
        return user.system_prompt

    def ground_truth_fingerprint(self, task: Task) -> str:
        """Fingerprint of upstream's gold environment (initial state + gold actions), cached."""
        fp = self._gt_fingerprints.get(task.id)
        if fp is None:
            t2task = self.upstream_task(task)
            env = Tau2Environment(self, t2task)
            ec = t2task.evaluation_criteria
            for a in (ec.actions or []) if ec is not None else []:
                with contextlib.suppress(Exception):  # upstream logs and goes on
                    env.env.make_tool_call(a.name, requestor=a.requestor, **a.arguments)
            env.env.sync_tools()
            fp = self._gt_fingerprints[task.id] = env.fingerprint()
        return fp

    def simulation(
        self,
        task: Task,
        env: Tau2Environment,
        said: Sequence[str],
        termination: str = "user_stop",
        turns: Sequence[Mapping[str, Any]] | None = None,
    ) -> Any:
        """An upstream ``SimulationRun`` holding the episode's trajectory."""
        from tau2.data_model.simulation import SimulationRun
        from tau2.utils.utils import get_now

        now = get_now()
        return SimulationRun(
            id=str(uuid.uuid4()),
            task_id=self.upstream_task(task).id,
            start_time=now,
            end_time=now,
            duration=0.0,
            termination_reason=termination,
            messages=env.trajectory(said, turns),
        )

    async def score(self, task: Task, env: Environment, outcome: EpisodeOutcome) -> RewardResult:
        """Upstream's reward for the episode, with its NL assertions put to the run's judge.

        The judge is awaited on the event loop; upstream's evaluator then runs in a worker
        thread. An episode that did not end with a stop of the customer's (``max_steps``,
        ``agent_error``) is 0, as upstream scores it, and costs no judge call.
        """
        termination = TERMINATIONS[outcome.termination]
        t2task = self.upstream_task(task)
        judgements = None
        if outcome.judge is not None and termination == "user_stop" and _needs_nl_judge(t2task):
            statements = list(t2task.evaluation_criteria.nl_assertions)
            meta = {**outcome.metadata, "upstream_task_id": t2task.id}
            judgements = await judge_statements(outcome.judge, statements, outcome.turns, meta)
        return await asyncio.to_thread(
            self.evaluate,
            task,
            env,
            outcome.said,
            outcome.called,
            termination=termination,
            turns=outcome.turns,
            judgements=judgements,
        )

    def evaluate(
        self,
        task: Task,
        env: Environment,
        said: Sequence[str],
        called: Sequence[str] | None = None,
        *,
        termination: str = "user_stop",
        turns: Sequence[Mapping[str, Any]] | None = None,
        judgements: Sequence[Judgement] | None = None,
    ) -> RewardResult:
        """Upstream's ``evaluate_simulation(..., EvaluationType.ALL)`` reward and breakdown.

        ``termination`` is upstream's reason (``user_stop``, ``max_steps``, ...): anything but a
        stop is 0, as upstream scores it. The breakdown is upstream's ``RewardInfo`` as JSON plus
        ``nl_judged``:

        - ``None``: the task's reward does not depend on NL assertions; the reward is upstream's.
        - ``True``: they were judged, by ``judgements`` (the run's judge role, see :meth:`score`)
          or by this domain's ``nl_judge``, through upstream's ``NLAssertionsEvaluator`` logic;
          the reward is upstream's reward with that judge.
        - ``False``: the task needs a judge and none was given. The reward is upstream's
          product of every other component (DB, env assertions, action, communicate) and is an
          upper bound: a 0 is final, a 1 is not. ``NL_ASSERTION`` is ``None`` in
          ``reward_breakdown``.
        """
        from tau2.data_model.simulation import NLAssertionCheck
        from tau2.data_model.tasks import RewardType
        from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
        from tau2.evaluator.evaluator_nl_assertions import NLAssertionsEvaluator

        if not isinstance(env, Tau2Environment):
            raise TypeError("Tau2Domain.evaluate needs the Tau2Environment of the episode")
        t2task = self.upstream_task(task)
        sim = self.simulation(task, env, said, termination, turns)
        needs_nl = _needs_nl_judge(t2task) and termination == "user_stop"
        judged_task = t2task
        if needs_nl:  # never reach upstream's hard-coded judge model
            judged_task = t2task.model_copy(deep=True)
            ec = judged_task.evaluation_criteria
            ec.reward_basis = [r for r in ec.reward_basis if r != RewardType.NL_ASSERTION]
        try:
            info = evaluate_simulation(
                simulation=sim,
                task=judged_task,
                evaluation_type=EvaluationType.ALL,
                solo_mode=False,
                domain=self.upstream_name,
            )
        except Exception as exc:
            # e.g. an env assertion about a record the agent never created raises in upstream;
            # upstream retries the whole simulation and then books an infrastructure error.
            # Here the agent's trajectory is what failed the check: scored 0, error recorded.
            return RewardResult(
                0.0,
                {
                    "reward": 0.0,
                    "evaluation_error": f"{type(exc).__name__}: {exc}",
                    "note": "upstream's evaluator raised on this trajectory (upstream would "
                    "record an infrastructure error); emotau scores it 0",
                    "reward_basis": [r.value for r in t2task.evaluation_criteria.reward_basis],
                    "nl_judged": None,
                    "upstream_task_id": t2task.id,
                },
            )
        reward = float(info.reward)
        nl_judged: bool | None = None
        if needs_nl:
            breakdown_nl: float | None = None
            verdicts: Sequence[tuple[bool, str]] | None = None
            assertions = list(t2task.evaluation_criteria.nl_assertions)
            if judgements is not None:
                verdicts = [(j.met, j.justification) for j in judgements]
            elif self.nl_judge is not None:
                verdicts = list(self.nl_judge(assertions, sim.messages))
            if verdicts is not None:
                checks = [
                    NLAssertionCheck(nl_assertion=a, met=bool(m), justification=str(j))
                    for a, (m, j) in zip(assertions, verdicts, strict=True)
                ]

                class _Judged(NLAssertionsEvaluator):  # upstream's scoring, our verdicts
                    @classmethod
                    def evaluate_nl_assertions(cls, trajectory, nl_assertions):  # type: ignore[override]
                        return checks

                nl_info = _Judged.calculate_reward(task=t2task, full_trajectory=sim.messages)
                reward *= nl_info.reward
                breakdown_nl = float(nl_info.reward)
                info.nl_assertions = nl_info.nl_assertions
                nl_judged = True
            else:
                nl_judged = False
            info.reward = reward
            info.reward_basis = t2task.evaluation_criteria.reward_basis
            info.reward_breakdown = {
                **(info.reward_breakdown or {}),
                RewardType.NL_ASSERTION: breakdown_nl,
            }
        breakdown = info.model_dump(mode="json")
        breakdown["nl_judged"] = nl_judged
        breakdown["upstream_task_id"] = t2task.id
        return RewardResult(reward, breakdown)


def domain(param: str | None = None) -> Tau2Domain:
    """The ``tau2`` domain family: ``tau2:<domain>[:<split>]`` (any domain and split the
    installed tau2-bench has)."""
    upstream, _, split = (param or "").partition(":")
    if not upstream or ":" in split:
        raise UserError("domain 'tau2' expects tau2:<domain>[:<split>], e.g. tau2:retail:test")
    return Tau2Domain(upstream, split or None)


domain.names = [  # type: ignore[attr-defined]
    "tau2:mock",
    "tau2:airline",
    "tau2:retail",
    "tau2:telecom",
    *(f"tau2:{d}:{s}" for d in ("airline", "retail") for s in ("train", "test")),
    *(f"tau2:telecom:{s}" for s in ("train", "test", "small", "full")),
]
