from __future__ import annotations

import pytest

from emotau.core._errors import UserError
from emotau.spec._spec import build_spec, diff_identity, spec_hash


def test_defaults() -> None:
    s = build_spec()
    assert s.domain == "hotel" and s.agent.model == "scripted" and s.num_trials == 3
    assert s.variants == ["control", "neutral", "frustration", "anxiety", "anger", "confusion"]


def test_file_then_flags_override(tmp_path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        'experiment_name = "e1"\nnum_trials = 2\ntasks = 4\nvariants = ["control", "anger"]\n'
        '[agent]\nmodel = "scripted"\ntemperature = 0.5\noptions = {skill = 0.5}\n'
    )
    s = build_spec(cfg, {"num_trials": 5, "agent.temperature": None, "task_ids": [1, 2]})
    assert s.num_trials == 5  # flag wins
    assert s.agent.temperature == 0.5  # unset flag does not override
    assert s.task_ids == [1, 2] and s.tasks is None  # --task-ids replaces the file's tasks
    assert s.agent.options == {"skill": 0.5}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("num_trials = 0\n", "field 'num_trials'"),
        ("colour = 1\n", "field 'colour': unknown field"),
        ("[agent]\ntemprature = 1\n", "field 'agent.temprature': unknown field"),
        ("experiment_name = '../x'\n", "field 'experiment_name'"),
        ("variants = []\n", "field 'variants'"),
        ("num_trials = \n", "not valid TOML"),
    ],
)
def test_bad_config(tmp_path, body, needle) -> None:
    p = tmp_path / "c.toml"
    p.write_text(body)
    with pytest.raises(UserError, match=needle):
        build_spec(p)


def test_both_task_flags_rejected() -> None:
    with pytest.raises(UserError, match="not both"):
        build_spec(None, {"tasks": 3, "task_ids": [1]})


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(UserError, match="cannot read config file"):
        build_spec(tmp_path / "missing.toml")


def test_hash_and_diff() -> None:
    a = {"num_trials": 3, "agent": {"model": "x", "temperature": 0.0}, "task_ids": [1, 2]}
    b = {"num_trials": 5, "agent": {"model": "x", "temperature": 0.7}, "task_ids": [1, 2]}
    assert spec_hash(a) == spec_hash(dict(reversed(list(a.items()))))  # key order irrelevant
    assert spec_hash(a) != spec_hash(b)
    assert diff_identity(a, b) == ["agent.temperature (0.0 -> 0.7)", "num_trials (3 -> 5)"]


def test_diff_identity_says_what_changed_in_long_lists() -> None:
    """Cut at 60 characters, two task lists look alike ("[0, 1, 2, ... -> [0, 1, 2, ..."):
    the difference is named instead."""
    a = {"task_ids": list(range(45)), "variants": ["control", "anger"]}
    b = {"task_ids": list(range(40)), "variants": ["control", "anger"]}
    assert diff_identity(a, b) == ["task_ids (45 -> 40 values; without 40, 41, 42, 43, 44)"]
    c = {"task_ids": [*range(40), 99], "variants": ["control", "anger"]}
    assert diff_identity(b, c) == ["task_ids (40 -> 41 values; with 99)"]
    d = {"task_ids": list(reversed(range(40))), "variants": ["control", "anger"]}
    assert diff_identity(b, d) == ["task_ids (40 -> 40 values; the same values in another order)"]
    assert diff_identity({"x": [1, 2]}, {"x": [1, 3]}) == ["x ([1, 2] -> [1, 3])"]  # short: whole
