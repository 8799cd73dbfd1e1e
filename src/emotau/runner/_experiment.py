"""An experiment: a spec resolved against its domain, variants and strategies; its grid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from emotau.core import Hook, ModelClient, UserError, load_hook
from emotau.domains import Domain, load_domain
from emotau.episode import (
    AGENT_STRATEGIES,
    USER_STRATEGIES,
    AgentStrategy,
    UserStrategy,
    VariantLibrary,
    VariantSelection,
)
from emotau.models import PROVIDERS, ClientSettings, ModelConfig, create_client, provider_for
from emotau.results import (
    Key,
)
from emotau.spec import (
    ResolvedSpec,
    RunSpec,
    domain_digest,
    prompts_digest,
)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        if not text:
            return cls()
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise UserError(f"--shard must look like i/N (e.g. 3/8), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise UserError(f"--shard {text!r}: need 0 <= i < N")
        return cls(i, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class Experiment:
    """A resolved spec plus everything built from it (no run directory touched yet)."""

    resolved: ResolvedSpec
    domain: Domain
    selections: dict[str, VariantSelection]
    agent_strategy: type[AgentStrategy]
    user_strategy: type[UserStrategy]
    _settings: ClientSettings | None = field(default=None, repr=False)

    @property
    def spec(self) -> RunSpec:
        return self.resolved.spec

    def grid(self, shard: Shard = Shard()) -> Iterator[Key]:
        labels = sorted(self.selections)
        k = 0
        for trial in range(self.spec.num_trials):
            for task_id in self.resolved.task_ids:
                for label in labels:
                    if k % shard.count == shard.index:
                        yield (task_id, label, trial)
                    k += 1

    def client_settings(self) -> ClientSettings:
        """One per experiment: roles that share a base URL share its request limit."""
        if self._settings is None:
            limits: dict[str, int] = {}
            for _, cfg in self.roles():
                if cfg.max_concurrency and provider_for(cfg) != "scripted":
                    key = cfg.base_url or "openai"
                    limits[key] = min(limits.get(key, cfg.max_concurrency), cfg.max_concurrency)
            self._settings = ClientSettings(
                max_connections=self.spec.max_concurrency,
                retry=self.spec.retry,
                endpoint_limits=limits,
            )
        return self._settings

    def roles(self) -> list[tuple[str, ModelConfig]]:
        return [("agent", self.spec.agent), ("user", self.spec.user), ("judge", self.spec.judge)]

    def make_client(self, role: str, cfg: ModelConfig) -> ModelClient:
        provider = provider_for(cfg)
        if provider not in PROVIDERS:
            raise UserError(
                f"{role} model {cfg.model!r} needs the {provider!r} provider; "
                f"allowed: {', '.join(PROVIDERS.names())}"
            )
        try:
            return create_client(role, cfg, self.domain, self.client_settings())
        except (ValueError, TypeError) as exc:
            raise UserError(f"{role} model: {exc}") from None

    def make_hooks(self) -> list[tuple[str, Hook]]:
        """A fresh instance of every hook of the spec, with its registered name."""
        return [load_hook(h.name, h.options) for h in self.spec.hooks]

    def make_clients(self) -> tuple[ModelClient, ModelClient, ModelClient]:
        """The agent's, the user's and the judge's clients (the judge is only called by domains
        whose reward needs one)."""
        return (
            self.make_client("agent", self.spec.agent),
            self.make_client("user", self.spec.user),
            self.make_client("judge", self.spec.judge),
        )


def prepare(spec: RunSpec) -> Experiment:
    """Check a spec against its domain, variants and strategies. Raises UserError; no I/O."""
    domain = load_domain(spec.domain)
    all_tasks = domain.tasks()
    n_tasks = len(all_tasks)
    misplaced = next((i for i, t in enumerate(all_tasks) if t.id != i), None)
    if misplaced is not None:
        raise UserError(
            f"domain {domain.name!r} is invalid: tasks()[{misplaced}] has id "
            f"{all_tasks[misplaced].id} (task ids must equal their position)"
        )
    if spec.task_ids is not None:
        bad = [t for t in spec.task_ids if not 0 <= t < n_tasks]
        if bad:
            raise UserError(
                f"task id {bad[0]} out of range: domain {domain.name!r} has tasks 0..{n_tasks - 1}"
            )
        task_ids = tuple(sorted(set(spec.task_ids)))
        if not task_ids:
            raise UserError("--task-ids is empty")
    elif spec.tasks is not None:
        if spec.tasks > n_tasks:
            raise UserError(
                f"--tasks {spec.tasks} is more than domain {domain.name!r} has ({n_tasks})"
            )
        task_ids = tuple(range(spec.tasks))
    else:
        task_ids = tuple(range(n_tasks))
    judged = [t for t in task_ids if all_tasks[t].metadata.get("needs_nl_judge")]
    if judged and provider_for(spec.judge) == "scripted" and provider_for(spec.agent) != "scripted":
        raise UserError(
            f"{len(judged)} of the selected {domain.name} tasks are judged by the judge role "
            "(natural-language assertions), which is the offline scripted judge; "
            "set --judge-model and --judge-base-url (or [judge] in the config)"
        )
    library = VariantLibrary.default(spec.variants_files)
    selections: dict[str, VariantSelection] = {}
    for text in spec.variants:
        sel = library.select(text)
        if sel.label in selections:
            raise UserError(f"variant {sel.label!r} is listed twice")
        selections[sel.label] = sel
    agent_cls = AGENT_STRATEGIES.get(spec.agent_strategy).configured(spec.agent_options)
    user_cls = USER_STRATEGIES.get(spec.user_strategy)
    identity = {
        "domain": domain.name,
        "domain_version": domain.version,
        "domain_digest": domain_digest(domain),
        "task_ids": list(task_ids),
        "variants": {label: sel.digest for label, sel in selections.items()},
        "num_trials": spec.num_trials,
        "agent_strategy": agent_cls.name,
        "user_strategy": user_cls.name,
        "prompts_digest": prompts_digest(),
        "agent": spec.agent.identity(),
        "user": spec.user.identity(),
        "judge": spec.judge.identity(),
        "max_steps": spec.max_steps,
        "max_errors": spec.max_errors,
        "tool_choice": spec.tool_choice,
        "seed": spec.seed,
    }
    options = agent_cls.options_identity()
    if options is not None:  # only strategies with options: other runs keep their hash
        identity["agent_options"] = options
    resolved = ResolvedSpec(spec, task_ids, tuple(selections), identity)
    exp = Experiment(resolved, domain, selections, agent_cls, user_cls)
    for role, cfg in exp.roles():
        exp.make_client(role, cfg)  # validates options and API keys; rebuilt for the run
    exp.make_hooks()  # unknown hooks and bad options fail now; rebuilt in each process
    return exp
