"""Command lines of the scripts that emotau replaces, read with their own meaning.

People who used upstream tau-bench's ``run.py``, the predecessor launcher or the Slurm workflow
type the flags they know. Each such flag either works with the same meaning, or gets a one-line
message that names emotau's equivalent:

- :func:`legacy_options` adds the flags that work to the experiment options (``run``,
  ``doctor``, ``submit``); :func:`legacy_overrides` (flags alone) and :func:`finish_spec` (what
  needs the config file or the domain) map them onto the spec;
- :data:`EQUIVALENTS` is the table of predecessor flags and their emotau equivalents. It is the
  only source of "did you mean" for them: :class:`LegacyCommand` replaces click's suggestion
  (string distance alone: ``--model-provider`` is not ``--model``) for every flag it lists;
- ``USER_MODEL_API_BASE`` (the Slurm workflow's) is the user role's base URL when neither a
  flag nor the config sets one.

docs/taubench.md ("Coming from tau-bench's run.py") shows the same table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click

#: the Slurm workflow's variable: the user simulator's server
USER_BASE_ENV = "USER_MODEL_API_BASE"
#: tau-bench's ``--env`` values, and the emotau domains they are
TAU_BENCH_ENVS = MappingProxyType({"retail": "tau-bench:retail", "airline": "tau-bench:airline"})
_ROLES = ("agent", "user", "judge")


@dataclass(frozen=True)
class Equivalent:
    """A predecessor's flag: whose it is, what to type in emotau, and a note."""

    origin: str
    emotau: str
    note: str = ""
    #: ``emotau run`` takes the flag itself, with the meaning above
    accepted: bool = False
    #: the whole message, for a flag with no equivalent yet
    message: str | None = None


_TB = "tau-bench's run.py"
_TAU2 = "tau2-bench's tau2 run"
_LAUNCHER = "the predecessor launcher"

#: predecessor flag -> its emotau equivalent (the only source of "did you mean" for them)
EQUIVALENTS: Mapping[str, Equivalent] = MappingProxyType(
    {
        "--env": Equivalent(
            _TB,
            "--domain tau-bench:retail",
            "retail and airline are the tau-bench domains; any other name is read as --domain",
            accepted=True,
        ),
        "--model-provider": Equivalent(
            _TB,
            "--agent-base-url URL --api-key-env VAR",
            "an OpenAI-compatible provider "
            "sets the agent's base URL and key variable; vllm needs --agent-base-url",
            accepted=True,
        ),
        "--user-model-provider": Equivalent(
            _TB,
            "--user-base-url URL --api-key-env VAR",
            "as --model-provider, for the user simulator",
            accepted=True,
        ),
        "--platform": Equivalent(
            "tau-bench's model_utils",
            "--base-url URL",
            "the provider of every role that "
            "has no provider flag of its own; vllm-chat needs --base-url",
            accepted=True,
        ),
        "--start-index": Equivalent(
            _TB,
            "--task-ids 10,11,...",
            "tasks start..end-1, as a list of task ids",
            accepted=True,
        ),
        "--end-index": Equivalent(
            _TB,
            "--task-ids ...,18,19",
            "-1 (upstream's default): to the last task",
            accepted=True,
        ),
        "--task-split": Equivalent(
            _TB,
            "--domain tau-bench:retail:train",
            "test, train or dev; also a tau2 domain's split",
            accepted=True,
        ),
        "--shuffle": Equivalent(
            _TB,
            "--shuffle",
            "each trial's episodes in a random order drawn from --seed",
            accepted=True,
        ),
        "--log-dir": Equivalent(_TB, "--out DIR", "runs go to DIR/NAME", accepted=True),
        "--few-shot-displays-path": Equivalent(
            _TB,
            "--agent-strategy few-shot --few-shot-displays-path FILE",
            "examples per episode: --few-shot-examples (5)",
            accepted=True,
        ),
        "--task-ids": Equivalent(
            _TB,
            "--task-ids 1,5,10",
            "space-separated ids (1 5 10) are read too",
            accepted=True,
        ),
        "--workers": Equivalent(
            _LAUNCHER,
            "emotau submit slurm / ray",
            "emotau's --workers N means N local processes on one run directory, not N rented GPUs",
            accepted=True,
        ),
        "--max-price": Equivalent(
            _LAUNCHER,
            "emotau submit slurm / ray",
            message=(
                "--max-price (the predecessor launcher's price ceiling for rented cloud GPUs) "
                "is not available yet: run on your own GPUs with `emotau submit slurm` or "
                "`emotau submit ray`, or give --base-url of a server you run (emotau's "
                "--workers N means N local processes)"
            ),
        ),
        "--agent-llm": Equivalent(_TAU2, "--model MODEL", "its server: --agent-base-url"),
        "--user-llm": Equivalent(_TAU2, "--user-model MODEL", "its server: --user-base-url"),
        "--agent-llm-args": Equivalent(
            _TAU2, "--temperature", "other settings: the [agent] table of --config"
        ),
        "--user-llm-args": Equivalent(
            _TAU2, "--user-temperature", "other settings: the [user] table of --config"
        ),
        "--num-tasks": Equivalent(_TAU2, "--tasks N", "the first N tasks"),
        "--save-to": Equivalent(_TAU2, "--experiment-name NAME", "the run goes to --out/NAME"),
        "--task-split-name": Equivalent(_TAU2, "--task-split SPLIT", "or --domain tau2:D:SPLIT"),
        "--task-set-name": Equivalent(_TAU2, "--domain tau2:NAME"),
        "--max-errors": Equivalent(_TAU2, "max_errors = N in a --config file"),
        "--agent": Equivalent(_TAU2, "--agent-strategy", "tool-calling, react, act, few-shot"),
        "--user": Equivalent(_TAU2, "--user-strategy", "llm, react, verify, reflection"),
    }
)


