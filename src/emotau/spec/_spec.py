"""The experiment spec: what a run is, validated before anything runs.

A spec comes from a TOML file, flags, or Python (``RunSpec(...)``); flags override the file.
:func:`resolve` checks it against the domain, the variants and the strategies and returns a
:class:`ResolvedSpec` whose *identity* (the fields that change results) is hashed and frozen
into the run directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from emotau.core import UserError
from emotau.models import ModelConfig, RetryConfig

DEFAULT_VARIANTS = ["control", "neutral", "frustration", "anxiety", "anger", "confusion"]


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class HookConfig(BaseModel):
    """One lifecycle hook to run: its name (an ``emotau.hooks`` entry point, or
    ``package.module:Class``) and the options its constructor takes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("options")
    @classmethod
    def _check_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be plain JSON values ({exc})") from None
        return v


class RunSpec(BaseModel):
    """An experiment: tasks x variants x trials on one domain with one agent and user model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    experiment_name: str = "demo"
    domain: str = "hotel"
    tasks: int | None = Field(default=None, gt=0, description="first N tasks")
    task_ids: list[int] | None = None
    variants: list[str] = Field(default_factory=lambda: list(DEFAULT_VARIANTS))
    variants_files: list[str] = Field(default_factory=list)
    num_trials: int = Field(default=3, gt=0, le=1000)
    agent_strategy: str = "tool-calling"
    #: options of the agent strategy, e.g. few-shot's ``displays_path`` and ``examples``
    agent_options: dict[str, Any] = Field(default_factory=dict)
    user_strategy: str = "llm"
    agent: ModelConfig = Field(default_factory=ModelConfig)
    user: ModelConfig = Field(default_factory=ModelConfig)
    #: the judge role (natural-language checks, LLM emotion labels in analysis)
    judge: ModelConfig = Field(default_factory=ModelConfig)
    #: ``auto``, or ``required`` (the agent then also gets a ``respond`` tool to talk)
    tool_choice: Literal["auto", "required"] = "auto"
    retry: RetryConfig = Field(default_factory=RetryConfig)
    #: check every endpoint before the first episode
    preflight: bool = True
    max_steps: int = Field(default=30, gt=0, le=1000)
    #: consecutive invalid agent actions (bad JSON, unknown tool, tool error) that end an episode
    max_errors: int = Field(default=10, gt=0, le=1000)
    seed: int = 0
    #: run each trial's episodes in a random order drawn from ``seed`` (tau-bench's
    #: ``--shuffle``); the order changes no result, so it is not part of the identity
    shuffle: bool = False
    max_concurrency: int = Field(default=64, gt=0, le=100_000)
    out: str = "runs"
    #: lifecycle hooks that observe every episode (``"name"`` or ``{name, options}``); they
    #: do not change results, so they are not part of the identity
    hooks: list[HookConfig] = Field(default_factory=list)

    @field_validator("experiment_name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _NAME_RE.fullmatch(v):
            raise ValueError(
                "must start with a letter or digit and use only letters, digits, '.', '_', '-'"
            )
        return v

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, v: list[str]) -> list[str]:
        v = [s.strip() for s in v if s.strip()]
        if not v:
            raise ValueError("give at least one variant")
        return v

    @model_validator(mode="after")
    def _one_task_selector(self) -> RunSpec:
        if self.tasks is not None and self.task_ids is not None:
            raise ValueError("give tasks or task_ids, not both")
        return self

    @field_validator("hooks")
    @classmethod
    def _unique_hooks(cls, v: list[HookConfig]) -> list[HookConfig]:
        names = [h.name for h in v]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice is not None:
            raise ValueError(f"hook {twice!r} is listed twice")
        return v

    def with_hooks(self, names: list[str]) -> RunSpec:
        """This spec with the hooks ``names`` added (those already listed keep their options)."""
        have = {h.name for h in self.hooks}
        extra = [HookConfig(name=n) for n in dict.fromkeys(names) if n not in have]
        return self.model_copy(update={"hooks": [*self.hooks, *extra]}) if extra else self

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.experiment_name


# ------------------------------------------------------------------------- building a spec
def _format_validation_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{source}: field {loc!r}: {msg}"


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read config file {str(p)!r}: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {str(p)!r} is not valid TOML: {exc}") from None


def build_spec(
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunSpec:
    """A validated :class:`RunSpec` from a TOML path or dict, with dotted-key overrides.

    ``overrides`` use dotted keys for nested fields (``{"agent.model": "x"}``); ``None`` values
    are ignored, so unset flags never override the file.
    """
    source = "spec"
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        data = json.loads(json.dumps(dict(config)))
    else:
        data = load_config_file(config)
        source = f"config file {str(config)!r}"
        # variant files named in a config file are found next to it
        files = data.get("variants_files")
        if isinstance(files, list):
            here = Path(config).parent
            data["variants_files"] = [
                str(here / f) if isinstance(f, str) and not Path(f).is_absolute() else f
                for f in files
            ]
    given = {k for k, v in (overrides or {}).items() if v is not None}
    if {"tasks", "task_ids"} <= given:
        raise UserError("give --tasks N or --task-ids, not both")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = target.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"{source}: field {p!r} must be a table")
            target = node
        target[leaf] = value
        # --tasks and --task-ids are alternatives: a flag replaces the file's other one
        if key == "tasks":
            data.pop("task_ids", None)
        elif key == "task_ids":
            data.pop("tasks", None)
    options = data.get("agent_options")
    if isinstance(options, dict) and isinstance(options.get("displays_path"), str):
        displays = Path(options["displays_path"])  # a config's file is found next to it
        if not displays.is_absolute() and config is not None and not isinstance(config, Mapping):
            displays = Path(config).parent / displays
        options["displays_path"] = str(displays.resolve())
    files = data.get("variants_files")
    if isinstance(files, list):  # absolute, so that `emotau resume` works from anywhere
        data["variants_files"] = [
            str(Path(f).resolve()) if isinstance(f, str) else f for f in files
        ]
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_validation_error(exc, source)) from None


# ------------------------------------------------------------------------- resolving a spec
@dataclass(frozen=True)
class ResolvedSpec:
    """A spec checked against its domain, variants and strategies."""

    spec: RunSpec
    task_ids: tuple[int, ...]
    variant_labels: tuple[str, ...]
    identity: Mapping[str, Any]

    @property
    def hash(self) -> str:
        return spec_hash(self.identity)

    def frozen(self) -> dict[str, Any]:
        from emotau.core import __version__

        return {
            "format": 1,
            "emotau_version": __version__,
            "hash": self.hash,
            "identity": dict(self.identity),
            "spec": self.spec.model_dump(mode="json"),
        }


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def domain_digest(domain: Any) -> str:
    """A hash of what the agent and the user see of a domain: policy, tools, tasks."""
    tasks = [
        [t.id, t.instruction, [[a.name, dict(a.arguments)] for a in t.actions], list(t.outputs)]
        for t in domain.tasks()
    ]
    return _digest([domain.policy(), domain.tools(), tasks])


def prompts_digest() -> str:
    """A hash of emotau's own prompt templates (user simulator and text-acting agents)."""
    from emotau.episode import prompt_texts

    return _digest(prompt_texts())


def spec_hash(identity: Mapping[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def diff_identity(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable list of the fields that differ between two identities."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(diff_identity(a, b, name + "."))
        elif a != b:
            out.append(f"{name} ({_lists(a, b) or f'{_short(a)} -> {_short(b)}'})")
    return out


def _lists(a: Any, b: Any) -> str | None:
    """Two long lists of plain values as what changed (``45 -> 40 values; without 40, 41``),
    since their starts, shown cut at 60 characters, are often the same."""
    plain = (str, int, float, bool)
    if not (isinstance(a, list) and isinstance(b, list)):
        return None
    if max(len(json.dumps(a)), len(json.dumps(b))) <= 60:  # shown whole
        return None
    if not all(isinstance(x, plain) for x in [*a, *b]):
        return None
    gone = [x for x in a if x not in b]
    new = [x for x in b if x not in a]
    parts = [f"{len(a)} -> {len(b)} values"]
    for label, xs in (("without", gone), ("with", new)):
        if xs:
            shown = ", ".join(map(str, xs[:8])) + (", ..." if len(xs) > 8 else "")
            parts.append(f"{label} {shown}")
    if not gone and not new:
        parts.append("the same values in another order")
    return "; ".join(parts)


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 60 else s[:57] + "..."
