from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import emotau
from emotau.analysis.conversation import (
    FAILURE_REASONS,
    POOLED,
    behaviour_vs_success,
    classify_failure,
    clustered_mean,
    conversation_summary,
    failure_taxonomy,
    is_acknowledgement,
    is_apology,
    is_clarifying_question,
)
from emotau.analysis.tables import (
    EPISODE_COLUMNS,
    TURN_COLUMNS,
    build_tables,
    episode_table,
    turn_table,
    variant_emotion,
    write_parquet,
)
from emotau.core._errors import UserError

SAMPLES = Path("/tmp/samples")
KEY = ["task_id", "variant", "trial"]


def record(
    breakdown: Any = None,
    termination: str = "user_goal_met",
    *,
    success: bool = False,
    task_id: int = 0,
    variant: str = "control",
    trial: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A minimal completed, scored episode record (docs/results.md)."""
    return {
        "task_id": task_id,
        "variant": variant,
        "trial": trial,
        "status": "completed",
        "scored": True,
        "reward": 1.0 if success else 0.0,
        "success": success,
        "termination": termination,
        "reward_breakdown": breakdown,
        **extra,
    }


def hotel(db: bool = True, said: bool = True, required: bool = False, done: bool = False):
    return {
        "db_match": db,
        "outputs": {"12.00": said},
        "transfer": {"required": required, "done": done},
    }


def taubench(actions: bool = True, outputs: bool | None = None) -> dict[str, Any]:
    bd: dict[str, Any] = {"r_actions": actions, "gt_data_hash": "ab" * 32}
    if outputs is not None:
        bd |= {"r_outputs": 1.0 if outputs else 0.0, "outputs": {"10": outputs}}
    return bd


def tau2(basis: list[str], **checks: Any) -> dict[str, Any]:
    bd: dict[str, Any] = {
        "reward": 0.0,
        "db_check": {"db_match": True, "db_reward": 1.0},
        "env_assertions": [],
        "action_checks": [],
        "nl_assertions": [],
        "communicate_checks": [],
        "reward_basis": basis,
        "info": {"env": None, "nl": None, "communicate": None, "action": None},
        "nl_judged": None,
    }
    return bd | checks


def action(name: str, match: bool) -> dict[str, Any]:
    return {"action": {"action_id": name, "name": name, "arguments": {}}, "action_match": match}


FAILURES = [
    # hotel
    (record(hotel(db=False)), "wrong_state", None),
    (record(hotel(said=False)), "missing_output", None),
    (record(hotel(db=False, done=True), "transfer_to_human"), "transfer", "unneeded"),
    (record(hotel(required=True)), "transfer", "missed"),
    (record(hotel(db=False), "max_steps"), "step_limit", None),
    (record(hotel(db=False), "user_gave_up"), "user_gave_up", None),
    (record(hotel(db=False), "agent_error"), "agent_tool_errors", None),
    (record(hotel(), "agent_empty_reply"), "empty_reply", None),  # checks pass, still a failure
    (record(hotel()), "other", None),
    # tau-bench
    (record(taubench(actions=False)), "wrong_state", None),
    (record(taubench(outputs=False)), "missing_output", None),
    (record(taubench(actions=False), "transfer_to_human"), "transfer", "unneeded"),
    (record(taubench(actions=False), "max_steps"), "step_limit", None),
    (record(taubench(actions=False), "user_gave_up"), "user_gave_up", None),
    (record(taubench(actions=False), "agent_error"), "agent_tool_errors", None),
    # tau2
    (record(tau2(["DB"], db_check={"db_match": False, "db_reward": 0.0})), "wrong_state", None),
    (record(tau2(["ENV_ASSERTION"], env_assertions=[{"met": False}])), "wrong_state", None),
    (record(tau2(["ACTION"], action_checks=[action("cancel", False)])), "wrong_state", None),
    (record(tau2(["DB"], action_checks=[action("cancel", False)])), "other", None),  # not in basis
    (record(tau2(["COMMUNICATE"], communicate_checks=[{"met": False}])), "missing_output", None),
    (record(tau2(["DB", "NL_ASSERTION"], nl_assertions=[{"met": False}])), "nl_assertion", None),
    (record(tau2(["DB"], reward_breakdown={"DB": 0.0})), "wrong_state", None),
    (
        record(tau2(["DB"], action_checks=[action("cancel", True)]), "transfer_to_human"),
        "transfer",
        "unneeded",
    ),
    (
        record(tau2(["DB"], action_checks=[action("transfer_to_human_agents", False)])),
        "transfer",
        "missed",
    ),
    (
        record({"reward": 0.0, "info": {"note": "terminated prematurely: max_steps"}}, "max_steps"),
        "step_limit",
        None,
    ),
    (record({"reward": 0.0, "evaluation_error": "KeyError: x"}), "other", None),
    (record(tau2(["DB"]), "user_gave_up"), "user_gave_up", None),
    (record(tau2(["DB"]), "agent_error"), "agent_tool_errors", None),
    # unknown shapes
    (record({"foo": 1}), "other", None),
    (record(None), "other", None),
    (record("garbage"), "other", None),
    (record([1, 2]), "other", None),
    (record({"db_match": "?", "outputs": 5, "transfer": "x"}), "other", None),
    (record({"r_actions": True, "r_outputs": None, "outputs": []}), "other", None),
    (record({"reward_basis": 3, "action_checks": [None, {"action": 7}]}), "other", None),
]


@pytest.mark.parametrize(("rec", "category", "kind"), FAILURES)
def test_failure_categories(rec: dict[str, Any], category: str, kind: str | None) -> None:
    f = classify_failure(rec)
    assert f.category == category
    assert f.transfer_kind == kind
    assert category in f.reasons and f.reasons <= set(FAILURE_REASONS)
    assert ("false_goal_met" in f.reasons) == (rec["termination"] == "user_goal_met")


def test_failure_flags_several_reasons_and_none_for_successes() -> None:
    f = classify_failure(record(hotel(db=False, said=False, done=True), "transfer_to_human"))
    assert f.category == "transfer"
    assert f.reasons == {"transfer", "wrong_state", "missing_output"}
    assert classify_failure(record(hotel(), success=True)).category is None
    unscored = record(None, "user_simulator_error") | {"scored": False, "reward": None}
    assert classify_failure(unscored).reasons == frozenset()
    # a required transfer that was done is no failure reason
    ok = record(tau2(["DB"], action_checks=[action("transfer_to_human_agents", True)]))
    assert classify_failure(ok | {"termination": "transfer_to_human"}).category == "other"


# ------------------------------------------------------------------------ tables
def tool_call(name: str, error: bool = False) -> dict[str, Any]:
    return {"id": name, "name": name, "arguments": {}, "result": "x", "error": error}


TURNS = [
    {"role": "user", "t": 0.0, "duration_s": 0.1, "content": "Hi, I need help.", "stop": None},
    {"role": "agent", "t": 0.1, "duration_s": 0.2, "content": None, "tool_calls": []},
    {
        "role": "agent",
        "t": 0.3,
        "duration_s": 0.2,
        "content": None,
        "tool_calls": [tool_call("a"), tool_call("b", error=True)],
    },
    {"role": "agent", "t": 0.5, "duration_s": 0.1, "content": "Sorry, which booking?"},
    {"role": "user", "t": 0.6, "duration_s": 0.1, "content": "HB1", "stop": None},
    {
        "role": "agent",
        "t": 0.7,
        "duration_s": 0.1,
        "content": None,
        "tool_calls": [tool_call("c", True)],
    },
    {
        "role": "agent",
        "t": 0.8,
        "duration_s": 0.1,
        "content": "I'm sorry for the trouble. Your balance is 5.",
    },
    {"role": "user", "t": 0.9, "duration_s": 0.1, "content": "Thanks!", "stop": "goal_met"},
]


def full_record(**kw: Any) -> dict[str, Any]:
    return record(
        hotel(db=False),
        num_turns=6,
        num_agent_steps=5,
        num_tool_calls=3,
        synthetic=True,
        duration_s=1.0,
        usage={
            "agent": {"calls": 5, "prompt_tokens": 100, "completion_tokens": 10, "latency_s": 0.5}
        },
        variant_info={"components": [{"name": "anger", "intensity": "severe", "emotion": "anger"}]},
        turns=TURNS,
        **kw,
    )


def test_episode_table_counts_match_hand_counts() -> None:
    row = episode_table([full_record()]).iloc[0]
    assert list(episode_table([full_record()]).columns) == list(EPISODE_COLUMNS)
    assert (row.user_turns, row.agent_messages, row.num_turns) == (3, 3, 6)
    # the empty tool_calls list is a message to the customer (as the engine counts it)
    assert (row.num_agent_steps, row.num_tool_calls, row.tool_errors) == (5, 3, 2)
    assert row.turns_before_first_tool == 1
    assert row.user_chars_mean == pytest.approx((16 + 3 + 7) / 3)
    assert row.agent_chars_mean == pytest.approx((0 + 21 + 45) / 3)
    assert (row.apologies, row.acknowledgements, row.clarifying_questions) == (2, 0, 1)
    assert row.any_apology and row.any_clarifying_question and not row.any_acknowledgement
    assert (row.emotion, row.intensity) == ("anger", "severe")
    assert (row.agent_calls, row.agent_prompt_tokens, row.agent_latency_s) == (5, 100, 0.5)
    assert pd.isna(row.user_calls) and pd.isna(row.judge_cost_usd)
    assert row.failure == "wrong_state" and row.fail_wrong_state and row.fail_false_goal_met
    assert not row.success and row.scored and row.reward == 0.0


def test_turn_table_matches_turns() -> None:
    tu = turn_table([full_record()])
    assert list(tu.columns) == list(TURN_COLUMNS)
    assert len(tu) == len(TURNS) and list(tu.turn_index) == list(range(len(TURNS)))
    assert list(tu.chars) == [len(t.get("content") or "") for t in TURNS]
    assert list(tu.n_tool_calls) == [0, 0, 2, 0, 0, 1, 0, 0]
    assert list(tu.tool_errors) == [0, 0, 1, 0, 0, 1, 0, 0]
    assert list(tu.is_message) == [True, True, False, True, True, False, True, True]
    assert tu.stop.iloc[-1] == "goal_met" and pd.isna(tu.content.iloc[2])
    assert tu.t.tolist() == [t["t"] for t in TURNS]


def test_light_records_give_missing_turn_columns() -> None:
    light = {k: v for k, v in full_record().items() if k not in ("turns", "usage")}
    ep, tu = build_tables([light])
    assert len(tu) == 0 and list(tu.columns) == list(TURN_COLUMNS)
    row = ep.iloc[0]
    assert pd.isna(row.user_turns) and pd.isna(row.any_apology) and pd.isna(row.agent_calls)
    assert row.num_turns == 6 and row.failure == "wrong_state"


def test_bad_input_is_a_one_line_value_error() -> None:
    for bad, msg in [
        ([], "no episode records"),
        (iter(()), "no episode records"),
        ([{"variant": "control", "trial": 0}], "missing its key fields"),
        ([full_record(), {"task_id": "x", "variant": "a", "trial": 0}], "record 1 is missing"),
        ([full_record(), full_record()], "duplicate episode key"),
        (["nope"], "not a dict"),
        ({"task_id": 0}, "iterable of episode records"),
    ]:
        with pytest.raises(ValueError, match=msg) as info:
            episode_table(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="missing column"):
        failure_taxonomy(pd.DataFrame({"variant": ["a"]}))
    with pytest.raises(ValueError, match="empty"):
        conversation_summary(episode_table([full_record()]).iloc[:0])
    with pytest.raises(ValueError, match="DataFrame"):
        behaviour_vs_success([full_record()])  # type: ignore[arg-type]


def test_variant_emotion() -> None:
    comp = [{"name": "control", "intensity": "moderate", "emotion": None}]
    assert variant_emotion({"components": comp}) == ("none", "none")
    two = [
        {"name": "frustration", "intensity": "mild", "emotion": "frustration"},
        {"name": "confusion", "intensity": "mild", "emotion": "confusion"},
    ]
    assert variant_emotion({"components": two}) == ("frustration+confusion", "mild")
    two[1]["intensity"] = "severe"
    assert variant_emotion({"components": two}) == ("frustration+confusion", "mild+severe")
    assert variant_emotion(None) == (None, None)


def test_write_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    recs = [full_record(), full_record(trial=1, variant="anger")]
    recs.append({k: v for k, v in full_record(trial=2).items() if k != "turns"})
    ep, tu = build_tables(recs)
    for name, df in (("ep", ep), ("tu", tu)):
        write_parquet(df, tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{name}.parquet"), df)


def test_write_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(UserError, match="needs pyarrow"):
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")


# ------------------------------------------------------------------------ behaviours
BEHAVIOUR_CASES = [
    # text, apology, acknowledgement, clarifying question
    ("I'm sorry for the trouble.", True, False, False),
    ("Sorry, which booking?", True, False, True),
    ("Your balance is 5.", False, False, False),
    ("My apologies for the delay.", True, False, False),
    ("I apologise, that was my mistake.", True, False, False),
    ("We regret the inconvenience this caused.", True, False, False),
    ("No need to apologize! Let me check.", False, False, False),
    ("I understand how frustrating this must be.", False, True, False),
    ("I can see why you\u2019re upset about the charge.", False, True, False),
    ("I hear you, and I want to fix this.", False, True, False),
    ("That must be stressful right before a trip.", False, True, False),
    ("I understand your concern about the fee.", False, True, False),
    ("You're clearly frustrated, and that's fair.", False, True, False),
    ("I understand you'd like to cancel the booking.", False, False, False),
    ("I can see that you have two bookings.", False, False, False),
    ("Thank you for your patience.", False, False, False),
    ("Could you provide your email address?", False, False, True),
    ("Can you confirm the booking ID please.", False, False, True),
    ("Please share the order number.", False, False, True),
    ("Would you prefer the standard or the deluxe room?", False, False, True),
    ("What dates would you like instead?", False, False, True),
    ("Is that correct?", False, False, True),
    ("Here is what I will do: cancel booking HB1. Shall I go ahead?", False, False, False),
    ("Would you like me to proceed?", False, False, False),
    ("Everything is done. Is there anything else I can help you with?", False, False, False),
    ("How can I help you today?", False, False, False),
    (
        "I'm so sorry, I know how frustrating this is. Which card should I refund?",
        True,
        True,
        True,
    ),
    ("The total is 5.00? No, it is 7.50.", False, False, False),
]


@pytest.mark.parametrize(("text", "apology", "ack", "clarify"), BEHAVIOUR_CASES)
def test_behaviour_regexes(text: str, apology: bool, ack: bool, clarify: bool) -> None:
    assert is_apology(text) == apology
    assert is_acknowledgement(text) == ack
    assert is_clarifying_question(text) == clarify


def test_clustered_mean() -> None:
    n, mean, se = clustered_mean([1.0, 3.0, math.nan, 5.0, 7.0], [0, 0, 1, 1, 1])
    assert (n, mean) == (4, 4.0)
    # cluster sums of deviations: (-3 - 1) = -4 and (1 + 3) = 4; G/(G-1) = 2
    assert se == pytest.approx(math.sqrt(2 * 32) / 4)
    assert math.isnan(clustered_mean([1.0, 2.0], [0, 0])[2])
    assert clustered_mean([math.nan], [0])[0] == 0


# ------------------------------------------------------------------------ a real run
@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("runs")
    run = emotau.run(
        {"variants": ["control", "anger"]},
        out=str(out),
        experiment_name="c",
        num_trials=2,
        tasks=10,
    )
    return run.episodes()


def test_real_run_tables_and_summaries(real_run: list[dict[str, Any]]) -> None:
    ep, tu = build_tables(real_run)
    assert len(ep) == len(real_run) == 40 and not ep.duplicated(KEY).any()
    assert len(tu) == sum(len(r["turns"]) for r in real_run)
    assert not tu.duplicated([*KEY, "turn_index"]).any()
    assert (ep.num_turns == ep.user_turns + ep.agent_messages).all()
    per_ep = tu.groupby(KEY)["n_tool_calls"].sum()
    assert (ep.set_index(KEY)["num_tool_calls"] == per_ep.reindex(ep.set_index(KEY).index)).all()
    assert set(ep.emotion) == {"none", "anger"}
    for variant in ("control", "anger"):
        recs = [r for r in real_run if r["variant"] == variant and r["scored"]]
        direct = sum(r["success"] for r in recs) / len(recs)
        assert ep[ep.variant == variant].success.mean() == pytest.approx(direct)

    tax = failure_taxonomy(ep)
    for variant, sub in tax.groupby("variant"):
        n_failed = sub.n_failed.iloc[0]
        direct = sum(1 for r in real_run if r["variant"] == variant and not r["success"])
        assert n_failed == direct
        if n_failed:
            assert sub.share.sum() == pytest.approx(1.0)
            assert sub.n_primary.sum() == n_failed
            assert sub[sub.category == "other"].n_primary.item() < n_failed

    summ = conversation_summary(ep)
    assert set(summ.variant) == {"control", "anger"}
    turns = summ[(summ.variant == "anger") & (summ.measure == "num_turns")].iloc[0]
    direct_turns = [r["num_turns"] for r in real_run if r["variant"] == "anger"]
    assert turns["mean"] == pytest.approx(sum(direct_turns) / len(direct_turns))
    assert turns.ci_low <= turns["mean"] <= turns.ci_high

    bvs = behaviour_vs_success(ep)
    assert set(bvs.variant) == {"control", "anger", POOLED}
    for _, row in bvs.iterrows():
        recs = [r for r in real_run if row.variant in (POOLED, r["variant"]) and r["scored"]]
        assert row.n_with + row.n_without == len(recs)
        assert row.successes_with + row.successes_without == sum(r["success"] for r in recs)


# ------------------------------------------------------------------------ sample runs
@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no sample runs in /tmp/samples")
@pytest.mark.parametrize(
    "name", ["hotel-demo", "taubench-retail", "tau2-retail-test", "tau2-telecom-small"]
)
def test_sample_runs(name: str) -> None:
    if not (SAMPLES / name).is_dir():
        pytest.skip(f"no sample run {name}")
    run = emotau.load_run(SAMPLES / name)
    ep, tu = build_tables(run.episodes())
    assert len(tu) > 0 and not ep.duplicated(KEY).any()
    failed = ep[ep.scored & ~ep.success]
    assert len(failed) > 0
    if not name.startswith("hotel"):
        assert (failed.failure != "other").all()
    tax = failure_taxonomy(ep)
    shares = tax.groupby("variant").share.sum()
    assert ((shares - 1).abs() < 1e-9)[tax.groupby("variant").n_failed.first() > 0].all()
    conversation_summary(ep)
    behaviour_vs_success(ep)
    light = episode_table(run.episodes(light=True))
    assert light.failure.fillna("").tolist() == ep.failure.fillna("").tolist()
