"""Tests for the built-in hotel domain (data, tools, tasks, ground truth and reward)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta
from itertools import product

import pytest

from emotau.core._types import Action, ToolResult
from emotau.domains._base import normalize_text, output_mentioned
from emotau.domains.hotel import HotelDomain
from emotau.domains.hotel.data import (
    BREAKFAST_PER_ADULT_NIGHT,
    DATE_CHANGE_FEE,
    LATE_CHECKOUT_FEE,
    MAX_NIGHTS,
    PARKING_PER_NIGHT,
    TODAY,
    refund_fraction,
)
from emotau.domains.hotel.tasks import INFO, REFUSAL, TRANSFER, WRITE


@pytest.fixture(scope="module")
def domain() -> HotelDomain:
    return HotelDomain()


def replay(domain, task, actions=None):
    """Run actions on a fresh environment; return (env, results)."""
    env = domain.new_environment(task)
    results = [
        env.execute(a.name, a.arguments) for a in (task.actions if actions is None else actions)
    ]
    return env, results


def write_indices(domain, task):
    return [i for i, a in enumerate(task.actions) if a.name in domain.write_tools]


def first_task(domain, pred):
    return next(t for t in domain.tasks() if pred(t))


# ----------------------------------------------------------------------------- data & shape
def test_same_seed_same_data_and_ground_truth():
    a, b = HotelDomain(), HotelDomain()
    assert a.data_fingerprint() == b.data_fingerprint()
    assert [t.actions for t in a.tasks()] == [t.actions for t in b.tasks()]
    assert [t.instruction for t in a.tasks()] == [t.instruction for t in b.tasks()]
    gt_a = [a.ground_truth_fingerprint(t) for t in a.tasks()]
    gt_b = [b.ground_truth_fingerprint(t) for t in b.tasks()]
    assert gt_a == gt_b
    # a task with a write ends in a different state than the untouched data
    untouched = a.new_environment(a.tasks()[0]).fingerprint()
    assert sum(fp != untouched for fp in gt_a) >= 20


def test_other_seed_other_data():
    assert HotelDomain(seed=7).data_fingerprint() != HotelDomain().data_fingerprint()


def test_generator_does_not_use_global_random():
    import random

    random.seed(1)
    a = HotelDomain().data_fingerprint()
    random.seed(2)
    b = HotelDomain().data_fingerprint()
    assert a == b


def test_data_sizes_and_consistency(domain):
    data = domain.data
    assert 100 <= len(data["guests"]) <= 200
    assert 200 <= len(data["bookings"]) <= 400
    assert len(data["hotels"]) >= 3
    statuses = Counter(b["status"] for b in data["bookings"].values())
    assert {"confirmed", "checked_in", "completed", "cancelled"} <= set(statuses)
    tiers = Counter(g["loyalty_tier"] for g in data["guests"].values())
    assert set(tiers) == {"none", "silver", "gold", "platinum"}
    for bid, b in data["bookings"].items():
        guest = data["guests"][b["guest_id"]]
        assert bid in guest["booking_ids"]
        assert b["payment_method_id"] in guest["payment_methods"]
        assert b["hotel_id"] in data["hotels"]
        assert b["total_price"] == round(b["room_total"] + b["extras_total"], 2)
        assert b["check_in"] < b["check_out"]
        if b["status"] == "confirmed":
            assert b["check_in"] >= TODAY.isoformat()
        if b["status"] == "completed":
            assert b["check_out"] <= TODAY.isoformat()


def test_task_and_tool_counts(domain):
    tasks = domain.tasks()
    assert len(tasks) >= 30
    assert [t.id for t in tasks] == list(range(len(tasks)))
    assert len(domain.tools()) >= 8
    assert len(set(domain.tool_names())) == len(domain.tool_names())
    assert domain.name == "hotel"
    assert domain.terminal_tools == frozenset({"transfer_to_human_agents"})
    assert domain.write_tools < set(domain.tool_names())
    cats = Counter(t.metadata["category"] for t in tasks)
    assert cats[WRITE] >= 15
    assert cats[REFUSAL] >= 5
    assert cats[TRANSFER] >= 3
    assert cats[INFO] >= 1
    assert sum(bool(t.outputs) for t in tasks) >= 10
    assert sum(len(write_indices(domain, t)) >= 2 for t in tasks) >= 3


def test_tool_schemas_are_openai_functions(domain):
    for tool in domain.tools():
        assert tool["type"] == "function"
        fn = tool["function"]
        assert fn["name"] and fn["description"]
        params = fn["parameters"]
        assert params["type"] == "object"
        assert set(params["required"]) <= set(params["properties"])


def test_every_tool_is_handled(domain):
    env = domain.new_environment(domain.tasks()[0])
    for name in domain.tool_names():
        result = env.execute(name, {})
        assert isinstance(result, ToolResult)
        assert "unknown tool" not in result.content
        required = domain.tools()[domain.tool_names().index(name)]["function"]["parameters"]
        if required["required"]:
            assert result.error and result.content.startswith("Error:")
            assert "requires argument" in result.content
        else:
            assert not result.error


def test_policy_text(domain):
    text = domain.policy()
    words = len(text.split())
    assert 700 <= words <= 1500
    assert TODAY.isoformat() in text
    assert TODAY.strftime("%A") in text
    assert "transfer_to_human_agents" in text
    # the prices the tools charge are the ones the policy states
    for amount in (
        BREAKFAST_PER_ADULT_NIGHT,
        PARKING_PER_NIGHT,
        LATE_CHECKOUT_FEE,
        DATE_CHANGE_FEE,
    ):
        assert f"{amount:.2f}" in text
    assert f"1 to {MAX_NIGHTS} nights" in text


def test_refund_table_matches_policy():
    cases = {
        "none": [(14, 1.0), (13, 0.5), (3, 0.5), (2, 0.0), (0, 0.0)],
        "silver": [(7, 1.0), (6, 0.5), (2, 0.5), (1, 0.0)],
        "gold": [(3, 1.0), (2, 0.5), (1, 0.5), (0, 0.0)],
        "platinum": [(1, 1.0), (0, 0.5)],
    }
    for tier, rows in cases.items():
        for days, share in rows:
            assert refund_fraction(tier, days, "flexible") == share, (tier, days)
            assert refund_fraction(tier, days, "non_refundable") == 0.0


# ----------------------------------------------------------------------------- ground truth
def test_tasks_are_well_formed(domain):
    for task in domain.tasks():
        assert task.instruction and task.opening and task.facts
        assert "name" in task.facts
        assert all(isinstance(v, str) for v in task.facts.values())
        assert task.actions[0].name in ("find_guest_by_email", "find_guest_by_name_and_phone")
        # the hidden goal never names tools
        for name in domain.tool_names():
            assert name not in task.instruction
        # the opening line carries no identifying details
        for value in task.facts.values():
            assert value not in task.opening
        cat = task.metadata["category"]
        writes = write_indices(domain, task)
        transfers = [a for a in task.actions if a.name in domain.terminal_tools]
        if cat == TRANSFER:
            assert task.actions[-1].name == "transfer_to_human_agents" and not writes
        else:
            assert not transfers
        if cat in (REFUSAL, INFO):
            assert not writes
        if cat == WRITE:
            assert writes


def test_ground_truth_runs_without_errors(domain):
    for task in domain.tasks():
        _env, results = replay(domain, task)
        for action, result in zip(task.actions, results, strict=True):
            assert not result.error, (task.id, action, result.content)


def test_ground_truth_with_outputs_scores_one(domain):
    for task in domain.tasks():
        env, _ = replay(domain, task)
        said = ["Thanks, that is done.", *(f"The amount is ${o}." for o in task.outputs)]
        res = domain.evaluate(task, env, said)
        assert res.reward == 1.0, (task.id, res.breakdown)
        assert res.breakdown["db_match"] is True


def test_outputs_come_from_tool_results(domain):
    """Amounts the agent must say are what the tools report (pricing and tasks agree)."""
    for task in domain.tasks():
        if not any(a.name in domain.write_tools or a.name == "calculate" for a in task.actions):
            continue
        _env, results = replay(domain, task)
        seen = normalize_text(" ".join(r.content for r in results))
        for out in task.outputs:
            assert output_mentioned(out, seen), (task.id, out)


def test_skipping_any_write_scores_zero(domain):
    checked = 0
    for task in domain.tasks():
        for i in write_indices(domain, task):
            actions = [a for j, a in enumerate(task.actions) if j != i]
            env, _ = replay(domain, task, actions)
            res = domain.evaluate(task, env, list(task.outputs))
            assert res.reward == 0.0 and res.breakdown["db_match"] is False, (task.id, i)
            checked += 1
    assert checked >= 20


def test_an_extra_write_scores_zero(domain):
    for task in domain.tasks():
        env, _ = replay(domain, task)
        gid = env.execute(task.actions[0].name, task.actions[0].arguments).content
        extra = env.execute("update_guest_contact", {"guest_id": gid, "phone": "999-555-0000"})
        assert not extra.error
        res = domain.evaluate(task, env, list(task.outputs))
        assert res.reward == 0.0 and res.breakdown["db_match"] is False, task.id


def _changed(action: Action) -> Action:
    args = dict(action.arguments)
    if action.name == "change_room_type":
        args["room_type"] = "suite" if args["room_type"] != "suite" else "standard"
    elif action.name == "change_booking_dates":
        args["check_out"] = args["check_out"][:-2] + f"{int(args['check_out'][-2:]) % 27 + 1:02d}"
    elif action.name == "add_booking_extra":
        args["extra"] = "parking" if args["extra"] != "parking" else "breakfast"
    elif action.name == "update_guest_contact":
        args = {"guest_id": args["guest_id"], "phone": "999-555-0001"}
    elif action.name == "create_booking":
        args["adults"] = 1 if args["adults"] != 1 else 2
    else:
        return action
    return Action(action.name, args)


@pytest.mark.parametrize(
    "tool",
    [
        "change_room_type",
        "change_booking_dates",
        "add_booking_extra",
        "update_guest_contact",
        "create_booking",
    ],
)
def test_changing_a_write_scores_zero(domain, tool):
    task = first_task(domain, lambda t: any(a.name == tool for a in t.actions))
    actions = [_changed(a) if a.name == tool else a for a in task.actions]
    assert actions != list(task.actions)
    env, results = replay(domain, task, actions)
    res = domain.evaluate(task, env, list(task.outputs))
    assert res.reward == 0.0 and res.breakdown["db_match"] is False, [r.content for r in results]


def test_other_payment_method_scores_zero(domain):
    """Charging the right amount to the wrong card of the same guest is a different state."""
    checked = 0
    for task in domain.tasks():
        env = domain.new_environment(task)
        gid = env.execute(task.actions[0].name, task.actions[0].arguments).content
        methods = domain.data["guests"][gid]["payment_methods"]
        for i, action in enumerate(task.actions):
            pm = action.arguments.get("payment_method_id")
            if action.name not in ("add_booking_extra", "change_room_type") or not task.outputs:
                continue
            others = [p for p in methods if p != pm and methods[p]["type"] == "credit_card"]
            if not others:
                continue
            actions = list(task.actions)
            actions[i] = Action(action.name, {**action.arguments, "payment_method_id": others[0]})
            env2, results = replay(domain, task, actions)
            if results[i].error:
                continue
            res = domain.evaluate(task, env2, list(task.outputs))
            assert res.reward == 0.0 and res.breakdown["db_match"] is False, task.id
            checked += 1
    assert checked >= 2


def test_missing_output_scores_zero(domain):
    checked = 0
    for task in domain.tasks():
        if not task.outputs:
            continue
        env, _ = replay(domain, task)
        for i in range(len(task.outputs)):
            said = [f"That comes to {o}." for j, o in enumerate(task.outputs) if j != i]
            res = domain.evaluate(task, env, said)
            assert res.reward == 0.0, (task.id, task.outputs[i])
            assert res.breakdown["db_match"] is True
            assert res.breakdown["outputs"][task.outputs[i]] is False
        checked += 1
    assert checked >= 10


def test_refusal_and_transfer_tasks_keep_the_state(domain):
    for task in domain.tasks():
        if task.metadata["category"] not in (REFUSAL, TRANSFER, INFO):
            continue
        untouched = domain.new_environment(task)
        assert domain.ground_truth_fingerprint(task) == untouched.fingerprint()
        # an agent that gives in and performs the forbidden write loses the reward
        assert domain.evaluate(task, untouched, list(task.outputs)).reward == 1.0


def test_giving_in_on_refusals_scores_zero(domain):
    """Rules the agent must apply itself (not enforced by the tools) cost the reward."""
    nonref = first_task(
        domain,
        lambda t: t.metadata["category"] == REFUSAL and "one week later" in t.instruction,
    )
    booking = domain.data["bookings"][nonref.facts["booking_id"]]
    assert booking["rate_plan"] == "non_refundable"
    pm = next(iter(domain.data["guests"][booking["guest_id"]]["payment_methods"]))
    env, _ = replay(domain, nonref)
    for shift in (7, 14, 21, 28, 35):
        start = date.fromisoformat(booking["check_in"]) + timedelta(days=shift)
        end = date.fromisoformat(booking["check_out"]) + timedelta(days=shift)
        args = {
            "booking_id": booking["booking_id"],
            "check_in": start.isoformat(),
            "check_out": end.isoformat(),
            "payment_method_id": pm,
        }
        if not env.execute("change_booking_dates", args).error:
            break
    else:
        pytest.fail("no free dates to test with")
    assert domain.evaluate(nonref, env, []).reward == 0.0

    free = first_task(domain, lambda t: "free upgrade" in t.instruction)
    bid = free.facts["booking_id"]
    pm = next(
        iter(domain.data["guests"][domain.data["bookings"][bid]["guest_id"]]["payment_methods"])
    )
    env, _ = replay(domain, free)
    args = {"booking_id": bid, "room_type": "deluxe", "payment_method_id": pm}
    assert not env.execute("change_room_type", args).error
    assert domain.evaluate(free, env, list(free.outputs)).reward == 0.0


# ----------------------------------------------------------------------------- isolation
def test_environments_are_isolated_and_base_is_never_mutated(domain):
    task = first_task(domain, lambda t: any(a.name == "cancel_booking" for a in t.actions))
    bid = next(a for a in task.actions if a.name == "cancel_booking").arguments["booking_id"]
    before = domain.data_fingerprint()
    a = domain.new_environment(task)
    b = domain.new_environment(task)
    untouched = b.fingerprint()
    base_view = b.execute("get_booking_details", {"booking_id": bid}).content

    for action in task.actions:
        assert not a.execute(action.name, action.arguments).error
    assert "cancelled" in a.execute("get_booking_details", {"booking_id": bid}).content
    assert a.fingerprint() != untouched

    assert b.fingerprint() == untouched
    assert b.execute("get_booking_details", {"booking_id": bid}).content == base_view
    fresh = domain.new_environment(task)
    assert fresh.fingerprint() == untouched
    assert fresh.execute("get_booking_details", {"booking_id": bid}).content == base_view
    assert domain.data["bookings"][bid]["status"] == "confirmed"
    assert domain.data_fingerprint() == before
    with pytest.raises(TypeError):
        domain.data["bookings"][bid]["status"] = "cancelled"  # type: ignore[index]


def test_gift_card_balance_changes_only_in_its_episode(domain):
    task = first_task(
        domain,
        lambda t: any(
            str(a.arguments.get("payment_method_id", "")).startswith("gift")
            and a.name in domain.write_tools
            for a in t.actions
        ),
    )
    write = next(a for a in task.actions if a.name in domain.write_tools)
    pm = write.arguments["payment_method_id"]
    env, results = replay(domain, task)
    gid = results[0].content
    owner = domain.data["guests"][gid]
    before = owner["payment_methods"][pm]["balance"]
    after_text = env.execute("get_guest_details", {"guest_id": gid}).content
    charged = float(task.outputs[0])
    assert f'"balance": {round(before - charged, 2)}' in after_text
    assert domain.data["guests"][gid]["payment_methods"][pm]["balance"] == before


def test_created_booking_ids_are_deterministic(domain):
    task = first_task(domain, lambda t: any(a.name == "create_booking" for a in t.actions))
    env1, r1 = replay(domain, task)
    env2, r2 = replay(domain, task)
    assert [r.content for r in r1] == [r.content for r in r2]
    assert env1.fingerprint() == env2.fingerprint()
    assert "HB900001" in r1[-1].content
    create = next(a for a in task.actions if a.name == "create_booking")
    second = env1.execute(create.name, create.arguments)
    assert "HB900002" in second.content or second.error
    details = env1.execute("get_booking_details", {"booking_id": "HB900001"})
    assert not details.error and '"status": "confirmed"' in details.content


def test_read_tools_do_not_change_state(domain):
    for task in domain.tasks():
        env = domain.new_environment(task)
        start = env.fingerprint()
        for action in task.actions:
            if action.name not in domain.write_tools:
                env.execute(action.name, action.arguments)
        assert env.fingerprint() == start, task.id


# ----------------------------------------------------------------------------- bad input
BAD_VALUES = [None, 0, -1, 3.5, True, "", "nope", "HB000000", [], ["x"], {}, {"a": 1}]


def test_execute_never_raises_on_bad_arguments(domain):
    env = domain.new_environment(domain.tasks()[0])
    for tool in domain.tools():
        name = tool["function"]["name"]
        params = list(tool["function"]["parameters"]["properties"])
        for param, value in product(params, BAD_VALUES):
            result = env.execute(name, {param: value})
            assert isinstance(result, ToolResult)
        for bad in (None, [], "text", 5, {"unexpected": 1}):
            result = env.execute(name, bad)  # type: ignore[arg-type]
            assert isinstance(result, ToolResult)
            if bad is not None and params:
                assert result.error


def test_unknown_tools_and_ids_return_errors(domain):
    env = domain.new_environment(domain.tasks()[0])
    cases = [
        ("no_such_tool", {}),
        (None, {}),
        (42, {}),
        ("get_booking_details", {"booking_id": "HB000000"}),
        ("get_booking_details", {"booking_id": 123456}),
        ("get_booking_details", {"booking_id": "HB000000", "extra": 1}),
        ("get_guest_details", {"guest_id": None}),
        ("get_hotel_details", {"hotel_id": "H999"}),
        ("find_guest_by_email", {"email": "nobody@example.com"}),
        ("find_guest_by_name_and_phone", {"first_name": "A", "last_name": "B", "phone": "1"}),
        ("search_availability", {"hotel_id": "H101", "check_in": "tomorrow", "check_out": "x"}),
        ("search_availability", {"hotel_id": "H101", "check_in": "2025-07-02",
                                 "check_out": "2025-07-01"}),
        ("search_availability", {"hotel_id": "H101", "check_in": "2024-01-01",
                                 "check_out": "2024-01-03"}),
        ("cancel_booking", {"booking_id": "HB000000"}),
        ("create_booking", {"guest_id": "G0", "hotel_id": "H101", "room_type": "standard",
                            "check_in": "2025-07-01", "check_out": "2025-07-02", "adults": "2",
                            "payment_method_id": "card_0000"}),
        ("add_booking_extra", {"booking_id": "HB000000", "extra": "spa", "payment_method_id": "x"}),
        ("update_guest_contact", {"guest_id": "G0", "email": "not-an-email"}),
        ("calculate", {"expression": "__import__('os').system('echo hi')"}),
    ]  # fmt: skip
    start = env.fingerprint()
    for name, args in cases:
        result = env.execute(name, args)  # type: ignore[arg-type]
        assert result.error, (name, args, result.content)
        assert result.content.startswith("Error:"), result.content
    assert env.fingerprint() == start


def test_tool_enforced_rules(domain):
    data = domain.data
    completed = next(b for b in data["bookings"].values() if b["status"] == "completed")
    checked_in = next(b for b in data["bookings"].values() if b["status"] == "checked_in")
    env = domain.new_environment(domain.tasks()[0])
    for bid in (completed["booking_id"], checked_in["booking_id"]):
        assert env.execute("cancel_booking", {"booking_id": bid}).error
        assert env.execute("remove_booking_extra", {"booking_id": bid, "extra": "parking"}).error
    # a payment method that belongs to somebody else
    task = first_task(domain, lambda t: any(a.name == "add_booking_extra" for a in t.actions))
    add = next(a for a in task.actions if a.name == "add_booking_extra")
    owner = data["bookings"][add.arguments["booking_id"]]["guest_id"]
    stranger = next(g for g in data["guests"].values() if g["guest_id"] != owner)
    foreign = next(iter(stranger["payment_methods"]))
    result = env.execute("add_booking_extra", {**add.arguments, "payment_method_id": foreign})
    assert result.error and "not on guest" in result.content
    # an e-mail address that another guest already uses
    other_email = stranger["email"]
    result = env.execute("update_guest_contact", {"guest_id": owner, "email": other_email})
    assert result.error


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "open('/etc/passwd').read()",
        "x + 1",
        "(1).__class__",
        "[1, 2]",
        "lambda: 1",
        "2 ** 10000",
        "1 / 0",
        "9" * 400,
        "True + 1",
        "'a' * 3",
        " * ".join(["10 ** 60"] * 6),
        "10 ** 64 ** 64",
        "(-8) ** 0.5",
        "1e308 * 10",
    ],
)
def test_calculate_rejects_non_arithmetic(domain, expr):
    env = domain.new_environment(domain.tasks()[0])
    result = env.execute("calculate", {"expression": expr})
    assert result.error and result.content.startswith("Error:")


def test_calculate_arithmetic(domain):
    env = domain.new_environment(domain.tasks()[0])
    assert env.execute("calculate", {"expression": "(189 - 139) * 3"}).content == "150.00"
    assert env.execute("calculate", {"expression": "447 * 0.5"}).content == "223.50"
    assert env.execute("calculate", {"expression": "-(2 ** 3) + 10 // 4 % 3"}).content == "-6.00"
    assert env.execute("calculate", {"expression": "$1,200 / 3"}).content == "400.00"


def test_load_domain_by_name():
    from emotau.domains import load_domain

    dom = load_domain("hotel")
    assert isinstance(dom, HotelDomain)
    assert re.fullmatch(r"\d+", dom.version)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_seeds_build_consistent_tasks(seed):
    dom = HotelDomain(seed=seed)
    for task in dom.tasks():
        env, results = replay(dom, task)
        assert not any(r.error for r in results), task.id
        assert dom.evaluate(task, env, list(task.outputs)).reward == 1.0


def test_date_change_fee_depends_on_current_check_in_and_tier(domain):
    data = domain.data
    env = domain.new_environment(domain.tasks()[0])
    seen = set()
    for b in sorted(data["bookings"].values(), key=lambda b: b["booking_id"]):
        guest = data["guests"][b["guest_id"]]
        days = (date.fromisoformat(b["check_in"]) - TODAY).days
        if b["status"] != "confirmed" or days < 1:
            key = None
        else:
            key = (guest["loyalty_tier"] in ("gold", "platinum"), days < 7)
        if key is None or key in seen:
            continue
        card = next(p for p, m in guest["payment_methods"].items() if m["type"] == "credit_card")
        for shift in (14, 21, 28, 35, 42):
            args = {
                "booking_id": b["booking_id"],
                "check_in": (date.fromisoformat(b["check_in"]) + timedelta(shift)).isoformat(),
                "check_out": (date.fromisoformat(b["check_out"]) + timedelta(shift)).isoformat(),
                "payment_method_id": card,
            }
            result = env.execute("change_booking_dates", args)
            if not result.error:
                break
        else:
            continue
        seen.add(key)
        elite, soon = key
        assert ("date change fee 50.00" in result.content) == (soon and not elite), result.content
    assert len(seen) == 4
