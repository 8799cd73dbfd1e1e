from __future__ import annotations

import pytest

from emotau.domains import load_domain
from emotau.domains._base import Database, normalize_text, output_mentioned


@pytest.mark.parametrize(
    ("output", "message", "hit"),
    [
        ("212.50", "Your refund is $212.50.", True),
        ("212.50", "Your refund is $212.5", True),
        ("516", "the total is 516.0 dollars", True),
        ("1,212", "that is 1212.00", True),
        ("10", "it costs 100", False),
        ("10", "it costs 10.5", False),
        ("50", "refund of $212.50", False),
        ("10", "version 3.10", False),
        ("HB900001", "your new booking is hb900001.", True),
        ("gold", "you are golden", False),
    ],
)
def test_output_matching(output, message, hit) -> None:
    assert output_mentioned(output, normalize_text(message)) is hit


def test_database_copy_on_write() -> None:
    base = Database.freeze_tables({"t": {"a": {"n": 1, "l": [1, 2]}}})
    db = Database(base)
    with pytest.raises(TypeError):
        db.get("t", "a")["n"] = 5  # base records are read-only
    db.edit("t", "a")["n"] = 2
    with pytest.raises(TypeError):
        db.get("t", "a")["n"] = 3  # so are edited records read through get()
    assert db.get("t", "a")["n"] == 2 and base["t"]["a"]["n"] == 1
    db.insert("new_table", "x", {"v": 1})  # a table the base does not have
    assert list(db.keys("new_table")) == ["x"] and db.get("new_table", "missing") is None
    other = Database(base)
    assert other.fingerprint() != db.fingerprint()
    other.insert("new_table", "x", {"v": 1})
    other.edit("t", "a")["n"] = 2
    assert other.fingerprint() == db.fingerprint()
    db.edit("t", "a")["n"] = 1  # back to the base value: equal to an untouched database
    other2 = Database(base)
    other2.insert("new_table", "x", {"v": 1})
    assert db.fingerprint() == other2.fingerprint()


def test_transfer_must_match_ground_truth() -> None:
    toy = load_domain("toydomain:ToyDomain")
    needs, plain = toy.tasks()[2], toy.tasks()[1]
    env = toy.new_environment(needs)
    assert toy.evaluate(needs, env, [], ["transfer_to_human_agents"]).reward == 1.0
    res = toy.evaluate(needs, env, [], [])
    assert res.reward == 0.0 and res.breakdown["transfer"] == {"required": True, "done": False}
    env = toy.new_environment(plain)
    assert toy.evaluate(plain, env, ["5"], ["get_balance"]).reward == 1.0
    # handing off a customer the agent should have served is a failure too
    assert toy.evaluate(plain, env, ["5"], ["transfer_to_human_agents"]).reward == 0.0