#: the predecessor flags that shape a new run's spec (`submit --run-dir` refuses them: its
#: spec is frozen)
LEGACY_IDENTITY_FLAGS = (
    "env", "task_split", "start_index", "end_index", "shuffle", "log_dir", "model_provider",
    "user_model_provider", "platform", "few_shot_displays_path", "few_shot_examples",
)  # fmt: skip


def unknown_option_message(flag: str) -> str | None:
    """The one-line message for a flag emotau does not take but the table knows, else None."""
    eq = EQUIVALENTS.get(flag)
    if eq is None:
        return None
    if eq.message is not None:
        return eq.message
    note = f" ({eq.note})" if eq.note else ""
    return f"no such option {flag}, a flag of {eq.origin}: in emotau use {eq.emotau}{note}"


_INT = re.compile(r"\d+")


def join_task_ids(args: Sequence[str]) -> list[str]:
    """``--task-ids 1 5 10`` (tau-bench's, space-separated) as ``--task-ids 1,5,10``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return [*out, *args[i:]]
        if arg == "--task-ids" and i + 1 < len(args):
            arg, i = f"{arg}={args[i + 1]}", i + 1
        if arg.startswith("--task-ids="):
            values = [arg.partition("=")[2]]
            while i + 1 < len(args) and _INT.fullmatch(args[i + 1]):
                values.append(args[i + 1])
                i += 1
            arg = "--task-ids=" + ",".join(values)
        out.append(arg)
        i += 1
    return out


class LegacyCommand(click.Command):
    """A command that reads tau-bench's space-separated ``--task-ids`` and answers a known
    predecessor flag with its emotau equivalent from :data:`EQUIVALENTS`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, join_task_ids(args))
        except click.NoSuchOption as exc:
            message = unknown_option_message(exc.option_name)
            if message is None:
                raise
            raise click.UsageError(message, ctx) from None


