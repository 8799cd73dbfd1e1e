"""tau2-bench domains (``tau2:mock`` ...).

The first tests run everywhere (no upstream needed). The rest need upstream tau2-bench
installed from its repository (Python >= 3.12) with ``TAU2_DATA_DIR`` pointing at its
``data`` directory; without it they are skipped with a reason saying so.
"""

from __future__ import annotations

import json
import sys
import uuid
from copy import deepcopy
from typing import Any

import pytest

import emotau
from emotau.core._errors import UserError
from emotau.domains import load_domain

pytestmark = pytest.mark.upstream

SKIP_REASON = (
    "upstream tau2-bench is not importable (needs Python >= 3.12 and "
    "`pip install -e` of https://github.com/sierra-research/tau2-bench); tau2 tests skipped"
)


# ------------------------------------------------------------------ everywhere (no upstream)
def test_missing_upstream_gives_install_steps(monkeypatch) -> None:
    import emotau.domains.tau2 as t2

    monkeypatch.setattr(t2, "MIN_PYTHON", (3, 0))
    for mod in ("tau2", "tau2.registry", "tau2.utils"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError
    with pytest.raises(UserError) as err:
        load_domain("tau2:mock")
    msg = str(err.value)
    assert "\n" not in msg
    assert "tau2-bench is not importable" in msg
    assert "git clone https://github.com/sierra-research/tau2-bench" in msg
    assert "pip install -e" in msg and "TAU2_DATA_DIR" in msg


def test_old_python_is_refused_with_install_steps(monkeypatch) -> None:
    import emotau.domains.tau2 as t2

    monkeypatch.setattr(t2, "MIN_PYTHON", (99, 0))
    with pytest.raises(UserError, match=r"need Python >= 99\.0 .*git clone .*pip install -e"):
        load_domain("tau2:mock")


def test_every_scored_termination_has_upstreams_name() -> None:
    """score() looks each episode's termination up; one missing would make it an internal
    error (an infrastructure error, run again on every resume) instead of a score."""
    from emotau.core import Termination
    from emotau.domains.tau2 import TERMINATIONS

    unscored = {Termination.USER_SIMULATOR_ERROR, Termination.INFRA_ERROR}
    assert set(TERMINATIONS) == set(Termination) - unscored
    assert TERMINATIONS[Termination.AGENT_EMPTY_REPLY] == "agent_error"  # upstream's own


# ------------------------------------------------------------------ with upstream
@pytest.fixture(scope="module")
def upstream() -> Any:
    if sys.version_info < (3, 12):
        pytest.skip(SKIP_REASON)
    pytest.importorskip("tau2.registry", reason=SKIP_REASON)
    import tau2

    return tau2


@pytest.fixture(scope="module")
def mock(upstream: Any) -> Any:
    return load_domain("tau2:mock")


def upstream_reward(
    domain: str,
    t2task: Any,
    calls: list[tuple[str, dict[str, Any]]],
    said: list[str],
    user_calls: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> Any:
    """Upstream's own evaluation of a trajectory built with upstream objects only, as its
    orchestrator builds one: greeting (or the task's message history), tool calls executed by
    a fresh upstream environment, agent messages, the user's stop."""
    from tau2.data_model.message import AssistantMessage, ToolCall, UserMessage
    from tau2.data_model.simulation import SimulationRun, TerminationReason
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
    from tau2.orchestrator.orchestrator import DEFAULT_FIRST_AGENT_MESSAGE
    from tau2.runner.build import build_environment

    env = build_environment(domain)
    init = t2task.initial_state
    history = deepcopy(init.message_history) if init and init.message_history else []
    env.set_state(
        initialization_data=init.initialization_data if init else None,
        initialization_actions=init.initialization_actions if init else None,
        message_history=history,
    )
    msgs = list(history) or [deepcopy(DEFAULT_FIRST_AGENT_MESSAGE)]
    for i, (name, args) in enumerate(user_calls):  # the customer's own tool calls first
        tc = ToolCall(id=f"user_{i}", name=name, arguments=args, requestor="user")
        msgs.append(UserMessage(role="user", tool_calls=[tc]))
        msgs.append(env.get_response(tc))
    msgs.append(UserMessage(role="user", content="Hi, I need help."))
    for i, (name, args) in enumerate(calls):
        tc = ToolCall(id=f"gt_{i}", name=name, arguments=args, requestor="assistant")
        msgs.append(AssistantMessage(role="assistant", tool_calls=[tc]))
        msgs.append(env.get_response(tc))
    msgs += [AssistantMessage(role="assistant", content=s) for s in said]
    msgs.append(UserMessage(role="user", content="Thanks. ###STOP###"))
    sim = SimulationRun(
        id=str(uuid.uuid4()),
        task_id=t2task.id,
        start_time="t0",
        end_time="t1",
        duration=0.0,
        termination_reason=TerminationReason.USER_STOP,
        messages=msgs,
    )
    return evaluate_simulation(sim, t2task, EvaluationType.ALL, solo_mode=False, domain=domain)


def emotau_reward(dom: Any, task: Any, calls: list[tuple[str, dict[str, Any]]], said: list[str]):
    env = dom.new_environment(task)
    for name, args in calls:
        env.execute(name, args)
    return dom.evaluate(task, env, said, [n for n, _ in calls])


def gold_calls(task: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(a.name, dict(a.arguments)) for a in task.actions]


def assert_parity(dom: Any, task: Any, calls: list, said: list[str]) -> float:
    ours = emotau_reward(dom, task, calls, said)
    try:
        theirs = upstream_reward(dom.upstream_name, dom.upstream_task(task), calls, said)
    except Exception as exc:  # upstream: infrastructure error; emotau: 0 with the error
        assert ours.reward == 0.0, (task.metadata["upstream_id"], ours)
        assert ours.breakdown["evaluation_error"] == f"{type(exc).__name__}: {exc}"
        return 0.0
    assert ours.reward == theirs.reward, (task.metadata["upstream_id"], ours, theirs)
    theirs_json = theirs.model_dump(mode="json")
    for key in ("reward_basis", "reward_breakdown", "db_check"):
        assert ours.breakdown[key] == theirs_json[key], (task.metadata["upstream_id"], key)
    for key, field in (
        ("action_checks", "action_match"),
        ("env_assertions", "met"),
        ("communicate_checks", "met"),
    ):
        assert [c[field] for c in ours.breakdown[key] or []] == [
            c[field] for c in theirs_json[key] or []
        ], (task.metadata["upstream_id"], key)
    return ours.reward


def test_mock_loads_tools_policy_tasks(mock: Any) -> None:
    from tau2.registry import registry

    assert mock.name == "tau2:mock"
    assert mock.version.startswith("tau2-bench ") and "git:" in mock.version
    env = registry.get_env_constructor("mock")()
    assert mock.tool_names() == [t.name for t in env.get_tools()]
    assert all(t["type"] == "function" for t in mock.tools())
    assert mock.write_tools == {"create_task", "update_task_status"}
    assert env.get_policy() in mock.policy() and "customer service agent" in mock.policy()
    upstream_tasks = registry.get_tasks_loader("mock")()
    tasks = mock.tasks()
    assert [t.id for t in tasks] == list(range(len(upstream_tasks)))
    assert [t.metadata["upstream_id"] for t in tasks] == [t.id for t in upstream_tasks]
    for t, u in zip(tasks, upstream_tasks, strict=True):
        assert t.instruction == str(u.user_scenario)
        gold = [a for a in (u.evaluation_criteria.actions or []) if a.requestor == "assistant"]
        assert [(a.name, dict(a.arguments)) for a in t.actions] == [
            (a.name, a.arguments) for a in gold
        ]
        assert list(t.outputs) == list(u.evaluation_criteria.communicate_info or [])


def test_user_prompt_is_upstreams(mock: Any) -> None:
    from tau2.registry import registry
    from tau2.user.user_simulator import UserSimulator, get_global_user_sim_guidelines

    task = mock.tasks()[0]
    prompt = mock.user_system_prompt(task, "llm")
    # mock's customer has tools, so upstream picks its guidelines for a customer with tools
    assert prompt.startswith(get_global_user_sim_guidelines(use_tools=True).strip()[:40])
    t2task = mock.upstream_task(task)
    tools = registry.get_env_constructor("mock")().get_user_tools(include=t2task.user_tools)
    built = UserSimulator(llm="x", instructions=str(t2task.user_scenario), tools=tools)
    assert prompt == built.system_prompt
    assert f"<scenario>\n{t2task.user_scenario}\n</scenario>" in prompt
    assert [t["function"]["name"] for t in mock.user_tools(task)] == [t.name for t in tools]


def test_mock_ground_truth_parity(mock: Any) -> None:
    rewards = [assert_parity(mock, t, gold_calls(t), ["Done.", *t.outputs]) for t in mock.tasks()]
    by_id = dict(zip([t.metadata["upstream_id"] for t in mock.tasks()], rewards, strict=True))
    # what the ground truth allows: the two tasks below cannot be met by assistant actions
    # (no gold action / a user-side tool call is required)
    assert by_id.pop("update_task_with_history_and_env_assertions") == 0.0
    assert by_id.pop("update_task_with_user_tools") == 0.0
    assert set(by_id.values()) == {1.0}


def test_mock_wrong_write_missing_write_missing_output_parity(mock: Any) -> None:
    checked = 0
    for t in mock.tasks():
        calls = gold_calls(t)
        said = ["Done.", *t.outputs]
        writes = [i for i, (n, _) in enumerate(calls) if n in mock.write_tools]
        if writes and "DB" in t.metadata["reward_basis"]:
            i = writes[0]
            wrong = deepcopy(calls)
            args = wrong[i][1]
            if "title" in args:
                args["title"] += " (wrong)"
            else:
                args["status"] = "pending"
            assert assert_parity(mock, t, wrong, said) == 0.0
            assert assert_parity(mock, t, calls[:i] + calls[i + 1 :], said) == 0.0
            checked += 1
        if t.outputs:
            assert assert_parity(mock, t, calls, ["Done.", *t.outputs[1:]]) == 0.0
            checked += 1
    assert checked >= 7


def test_bad_tool_calls_are_error_results(mock: Any) -> None:
    env = mock.new_environment(mock.tasks()[0])
    r = env.execute("create_task", {"user_id": "nobody", "title": "x"})
    assert r.error and r.content.startswith("Error")
    r = env.execute("create_task", {"bogus": 1})
    assert r.error
    r = env.execute("no_such_tool", {})
    assert r.error
    ok = env.execute("get_users", {})
    assert not ok.error and "user_1" in ok.content


def test_environments_are_independent(mock: Any) -> None:
    t = mock.tasks()[0]
    a, b = mock.new_environment(t), mock.new_environment(t)
    fp = b.fingerprint()
    assert not a.execute(*gold_calls(t)[0]).error
    assert a.fingerprint() != fp and b.fingerprint() == fp
    assert a.fingerprint() == mock.ground_truth_fingerprint(t)


def test_nl_assertions_are_not_sent_to_upstreams_judge(upstream: Any) -> None:
    try:
        retail = load_domain("tau2:retail")
    except UserError as exc:
        pytest.skip(f"tau2 retail data not available: {exc}")
    task = next(t for t in retail.tasks() if t.metadata["needs_nl_judge"])
    calls, said = gold_calls(task), ["Done.", *task.outputs]
    res = emotau_reward(retail, task, calls, said)  # would raise/retry if it called litellm
    assert res.breakdown["nl_judged"] is False
    assert res.breakdown["reward_breakdown"]["NL_ASSERTION"] is None
    assert res.reward == res.breakdown["reward_breakdown"]["DB"] == 1.0

    seen: list[list[str]] = []

    def judge(assertions: list[str], trajectory: list[Any]) -> list[tuple[bool, str]]:
        seen.append(assertions)
        return [(True, "ok")] * len(assertions)

    from emotau.domains.tau2 import Tau2Domain

    judged = Tau2Domain("retail", nl_judge=judge)
    res = emotau_reward(judged, task, calls, said)
    assert seen == [task.metadata["nl_assertions"]]
    assert res.breakdown["nl_judged"] is True and res.reward == 1.0
    assert res.breakdown["reward_breakdown"]["NL_ASSERTION"] == 1.0
    judged.nl_judge = lambda a, tr: [(False, "no")] + [(True, "ok")] * (len(a) - 1)
    res = emotau_reward(judged, task, calls, said)
    assert res.reward == 0.0 and res.breakdown["reward_breakdown"]["NL_ASSERTION"] == 0.0


def test_data_dir_pointing_at_tau2_folder_is_explained(
    upstream: Any, monkeypatch, tmp_path
) -> None:
    from tau2.utils import utils as tau2_utils

    (tmp_path / "tau2" / "domains").mkdir(parents=True)
    monkeypatch.setattr(tau2_utils, "DATA_DIR", tmp_path / "tau2")
    with pytest.raises(UserError, match="use its parent"):
        load_domain("tau2:mock")


def test_end_to_end_scripted_run(mock: Any, tmp_path) -> None:
    run = emotau.run(
        {"domain": "tau2:mock", "variants": ["control", "anger"]},
        out=str(tmp_path),
        experiment_name="t2",
        num_trials=1,
        agent__options={"skill": 1.0},
    )
    s = run.summary()
    assert s["complete"] and s["finished_episodes"] == 2 * len(mock.tasks())
    eps = emotau.load_run(tmp_path / "t2").episodes()
    assert all(e["status"] == "completed" and e["scored"] for e in eps)
    control = {e["task_id"]: e for e in eps if e["variant"] == "control"}
    anger = {e["task_id"]: e for e in eps if e["variant"] == "anger"}
    for t in mock.tasks():
        allowed = upstream_reward(
            "mock", mock.upstream_task(t), gold_calls(t), ["Done.", *t.outputs]
        ).reward
        assert control[t.id]["reward"] == allowed, t.metadata["upstream_id"]
        base = mock.user_system_prompt(t, "llm")
        assert control[t.id]["user"]["system_prompt"] == base
        angry = anger[t.id]["user"]["system_prompt"]
        assert angry.startswith(base) and len(angry) > len(base)
        assert control[t.id]["reward_breakdown"]["upstream_task_id"] == t.metadata["upstream_id"]


def test_evaluator_exception_scores_zero_where_upstream_errors(mock: Any) -> None:
    # the env assertion looks up task_2, which only the (skipped) create_task would make
    task = next(
        t for t in mock.tasks() if t.metadata["upstream_id"] == "create_task_1_with_env_assertions"
    )
    with pytest.raises(ValueError, match="task_2 not found"):
        upstream_reward("mock", mock.upstream_task(task), [], ["Done."])
    res = emotau_reward(mock, task, [], ["Done."])
    assert res.reward == 0.0 and "task_2 not found" in res.breakdown["evaluation_error"]


def test_oracle_through_the_mock_server(mock: Any, tmp_path) -> None:
    from helpers import all_lines, emotau, mock_server

    with mock_server("--skill", "1.0") as url:
        r = emotau(
            "run", "--domain", "tau2:mock", "--variants", "control", "--num-trials", "1",
            "--out", str(tmp_path), "--name", "srv", "--model", "scripted-agent",
            "--user-model", "scripted-user", "--base-url", url,
            timeout=300,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    eps = {e["task_id"]: e for e in all_lines(tmp_path / "srv")}
    assert len(eps) == len(mock.tasks())
    for t in mock.tasks():
        allowed = upstream_reward(
            "mock", mock.upstream_task(t), gold_calls(t), ["Done.", *t.outputs]
        ).reward
        assert eps[t.id]["reward"] == allowed, t.metadata["upstream_id"]


def _episode(dom: Any, task: Any, judge: Any = None, max_steps: int = 30) -> dict[str, Any]:
    from helpers import run_one_episode

    return run_one_episode(dom, task, variant="anxiety", judge=judge, max_steps=max_steps)


def test_step_limit_scores_zero_as_upstream_does(mock: Any) -> None:
    task = next(t for t in mock.tasks() if len(t.actions) >= 1)
    full = _episode(mock, task)
    assert full["termination"] == "user_goal_met" and full["reward"] == 1.0
    cut = _episode(mock, task, max_steps=1)
    assert cut["termination"] == "max_steps" and cut["reward"] == 0.0
    assert "max_steps" in cut["reward_breakdown"]["info"]["note"]


def test_react_user_gets_upstreams_prompt_plus_the_react_format(mock: Any) -> None:
    from emotau.episode import build_user_prompt
    from emotau.episode._users import LLMUser, ReactUser
    from emotau.episode._variants import VariantLibrary

    task = mock.tasks()[0]
    upstream = mock.user_system_prompt(task, "react")
    assert upstream == mock.user_system_prompt(task, "llm") and "Thought:" not in upstream
    control = VariantLibrary.default().select("control")
    plain = build_user_prompt(mock, task, LLMUser, control).text
    react = build_user_prompt(mock, task, ReactUser, control).text
    assert plain == upstream
    assert react == upstream + ReactUser.prompt_suffix() and "Thought:" in react
    angry = VariantLibrary.default().select("anger:severe")
    assert build_user_prompt(mock, task, ReactUser, angry).text == angry.apply(react)


def test_judge_role_judges_nl_assertions_in_a_run(upstream: Any) -> None:
    from emotau.core._chat import ChatRequest, ChatResponse, ModelClient
    from emotau.scripted._models import ScriptedJudge

    try:
        retail = load_domain("tau2:retail")
    except UserError as exc:
        pytest.skip(f"tau2 retail data not available: {exc}")
    task = next(t for t in retail.tasks() if t.metadata["needs_nl_judge"])
    rec = _episode(retail, task, judge=ScriptedJudge())
    b = rec["reward_breakdown"]
    assert b["nl_judged"] is True and rec["usage"]["judge"]["calls"] == 1
    assert [c["nl_assertion"] for c in b["nl_assertions"]] == task.metadata["nl_assertions"]
    assert b["reward_breakdown"]["NL_ASSERTION"] == 1.0 and rec["synthetic"]

    class Refuses(ModelClient):
        def __init__(self) -> None:
            self.requests: list[ChatRequest] = []

        async def complete(self, request: ChatRequest) -> ChatResponse:
            self.requests.append(request)
            n = request.metadata["statements"]
            res = [{"statement": i + 1, "met": i != 0, "justification": "j"} for i in range(n)]
            return ChatResponse(json.dumps({"results": res}))

    judge = Refuses()
    rec = _episode(retail, task, judge=judge)
    assert rec["reward"] == 0.0 and rec["reward_breakdown"]["reward_breakdown"]["NL_ASSERTION"] == 0
    prompt = judge.requests[0].messages[0]["content"]
    # the judge sees the customer's own words and the agent's tool calls, in order
    first_customer = rec["turns"][0]["content"]
    assert f"CUSTOMER: {first_customer}" in prompt and "AGENT calls" in prompt
    # no judge for a task whose reward does not use NL assertions
    plain = next(t for t in retail.tasks() if not t.metadata["needs_nl_judge"])
    judge.requests.clear()
    rec = _episode(retail, plain, judge=judge)
    assert judge.requests == [] and rec["reward_breakdown"]["nl_judged"] is None


def test_trajectory_follows_the_turns(mock: Any) -> None:
    task = next(t for t in mock.tasks() if len(t.actions) >= 1)
    rec = _episode(mock, task)
    env = mock.new_environment(task)
    for turn in rec["turns"]:
        for c in turn.get("tool_calls") or ():
            env.execute(c["name"], c["arguments"])
    msgs = env.trajectory([], rec["turns"])
    roles = [m.role for m in msgs]
    assert roles[0] == "user" and roles.count("tool") == rec["num_tool_calls"]
    users = [m.content for m in msgs if m.role == "user"]
    assert users == [t["content"] for t in rec["turns"] if t["role"] == "user" and t["content"]]
    # each tool result follows its call
    for i, m in enumerate(msgs):
        if m.role == "tool":
            assert msgs[i - 1].tool_calls[0].id == m.id


def test_unknown_domain_and_split(upstream: Any) -> None:
    with pytest.raises(UserError, match="unknown tau2 domain 'nope'; the installed tau2-bench has"):
        load_domain("tau2:nope")
    try:
        retail = load_domain("tau2:retail:test")
    except UserError as exc:
        pytest.skip(f"tau2 retail data not available: {exc}")
    from tau2.registry import registry

    test_ids = set(registry.get_task_splits_loader("retail")()["test"])
    assert retail.name == "tau2:retail:test"
    assert {t.metadata["upstream_id"] for t in retail.tasks()} == test_ids
    with pytest.raises(UserError, match=r"has no task split .bogus.; its splits: .*test, train"):
        load_domain("tau2:retail:bogus")
    with pytest.raises(UserError, match="expected tau2:<domain>"):
        load_domain("tau2:retail:test:extra")


def test_customer_tools_reach_upstreams_user_side(mock: Any) -> None:
    """The customer's tool calls run as upstream's user (requestor "user") and count."""
    from emotau.core._chat import ToolCall
    from emotau.scripted._models import ScriptedUser
    from helpers import run_one_episode

    class UsesPhone(ScriptedUser):
        def _tool_calls(self, request, md):  # type: ignore[no-untyped-def]
            done = sum(1 for m in request.messages if m.get("role") == "tool")
            steps = [
                ToolCall("u1", "check_notifications", "{}"),
                ToolCall("u2", "dismiss_notification", '{"notification_id": "notif_1"}'),
            ]
            return steps[done : done + 1]

    task = next(
        t for t in mock.tasks() if t.metadata["upstream_id"] == "update_task_with_user_tools"
    )

    def run(user: Any) -> dict[str, Any]:
        return run_one_episode(mock, task, variant="confusion", user=user)

    t2task = mock.upstream_task(task)
    phone = [("check_notifications", {}), ("dismiss_notification", {"notification_id": "notif_1"})]
    for user, user_calls in ((ScriptedUser(mock), []), (UsesPhone(mock), phone)):
        rec = run(user)
        theirs = upstream_reward("mock", t2task, gold_calls(task), ["Done."], user_calls)
        ours = rec["reward_breakdown"]
        assert rec["reward"] == theirs.reward
        assert ours["db_check"] == theirs.model_dump(mode="json")["db_check"]
        met = [c["met"] for c in ours["env_assertions"]]
        assert met == [c.met for c in theirs.env_assertions] == [bool(user_calls)]
    # upstream's gold replay has no customer action, so the read notification also changes the
    # customer's DB: upstream scores the task 0 either way, and so does emotau
    assert rec["reward"] == 0.0 and ours["db_check"]["db_match"] is False
    first = rec["turns"][0]
    assert [c["name"] for c in first["tool_calls"]] == [
        "check_notifications",
        "dismiss_notification",
    ]
    assert "notif_1" in first["tool_calls"][0]["result"] and not first["tool_calls"][1]["error"]
    # the customer's own history holds its calls and their results; the agent never sees them
    roles = [m["role"] for m in rec["user"]["messages"][:5]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert "notif_1" not in json.dumps(rec["agent"]["messages"][:1])


def test_runs_of_another_upstream_version_are_never_mixed(mock: Any, tmp_path, monkeypatch) -> None:
    import emotau.domains.tau2 as t2

    spec = {"domain": "tau2:mock", "variants": ["control"], "task_ids": [0, 1]}
    emotau.run(spec, out=str(tmp_path), experiment_name="v", num_trials=1)
    monkeypatch.setattr(t2, "upstream_version", lambda: "tau2-bench 9.9 git:feedfacecafe")
    with pytest.raises(UserError, match="domain_version"):
        emotau.run(spec, out=str(tmp_path), experiment_name="v", num_trials=1)
    assert len(emotau.load_run(tmp_path / "v").episodes()) == 2  # finished results untouched
