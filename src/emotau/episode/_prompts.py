"""The user simulator's system prompt, built in one place for episodes and ``variants show``.

The control prompt is the domain's own (:meth:`Domain.user_system_prompt`, e.g. an upstream
benchmark's) or emotau's (:func:`base_user_prompt`). Then:

- emotau's prompt: the variant's block, then the user strategy's reply format (react's
  Thought/Message block);
- a domain's prompt that sets the reply format itself (tau-bench: upstream has a react prompt):
  the variant's block only;
- a domain's prompt that sets none (``Domain.user_prompt_needs_format``, tau2): the strategy's
  format block, then the variant's block.

Prompts are hashed into results: a change here changes what runs measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from emotau.core import Task
from emotau.domains import Domain
from emotau.episode._agents import agent_prompt_templates
from emotau.episode._users import UserStrategy, base_user_prompt, user_prompt_templates
from emotau.episode._variants import VariantSelection


@dataclass(frozen=True)
class UserPrompt:
    """One episode's user system prompt."""

    #: exactly the system message the user model gets
    text: str
    #: the control prompt came from the domain (``user_system_prompt``), not from emotau
    from_domain: bool


def build_user_prompt(
    domain: Domain, task: Task, strategy: type[UserStrategy], variant: VariantSelection
) -> UserPrompt:
    """The system prompt of the user simulator for ``task`` under ``variant`` and ``strategy``."""
    own = domain.user_system_prompt(task, strategy.name)
    if own is None:
        text = variant.apply(base_user_prompt(task.instruction)) + strategy.prompt_suffix()
    elif getattr(domain, "user_prompt_needs_format", False):
        text = variant.apply(own + strategy.prompt_suffix())
    else:
        text = variant.apply(own)
    return UserPrompt(text, from_domain=own is not None)


def prompt_texts() -> list[str]:
    """emotau's own prompt templates (user simulator, then text-acting agents), in a fixed
    order: what a run's ``prompts`` digest hashes."""
    return [*user_prompt_templates(), *agent_prompt_templates()]