# ------------------------------------------------------------------------------ the options
def legacy_options(fn: Any) -> Any:
    """The predecessors' flags that emotau takes (added to the experiment options)."""
    opts = [
        click.option(
            "--env",
            "--environment",
            "env",
            metavar="NAME",
            help="tau-bench's run.py: retail or airline runs that tau-bench domain "
            "(tau-bench:retail); any other name is read as --domain.",
        ),
        click.option(
            "--task-split",
            metavar="SPLIT",
            help="Task split of a tau-bench or tau2 domain: --env retail --task-split train is "
            "--domain tau-bench:retail:train.",
        ),
        click.option(
            "--start-index",
            type=click.IntRange(0),
            metavar="N",
            help="tau-bench's run.py: run tasks from this index on (with --end-index: a "
            "--task-ids range).",
        ),
        click.option(
            "--end-index",
            type=click.IntRange(-1),
            metavar="N",
            help="tau-bench's run.py: run tasks before this index (-1: to the last one).",
        ),
        click.option(
            "--shuffle",
            type=click.IntRange(0, 1),
            is_flag=False,
            flag_value=1,
            metavar="[0|1]",
            help="Run each trial's episodes in a random order drawn from --seed (tau-bench's "
            "--shuffle 1); results do not change.",
        ),
        click.option("--log-dir", metavar="DIR", help="tau-bench's run.py: the same as --out."),
        click.option(
            "--model-provider",
            metavar="NAME",
            help="tau-bench's run.py: the agent's provider (openai, anthropic, together_ai, "
            "vllm, ...): its OpenAI-compatible base URL and key variable.",
        ),
        click.option(
            "--user-model-provider",
            metavar="NAME",
            help="The same for the user simulator.",
        ),
        click.option(
            "--platform",
            metavar="NAME",
            help="The provider of every role without a provider flag of its own (tau-bench's "
            "--platform: openai, vllm-chat, ...).",
        ),
        click.option(
            "--few-shot-displays-path",
            type=click.Path(dir_okay=False),
            help="For --agent-strategy few-shot: a JSONL file of example conversations "
            "(tau-bench's few-shot displays).",
        ),
        click.option(
            "--few-shot-examples",
            type=click.IntRange(1, 100),
            metavar="N",
            help="Example conversations in each few-shot prompt [5].",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _fail(message: str) -> NoReturn:
    from emotau.core import UserError

    raise UserError(message)


def legacy_overrides(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Spec overrides of the predecessor flags that need nothing but the flags."""
    out: dict[str, Any] = {}
    env = opts.get("env")
    if env is not None:
        domain = TAU_BENCH_ENVS.get(env, env)
        if opts.get("domain") not in (None, domain):
            _fail(f"give --domain or --env, not both (--env {env} is --domain {domain})")
        out["domain"] = domain
    log_dir = opts.get("log_dir")
    if log_dir is not None:
        if opts.get("out") not in (None, log_dir):
            _fail("give --out or --log-dir, not both (--log-dir is tau-bench's name of --out)")
        out["out"] = log_dir
    if opts.get("shuffle") is not None:
        out["shuffle"] = bool(opts["shuffle"])
    if opts.get("few_shot_displays_path") is not None:
        out["agent_options.displays_path"] = str(Path(opts["few_shot_displays_path"]).resolve())
    if opts.get("few_shot_examples") is not None:
        out["agent_options.examples"] = opts["few_shot_examples"]
    ranged = opts.get("start_index") is not None or opts.get("end_index") is not None
    if ranged and (opts.get("tasks") is not None or opts.get("task_ids") is not None):
        _fail("give --start-index/--end-index or --tasks/--task-ids, not both")
    return out


def finish_spec(spec: Any, opts: Mapping[str, Any]) -> Any:
    """``spec`` with the predecessor flags that depend on the config file or the domain:
    ``--task-split``, ``--start-index``/``--end-index``, the provider flags and
    ``USER_MODEL_API_BASE``."""
    from emotau.spec import build_spec

    updates: dict[str, Any] = {}
    if opts.get("task_split") is not None:
        updates["domain"] = _with_split(spec.domain, opts["task_split"])
    if opts.get("start_index") is not None or opts.get("end_index") is not None:
        updates["task_ids"] = _index_range(
            updates.get("domain", spec.domain), opts.get("start_index"), opts.get("end_index")
        )
    updates |= _endpoints(spec, opts)
    strategy = spec.agent_strategy.replace("_", "-")
    for flag in ("few_shot_displays_path", "few_shot_examples"):
        if opts.get(flag) is not None and strategy != "few-shot":
            _fail(
                f"--{flag.replace('_', '-')} is for --agent-strategy few-shot "
                f"(the agent strategy is {spec.agent_strategy!r})"
            )
    if not updates:
        return spec
    return build_spec(spec.model_dump(mode="json"), updates)


def _with_split(domain: str, split: str) -> str:
    """``tau-bench:retail`` with split ``train``: ``tau-bench:retail:train`` (and tau2's)."""
    family, _, rest = domain.partition(":")
    name, _, current = rest.partition(":")
    if family not in ("tau-bench", "tau2") or not name:
        _fail(
            f"--task-split selects the split of a tau-bench or tau2 domain (--env retail "
            f"--task-split train is --domain tau-bench:retail:train); {domain!r} has none"
        )
    if current and current != split:
        _fail(f"--task-split {split} contradicts --domain {domain} (its split is {current!r})")
    if family == "tau-bench" and split == "test":
        return f"tau-bench:{name}"  # the test split is the default name
    return f"{family}:{name}:{split}"


def _index_range(domain: str, start: int | None, end: int | None) -> list[int]:
    """tau-bench's ``range(start, end)`` of task indices; ``end`` -1 or past the last task:
    to the last task, as upstream."""
    from emotau.domains import load_domain

    count = len(load_domain(domain).tasks())
    first = start or 0
    stop = count if end is None or end == -1 else min(end, count)
    if first >= stop:
        given = f"--start-index {first}" + (f" --end-index {end}" if end is not None else "")
        _fail(f"{given} selects no task: domain {domain!r} has tasks 0..{count - 1}")
    return list(range(first, stop))


# ------------------------------------------------------------------------------- providers
@dataclass(frozen=True)
class Endpoint:
    """Where a provider's OpenAI-compatible chat API is, and the variable of its key."""

    base_url: str | None = None
    key_env: str | None = None
    #: a server of your own (vLLM): its base URL must be given
    own_server: bool = False


#: upstream's provider names (litellm's, and model_utils' platforms) -> their OpenAI-compatible
#: endpoints, at the base URLs the providers document
ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType(
    {
        "openai": Endpoint(),  # no base URL: the OpenAI API, with OPENAI_API_KEY
        "anthropic": Endpoint("https://api.anthropic.com/v1/", "ANTHROPIC_API_KEY"),
        "mistral": Endpoint("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        "together_ai": Endpoint("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
        "fireworks_ai": Endpoint("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
        "groq": Endpoint("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        "deepseek": Endpoint("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        "openrouter": Endpoint("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        "gemini": Endpoint(
            "https://generativelanguage.googleapis.com/v1beta/openai/", "GEMINI_API_KEY"
        ),
        "xai": Endpoint("https://api.x.ai/v1", "XAI_API_KEY"),
        "deepinfra": Endpoint("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
        "ollama": Endpoint("http://localhost:11434/v1"),
        "vllm": Endpoint(own_server=True),
    }
)
_PROVIDER_ALIASES = MappingProxyType(
    {
        "hosted_vllm": "vllm",
        "vllm-chat": "vllm",
        "vllm_chat": "vllm",
        "together": "together_ai",
        "fireworks": "fireworks_ai",
    }
)
#: model_utils platforms that are not a chat API
_NOT_CHAT = frozenset({"vllm-completion", "outlines"})


def _endpoint(flag: str, name: str, role: str) -> Endpoint:
    key = name.strip().lower()
    found = ENDPOINTS.get(_PROVIDER_ALIASES.get(key, key))
    if found is not None:
        return found
    url_flag = "--base-url" if flag == "--platform" else f"--{role}-base-url"
    if key in _NOT_CHAT:
        _fail(
            f"{flag} {name}: emotau uses the chat completions API; serve the model with "
            f"`vllm serve` and give {url_flag} URL (that is {flag} vllm-chat)"
        )
    _fail(
        f"{flag} {name!r} is not one emotau maps: it talks to OpenAI-compatible chat APIs "
        f"({', '.join(ENDPOINTS)}); for another, give {url_flag} URL and --api-key-env VAR "
        "of an OpenAI-compatible server (a LiteLLM proxy serves most providers)"
    )


def _user_base_from_env() -> str | None:
    value = os.environ.get(USER_BASE_ENV, "").strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != -1
    except ValueError:
        ok = False
    if not ok:
        _fail(f"{USER_BASE_ENV}={value!r} must look like http://host:port/v1")
    return value


def _endpoints(spec: Any, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Base URLs and key variables from the provider flags and ``USER_MODEL_API_BASE``, for
    each role whose base URL (key variable) no flag and no config sets.

    The base URL: a flag or the config, else (user role) ``USER_MODEL_API_BASE``, else the
    provider's documented one."""
    from emotau.models import provider_for

    own = {"agent": "model_provider", "user": "user_model_provider"}
    out: dict[str, Any] = {}
    for role in _ROLES:
        cfg = getattr(spec, role)
        base = cfg.base_url
        if base is None and role == "user":
            base = _user_base_from_env()
            if base is not None:
                out["user.base_url"] = base
        flag, name = f"--{own.get(role, '').replace('_', '-')}", opts.get(own.get(role, ""))
        if name is None:
            flag, name = "--platform", opts.get("platform")
        if name is None:
            continue
        endpoint = _endpoint(flag, name, role)
        if provider_for(cfg) != "openai":  # the scripted model (or a plugin's) needs no server
            continue
        if base is None and endpoint.own_server:
            url_flag = "--base-url" if flag == "--platform" else f"--{role}-base-url"
            also = f" or {USER_BASE_ENV}" if role == "user" else ""
            _fail(
                f"{flag} {name}: the {role} model {cfg.model!r} runs on a server of your own; "
                f"give its address with {url_flag} http://HOST:PORT/v1{also}"
            )
        if base is None and endpoint.base_url is not None:
            out[f"{role}.base_url"] = endpoint.base_url
        if cfg.api_key_env is None and endpoint.key_env is not None:
            out[f"{role}.api_key_env"] = endpoint.key_env
    return out
