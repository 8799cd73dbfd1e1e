"""tau-bench (sierra-research/tau-bench, "v1") as emotau domains.

``--domain tau-bench:retail`` (test split; also ``tau-bench:retail:train`` and ``:dev``) and
``--domain tau-bench:airline`` (test only). Upstream's data, tools, policy text (wiki), tasks and
user prompts are used as they are, imported at run time from the installed package: emotau
ships none of them. Install upstream from its repository::

    git clone https://github.com/sierra-research/tau-bench && pip install -e ./tau-bench

How it maps onto emotau:
- tools run through upstream's own ``Tool.invoke`` on an episode's own copy of the data, as
  upstream's ``Env.step`` does for a tool action (an exception becomes ``"Error: ..."``);
- the control user's system prompt is upstream's own prompt for the user strategy, built by
  upstream's code for the task's instruction (``react`` gets upstream's react prompt); a
  variant only appends its block. No upstream module or class is patched;
- each episode's data is a copy of upstream's data as ``load_data()`` returned it once per
  domain (unpickled from bytes kept in memory: ~1.5x cheaper than reading the JSON files again);
- the reward is upstream's rule: the final data must equal the data after replaying the
  ground-truth actions on fresh data (compared through a cheap fingerprint of what differs
  from the pristine data, equal exactly when upstream's ``consistent_hash(to_hashable(.))``
  is; the breakdown reports upstream's own ground-truth hash), and every required output must
  be a case-insensitive substring (commas removed) of a message to the customer. Both
  ground-truth hashes are computed once per task and cached, and the reward runs in a worker
  thread, off the event loop.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import marshal
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from emotau.core import Action, RewardResult, Task, ToolResult, UserError
from emotau.domains._base import Domain, Environment, git_commit

INSTALL = (
    "tau-bench is not installed in this Python; install it from its repository: "
    "git clone https://github.com/sierra-research/tau-bench && pip install -e ./tau-bench"
)
SPLITS = {"retail": ("test", "train", "dev"), "airline": ("test",)}
_READ_PREFIXES = ("get_", "find_", "list_", "search_", "calculate", "think")


def _jsonable(obj: Any) -> Any:
    """Sets (sorted, as upstream's to_hashable does) and tuples for the JSON fingerprint."""
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON data: {type(obj).__name__}")


def _canonical(obj: Any) -> str:
    """Sorted-key JSON: equal exactly when upstream's ``to_hashable`` forms are."""
    return json.dumps(obj, sort_keys=True, default=_jsonable)


def _packed(obj: Any) -> bytes | None:
    """Marshal bytes, the same exactly for equal values of the same types in the same order
    (version 2 writes no back-references); ``None`` for what marshal cannot write."""
    try:
        return marshal.dumps(obj, 2)
    except ValueError:
        return None


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """No cyclic-GC pass in the block (for code that makes many objects but no cycle), then
    the GC as it was (a GC that another thread disabled meanwhile is left to that thread)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _upstream() -> Any:
    """Import upstream tau-bench without letting litellm fetch anything from the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import tau_bench.envs
        import tau_bench.envs.base
        import tau_bench.envs.user
    except ImportError as exc:
        raise UserError(f"{INSTALL} ({exc})") from None
    return tau_bench


@functools.cache
def upstream_version() -> str:
    """The git commit of an editable checkout, else the installed package version."""
    tau_bench = _upstream()
    sha = git_commit(Path(tau_bench.__file__).resolve().parent.parent)
    if sha:
        return f"git:{sha}"
    try:
        return f"pkg:{metadata.version('tau_bench')}"
    except metadata.PackageNotFoundError:
        return "unknown"


class TauBenchEnvironment(Environment):
    """One episode's copy of upstream's data, changed only through upstream's tools."""

    def __init__(self, domain: TauBenchDomain) -> None:
        self.domain = domain
        self.data = domain.load_data()

    def execute(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        tool = self.domain.tools_map.get(name)
        if tool is None:
            return ToolResult(f"Unknown action {name}", error=True)
        try:
            out = tool.invoke(data=self.data, **dict(arguments))
        except Exception as exc:  # upstream's Env.step turns any exception into this text
            return ToolResult(f"Error: {exc}", error=True)
        text = str(out)
        return ToolResult(text, error=text.startswith("Error"))

    def fingerprint(self) -> str:
        """A cheap hash of the data: equal exactly when its sorted-key JSON, hence upstream's
        ``consistent_hash(to_hashable(data))``, is.

        Upstream's hash builds ~700k tuples (60-230 ms on retail), the JSON of the whole data
        takes ~20 ms; this hashes only the records (entries of a table) that differ from the
        pristine data (~5 ms), see :meth:`TauBenchDomain.changes`. The breakdown still reports
        upstream's own ground-truth hash (:meth:`TauBenchDomain.upstream_gt_hash`).
        """
        blob = _canonical(self.domain.changes(self.data)).encode()
        return hashlib.sha256(blob).hexdigest()

    def upstream_hash(self) -> str:
        """Upstream's own hash, with no cyclic-GC pass: its ~700k tuples hold no cycle
        (reference counting frees them), and their allocation alone would set off passes that
        walk every live episode's data, several times per hash."""
        base = _upstream().envs.base
        with _no_cyclic_gc():
            return base.consistent_hash(base.to_hashable(self.data))


class TauBenchDomain(Domain):
    evaluate_in_thread = True

    def __init__(self, env_name: str, split: str = "test") -> None:
        super().__init__()
        if env_name not in SPLITS:
            raise UserError(f"unknown tau-bench environment {env_name!r}; allowed: retail, airline")
        if split not in SPLITS[env_name]:
            raise UserError(
                f"tau-bench {env_name} has no split {split!r}; allowed: "
                + ", ".join(SPLITS[env_name])
            )
        tb = _upstream()
        # the "human" user strategy builds no LLM user, so constructing the env calls no model
        env = tb.envs.get_env(
            env_name, user_strategy="human", user_model="none", task_split=split, task_index=0
        )
        self.env_name = env_name
        self.split = split
        self._gt: dict[int, tuple[str, str]] = {}
        self.name = f"tau-bench:{env_name}" + ("" if split == "test" else f":{split}")
        self.version = upstream_version()
        self.tools_map = dict(env.tools_map)
        # upstream's data as its load_data() returns it (env.data is fresh): kept as a pickle,
        # which each episode unpickles into its own copy (upstream's tools change it in place),
        # and as marshal bytes per record, which fingerprints compare against
        self._pristine = pickle.dumps(env.data, pickle.HIGHEST_PROTOCOL)
        self._records: dict[str, dict[str, bytes | None]] | None = None
        if all(isinstance(t, dict) for t in env.data.values()):
            self._records = {n: {k: _packed(r) for k, r in t.items()} for n, t in env.data.items()}
        self._tools = list(env.tools_info)
        self._wiki = env.wiki
        self.terminal_tools = frozenset(env.terminate_tools)
        self.write_tools = frozenset(
            n
            for n in self.tools_map
            if not n.startswith(_READ_PREFIXES) and n not in self.terminal_tools
        )
        self._tasks = [
            Task(
                id=i,
                instruction=t.instruction,
                actions=tuple(Action(a.name, dict(a.kwargs)) for a in t.actions),
                outputs=tuple(t.outputs),
                metadata={"user_id": t.user_id},
            )
            for i, t in enumerate(env.tasks)
        ]

    def tasks(self) -> Sequence[Task]:
        return self._tasks

    def tools(self) -> list[dict[str, Any]]:
        return self._tools

    def policy(self) -> str:
        return self._wiki

    def new_environment(self, task: Task) -> Environment:
        return TauBenchEnvironment(self)

    def load_data(self) -> dict[str, Any]:
        """A fresh copy of upstream's data, as its ``load_data()`` returns it."""
        data: dict[str, Any] = pickle.loads(self._pristine)
        return data

    def changes(self, data: dict[str, Any]) -> dict[str, Any]:
        """What of ``data`` differs from the pristine data, in a form whose sorted-key JSON is
        equal for two datas exactly when their own sorted-key JSON is.

        ``{"changed": {table: {key: [record] | []}}}`` lists, per table, every record whose
        sorted-key JSON differs from the pristine one's (``[]``: deleted); a record with the
        pristine marshal bytes is unchanged without further check. Data whose tables are not
        the pristine ones (added, dropped, not a mapping) is taken whole: ``{"whole": data}``.
        """
        records = self._records
        if records is None or data.keys() != records.keys():
            return {"whole": data}
        if not all(isinstance(t, dict) for t in data.values()):
            return {"whole": data}
        changed: dict[str, dict[str, list[Any]]] = {}
        for name, table in data.items():
            base = records[name]
            out: dict[str, list[Any]] = {k: [] for k in base.keys() - table.keys()}
            for key, rec in table.items():
                old = base.get(key)  # None: a new record (or one marshal cannot write): listed
                if old is not None and (
                    old == _packed(rec) or _canonical(rec) == _canonical(marshal.loads(old))
                ):
                    continue
                out[key] = [rec]
            changed[name] = out
        return {"changed": changed}

    def user_system_prompt(self, task: Task, strategy: str) -> str:
        """Upstream's own user prompt for the strategy, built by upstream's code."""
        user = _upstream().envs.user
        cls = user.ReactUserSimulationEnv if strategy == "react" else user.LLMUserSimulationEnv
        # build_system_prompt reads only the instruction: no __init__, so no LLM call is made
        return cls.__new__(cls).build_system_prompt(task.instruction)

    def _ground_truth(self, task: Task) -> tuple[str, str]:
        """(fingerprint, upstream's hash) of the ground-truth data: one replay, cached."""
        cached = self._gt.get(task.id)
        if cached is None:
            env = self.replay_ground_truth(task)
            assert isinstance(env, TauBenchEnvironment)
            cached = self._gt[task.id] = (env.fingerprint(), env.upstream_hash())
        return cached

    def ground_truth_fingerprint(self, task: Task) -> str:
        return self._ground_truth(task)[0]

    def upstream_gt_hash(self, task: Task) -> str:
        """Upstream's own hash of the ground-truth data (what its breakdown reports), cached."""
        return self._ground_truth(task)[1]

    def evaluate(
        self,
        task: Task,
        env: Environment,
        said: Sequence[str],
        called: Sequence[str] | None = None,
    ) -> RewardResult:
        """Upstream's ``calculate_reward`` rule (transfers are not checked, as upstream)."""
        r_actions = env.fingerprint() == self.ground_truth_fingerprint(task)
        gt = self.upstream_gt_hash(task)
        breakdown: dict[str, Any] = {"r_actions": r_actions, "gt_data_hash": gt}
        ok = r_actions
        if task.outputs:
            folded = [s.lower().replace(",", "") for s in said if isinstance(s, str)]
            outputs = {o: any(o.lower() in s for s in folded) for o in task.outputs}
            breakdown["r_outputs"] = 1.0 if all(outputs.values()) else 0.0
            breakdown["outputs"] = outputs
            ok = ok and all(outputs.values())
        return RewardResult(1.0 if ok else 0.0, breakdown)


def domain(param: str | None = None) -> TauBenchDomain:
    """The ``tau-bench`` domain family: ``tau-bench:<env>[:<split>]``."""
    env_name, _, split = (param or "").partition(":")
    if not env_name:
        raise UserError(
            "domain 'tau-bench' needs an environment: tau-bench:retail or tau-bench:airline"
        )
    return TauBenchDomain(env_name, split or "test")


domain.names = [  # type: ignore[attr-defined]
    "tau-bench:" + env + ("" if split == "test" else f":{split}")
    for env, splits in SPLITS.items()
    for split in splits
]
