"""The one user-prompt builder: the same bytes as before for every strategy and prompt source."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from emotau.core._types import Task
from emotau.domains.hotel import HotelDomain
from emotau.episode import build_user_prompt, prompt_texts
from emotau.episode._agents import AGENT_STRATEGIES
from emotau.episode._engine import EpisodeSetup, run_episode
from emotau.episode._users import USER_STRATEGIES, ReactUser, base_user_prompt
from emotau.episode._variants import VariantLibrary
from emotau.scripted._models import ScriptedAgent, ScriptedUser
from emotau.spec._spec import prompts_digest
from toydomain import ToyDomain

LIB = VariantLibrary.default()
STRATEGIES = ["llm", "react", "verify", "reflection"]
UPSTREAM = "You are a customer.\n<scenario>wants a refund</scenario>\n"

#: sha256 (16 hex) of the hotel prompts of task 2 as emotau 0.1.0 built them
HOTEL = {
    ("llm", "control"): "f02ec61b6c1467e0",
    ("llm", "anger:severe"): "4ff3619fa914245c",
    ("react", "control"): "58bdad6512ebe676",
    ("react", "anger:severe"): "12f6a9dc10485e9a",
    ("verify", "control"): "f02ec61b6c1467e0",
    ("verify", "anger:severe"): "4ff3619fa914245c",
    ("reflection", "control"): "f02ec61b6c1467e0",
    ("reflection", "anger:severe"): "4ff3619fa914245c",
}


class OwnPrompt(ToyDomain):
    """A plugin with its own user prompt that sets the reply format itself (like tau-bench)."""

    def user_system_prompt(self, task: Task, strategy: str) -> str:
        return f"{UPSTREAM}(format for {strategy})"


class PlainPrompt(ToyDomain):
    """A domain whose own prompt sets no reply format (like tau2)."""

    user_prompt_needs_format = True

    def user_system_prompt(self, task: Task, strategy: str) -> str:
        return UPSTREAM


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("strategy", "variant"), sorted(HOTEL))
def test_emotaus_own_prompt_is_unchanged(strategy: str, variant: str) -> None:
    dom = HotelDomain()
    task = dom.tasks()[2]
    cls = USER_STRATEGIES.get(strategy)
    prompt = build_user_prompt(dom, task, cls, LIB.select(variant))
    assert not prompt.from_domain
    assert _sha(prompt.text) == HOTEL[strategy, variant]
    sel = LIB.select(variant)
    assert prompt.text == sel.apply(base_user_prompt(task.instruction)) + cls.prompt_suffix()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_domains_own_prompt_gets_only_the_variant(strategy: str) -> None:
    dom = OwnPrompt()
    task = dom.tasks()[0]
    cls = USER_STRATEGIES.get(strategy)
    control = build_user_prompt(dom, task, cls, LIB.select("control"))
    assert control.from_domain and control.text == f"{UPSTREAM}(format for {strategy})"
    angry = build_user_prompt(dom, task, cls, LIB.select("anger:severe"))
    assert angry.text == f"{control.text}\n\n{LIB.select('anger:severe').text}"
    assert "Thought:" not in angry.text  # emotau's react format is never added here


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_prompt_without_format_gets_the_strategys_block_before_the_variant(
    strategy: str,
) -> None:
    dom = PlainPrompt()
    task = dom.tasks()[0]
    cls = USER_STRATEGIES.get(strategy)
    sel = LIB.select("anger:severe")
    text = build_user_prompt(dom, task, cls, sel).text
    # what tau2's user_system_prompt returned before, with the variant appended to it
    assert text == f"{UPSTREAM}{cls.prompt_suffix()}\n\n{sel.text}"
    assert ("Thought:" in text) == (cls is ReactUser)
    assert build_user_prompt(dom, task, cls, LIB.select("control")).text == (
        UPSTREAM + cls.prompt_suffix()
    )


@pytest.mark.parametrize("domain", [HotelDomain(), OwnPrompt(), PlainPrompt()])
def test_the_engine_gives_the_user_model_the_builders_text(domain) -> None:
    task = domain.tasks()[0]
    user = USER_STRATEGIES.get("react")
    sel = LIB.select("frustration")
    seen: list[str] = []

    class Recording(ScriptedUser):
        async def complete(self, request):  # type: ignore[no-untyped-def]
            seen.append(request.messages[0]["content"])
            return await super().complete(request)

    setup = EpisodeSetup(
        domain=domain,
        task=task,
        variant=sel,
        trial=0,
        seed=0,
        agent_client=ScriptedAgent(domain, {"skill": 1.0}),
        user_client=Recording(domain),
        agent_strategy=AGENT_STRATEGIES.get("tool-calling"),
        user_strategy=user,
        max_steps=4,
    )
    rec = asyncio.run(run_episode(setup))
    expected = build_user_prompt(domain, task, user, sel).text
    assert rec.user["system_prompt"] == expected
    assert seen and set(seen) == {expected}


def test_prompt_texts_keep_the_runs_prompt_digest() -> None:
    texts = prompt_texts()
    assert len(texts) == 6 and all(isinstance(t, str) and t for t in texts)
    assert prompts_digest() == "2bbf21e2f4578c74"  # as emotau 0.1.0 computed it
