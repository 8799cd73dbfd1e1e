"""A minimal third-party domain used by the tests (loaded as ``toydomain:ToyDomain``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from emotau.core._types import Action, RewardResult, Task, ToolResult
from emotau.domains._base import Database, Domain, Environment, EpisodeOutcome
from emotau.models._judge import judge_statements

_BASE = Database.freeze_tables(
    {
        "accounts": {
            "A1": {"owner": "Ana Diaz", "balance": 100},
            "B2": {"owner": "Bo Li", "balance": 5},
        }
    }
)


def _tool(name: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": name.replace("_", " "),
            "parameters": {"type": "object", "properties": props, "required": list(props)},
        },
    }


class ToyEnv(Environment):
    def __init__(self) -> None:
        self.db = Database(_BASE)

    def execute(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        acct = arguments.get("account")
        rec = self.db.get("accounts", acct) if isinstance(acct, str) else None
        if name == "transfer_to_human_agents":
            return ToolResult("Transferred.")
        if rec is None:
            return ToolResult("Error: unknown account", error=True)
        if name == "get_balance":
            return ToolResult(str(rec["balance"]))
        if name == "deposit":
            amount = arguments.get("amount")
            if not isinstance(amount, int) or amount <= 0:
                return ToolResult("Error: amount must be a positive integer", error=True)
            self.db.edit("accounts", acct)["balance"] += amount
            return ToolResult("ok")
        return ToolResult(f"Error: unknown tool {name}", error=True)

    def fingerprint(self) -> str:
        return self.db.fingerprint()


class ToyDomain(Domain):
    name = "toy"
    version = "1"
    write_tools = frozenset({"deposit"})

    def __init__(self) -> None:
        super().__init__()
        self._tasks = [
            Task(
                0,
                "You are Ana Diaz (account A1). Deposit 20 into your account.",
                (
                    Action("get_balance", {"account": "A1"}),
                    Action("deposit", {"account": "A1", "amount": 20}),
                ),
                ("120",),
                opening="I want to deposit money.",
                facts={"name": "Ana Diaz"},
            ),
            Task(
                1,
                "You are Bo Li (account B2). Ask for your balance.",
                (Action("get_balance", {"account": "B2"}),),
                ("5",),
                opening="What's my balance?",
            ),
            Task(
                2,
                "You are Bo Li. You want a human.",
                (Action("transfer_to_human_agents", {"summary": "wants a human"}),),
                opening="Can I talk to a person?",
            ),
        ]

    def tasks(self) -> list[Task]:
        return self._tasks

    def tools(self) -> list[dict[str, Any]]:
        return [
            _tool("get_balance", {"account": {"type": "string"}}),
            _tool("deposit", {"account": {"type": "string"}, "amount": {"type": "integer"}}),
            _tool("transfer_to_human_agents", {"summary": {"type": "string"}}),
        ]

    def policy(self) -> str:
        return "You are a bank agent. Confirm before deposits."

    def new_environment(self, task: Task) -> Environment:
        return ToyEnv()


class MisnumberedDomain(ToyDomain):
    """Invalid: task ids that do not equal their positions."""

    def tasks(self) -> list[Task]:
        return list(reversed(self._tasks))


STATEMENTS = ["The agent greets the customer.", "The agent states the balance."]


class JudgedToy(ToyDomain):
    """The toy domain with two NL statements per task, put to the run's judge."""

    name = "judged-toy"
    seen: list[EpisodeOutcome]

    def __init__(self) -> None:
        super().__init__()
        self.seen = []
        # the runner refuses a real agent with the offline judge for tasks marked like this
        self._tasks = [replace(t, metadata={"needs_nl_judge": True}) for t in self._tasks]

    async def score(self, task: Task, env: Any, outcome: EpisodeOutcome) -> RewardResult:
        self.seen.append(outcome)
        base = self.evaluate(task, env, outcome.said, outcome.called)
        assert outcome.judge is not None, "JudgedToy needs a judge"
        verdicts = await judge_statements(outcome.judge, STATEMENTS, outcome.turns, {})
        ok = base.reward == 1.0 and all(v.met for v in verdicts)
        return RewardResult(1.0 if ok else 0.0, {**base.breakdown, "nl": [v.met for v in verdicts]})
