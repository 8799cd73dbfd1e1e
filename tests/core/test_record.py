"""The typed episode record: one definition that writes and reads every record."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import emotau
from emotau.core import SCHEMA_VERSION, EpisodeRecord, RecordError, Status, Termination
from emotau.core._record import FIELDS, KEY_FIELDS, LIGHT_FIELDS, is_finished, record_key
from emotau.results import _store
from helpers import emotau as emotau_cli

DATA = Path(__file__).resolve().parent.parent / "data" / "runs"
OLD_RUN = DATA / "v0.1-hotel"
SRC = Path(__file__).resolve().parent.parent.parent / "src" / "emotau"


def _record(**changes: Any) -> EpisodeRecord:
    fields: dict[str, Any] = {
        "task_id": 3,
        "variant": "anger:severe",
        "trial": 1,
        "status": Status.COMPLETED,
        "scored": True,
        "reward": 0.0,
        "success": False,
        "reward_breakdown": {"db_match": False, "outputs": {}},
        "termination": Termination.MAX_STEPS,
        "error": None,
        "num_turns": 4,
        "num_agent_steps": 5,
        "num_tool_calls": 2,
        "started_at": 1700000000.5,
        "duration_s": 0.25,
        "synthetic": True,
        "usage": {"agent": {"calls": 5}, "user": {"calls": 2}, "retries": 0},
        "variant_info": {"label": "anger:severe", "components": [], "text": "t"},
        "turns": [{"role": "user", "t": 0.0, "duration_s": 0.0, "content": "hi", "stop": None}],
        "agent": {"system_prompt": "a", "messages": []},
        "user": {"system_prompt": "u", "messages": []},
        "shard": "0/1",
    }
    return EpisodeRecord(**(fields | changes))


def _old_lines() -> list[dict[str, Any]]:
    path = OLD_RUN / "episodes" / "shard-00000-of-00001.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------ the names
def test_termination_values_are_the_documented_strings() -> None:
    assert {t.value for t in Termination} == {
        "user_goal_met",
        "user_gave_up",
        "transfer_to_human",
        "user_transferred",
        "user_out_of_scope",
        "max_steps",
        "agent_error",
        "agent_empty_reply",
        "user_simulator_error",
        "infra_error",
    }
    assert {s.value for s in Status} == {"completed", "infra_error"}
    # a member is its string: JSON, dict keys and comparisons with plain strings are unchanged
    assert json.dumps({Termination.MAX_STEPS: Termination.AGENT_ERROR}) == (
        '{"max_steps": "agent_error"}'
    )
    assert {"user_gave_up": 1}[Termination.USER_GAVE_UP] == 1


def test_the_store_uses_the_record_definition() -> None:
    assert _store.LIGHT_FIELDS is LIGHT_FIELDS
    assert _store.record_key is record_key and _store.is_finished is is_finished
    assert set(LIGHT_FIELDS) <= set(FIELDS) and FIELDS[:3] == KEY_FIELDS
    assert record_key({"task_id": "4", "variant": "x", "trial": 2}) == (4, "x", 2)
    assert is_finished({"status": "completed"}) and not is_finished({"status": "infra_error"})
    assert _record().key == (3, "anger:severe", 1) and _record().finished
    assert not _record(status=Status.INFRA_ERROR).finished


def _string_constants(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.value, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_termination_and_status_names_are_written_only_in_the_record_module() -> None:
    names = {t.value for t in Termination} | {s.value for s in Status}
    # "max_steps" is also a spec field, and upstream tau2's name for its own termination, as
    # "agent_error" is; "transfer_to_human" is also the prefix of transfer tools' names
    allowed = {"max_steps", "agent_error", "transfer_to_human"}
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "core" / "_record.py" or "domains/hotel" in path.as_posix():
            continue  # the hotel's bookings have a status "completed" of their own
        for value, line in _string_constants(path):
            if value in names - allowed:
                bad.append(f"{path.relative_to(SRC)}:{line}: {value!r}")
    assert not bad, "use emotau.core.Termination / Status:\n" + "\n".join(bad)


# ------------------------------------------------------------------------ writing and reading
def test_to_dict_and_from_dict_round_trip() -> None:
    rec = _record()
    d = rec.to_dict()
    assert d["schema_version"] == SCHEMA_VERSION == 2
    assert type(d["termination"]) is str and type(d["status"]) is str
    assert EpisodeRecord.from_dict(d) == rec
    assert EpisodeRecord.from_dict(json.loads(json.dumps(d))) == rec
    assert EpisodeRecord.from_dict(d).to_dict() == d
    back = EpisodeRecord.from_dict(d)
    assert isinstance(back.termination, Termination) and isinstance(back.status, Status)


def test_key_order_is_the_one_the_prefix_reader_expects() -> None:
    d = _record().to_dict()
    assert list(d) == [f for f in FIELDS if f != "hook_errors"]
    with_errors = _record()
    with_errors.hook_errors = [{"hook": "h", "event": "on_episode_end", "error": "boom"}]
    d2 = with_errors.to_dict()
    assert list(d2) == list(FIELDS) and list(d2)[-1] == "schema_version"
    assert EpisodeRecord.from_dict(d2).hook_errors == with_errors.hook_errors
    assert list(d)[:4] == ["task_id", "variant", "trial", "status"]
    assert list(d)[-2:] == ["shard", "schema_version"]
    line = json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()
    m = _store._PREFIX_RE.match(line)
    assert m is not None and m.groups() == (b"3", b"anger:severe", b"1", b"completed")
    # a record no runner wrote has no shard key, as before
    assert "shard" not in _record(shard=None).to_dict()


def test_the_engine_writes_a_version_2_record() -> None:
    from emotau.domains import load_domain
    from helpers import run_one_episode

    dom = load_domain("hotel")
    d = run_one_episode(dom, dom.tasks()[0])
    assert d["schema_version"] == 2 and "shard" not in d
    assert list(d) == [f for f in FIELDS if f not in ("shard", "hook_errors")]
    rec = EpisodeRecord.from_dict(d)
    assert rec.termination is Termination.USER_GOAL_MET and rec.to_dict() == d


def test_a_version_1_record_reads() -> None:
    v1 = _record().to_dict()
    del v1["schema_version"]
    rec = EpisodeRecord.from_dict(v1)
    assert rec.schema_version == 1 and rec.extra == {}
    # written back, it stays marked as the version it was read as
    assert rec.to_dict() == v1 | {"schema_version": 1}


def test_unknown_keys_are_kept_and_written_back_after_the_known_ones() -> None:
    d = _record().to_dict() | {"annotator": "me", "notes": [1, 2]}
    rec = EpisodeRecord.from_dict(d)
    assert rec.extra == {"annotator": "me", "notes": [1, 2]}
    out = rec.to_dict()
    assert out == d and list(out)[-3:] == ["schema_version", "annotator", "notes"]
    # an extra key never overrides a known field
    rec.extra["reward"] = 123
    assert rec.to_dict()["reward"] == 0.0


def test_a_newer_schema_is_refused_with_a_clear_error() -> None:
    d = _record().to_dict() | {"schema_version": 3}
    with pytest.raises(RecordError, match=r"task 3, variant 'anger:severe', trial 1.*upgrade"):
        EpisodeRecord.from_dict(d)
    for bad in (0, "2", True, None, 1.5):
        with pytest.raises(RecordError, match="invalid schema_version"):
            EpisodeRecord.from_dict(d | {"schema_version": bad})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"termination": "lost_interest"}, "not a valid episode record.*lost_interest"),
        ({"status": "done"}, "not a valid episode record"),
        ({"task_id": "x"}, "not a valid episode record"),
    ],
)
def test_invalid_fields_are_refused(change: dict[str, Any], match: str) -> None:
    with pytest.raises(RecordError, match=match):
        EpisodeRecord.from_dict(_record().to_dict() | change)


def test_missing_fields_are_refused() -> None:
    d = _record().to_dict()
    del d["usage"], d["turns"]
    with pytest.raises(RecordError, match="lacks 'usage', 'turns'"):
        EpisodeRecord.from_dict(d)
    with pytest.raises(RecordError, match="JSON object"):
        EpisodeRecord.from_dict([1, 2])  # type: ignore[arg-type]
    assert issubclass(RecordError, emotau.UserError)


# ------------------------------------------------------------------------ a run of emotau 0.1
def test_every_line_of_a_version_1_run_reads() -> None:
    lines = _old_lines()
    assert len(lines) == 16
    for d in lines:
        assert "schema_version" not in d
        rec = EpisodeRecord.from_dict(d)
        assert rec.schema_version == 1 and rec.extra == {} and rec.shard == "0/1"
        assert rec.to_dict() == d | {"schema_version": 1}
        assert list(rec.to_dict()) == [*d, "schema_version"]  # same key order as 0.1 wrote


def test_a_version_1_run_loads_and_summarises_as_before() -> None:
    run = emotau.load_run(OLD_RUN)
    episodes = run.episodes()
    assert len(episodes) == 16 and all(type(e) is dict for e in episodes)
    assert all("schema_version" not in e for e in episodes)  # dicts as written
    records = list(run.records())
    assert len(records) == 16 and all(isinstance(r, EpisodeRecord) for r in records)
    assert {r.key for r in records} == {record_key(e) for e in episodes}
    expected = json.loads((DATA / "v0.1-hotel.summary.json").read_text(encoding="utf-8"))
    got = run.summary()
    got.pop("run")
    expected.pop("run", None)
    usage, cost = got.pop("usage"), got.pop("cost_usd")  # added after 0.1: the totals
    assert got == expected
    assert usage["agent"]["episodes"] == 16 and cost is None
    assert usage["agent"]["calls"] == sum(e["usage"]["agent"]["calls"] for e in episodes)


def test_a_version_1_run_resumes_with_nothing_to_run(tmp_path: Path) -> None:
    copy = tmp_path / "v0.1-hotel"
    shutil.copytree(OLD_RUN, copy)
    shard = copy / "episodes" / "shard-00000-of-00001.jsonl"
    before = shard.read_bytes()
    r = emotau_cli("resume", str(copy), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "0 episodes run now, 16 already finished" in r.stderr
    assert shard.read_bytes() == before
