from __future__ import annotations

import asyncio
import gc

import pytest

import emotau
from emotau.core._errors import UserError


def test_run_from_dict_with_overrides(tmp_path) -> None:
    run = emotau.run(
        {"domain": "toydomain:ToyDomain", "variants": ["control", "anger:severe"]},
        out=str(tmp_path),
        experiment_name="api",
        num_trials=2,
        agent__options={"skill": 1.0},
    )
    s = run.summary()
    assert [r["variant"] for r in s["variants"]] == ["control", "anger:severe"]
    assert s["complete"] and s["finished_episodes"] == 12
    assert run.spec.agent.options == {"skill": 1.0}
    eps = emotau.load_run(tmp_path / "api").episodes()
    assert len(eps) == 12 and {e["variant"] for e in eps} == {"control", "anger:severe"}
    # skill 1.0: control never fails (anger:severe still may, through its penalty)
    assert all(e["success"] for e in eps if e["variant"] == "control")


def test_run_inside_a_running_event_loop(tmp_path) -> None:
    async def notebook_cell() -> emotau.Run:
        return emotau.run(
            domain="toydomain:ToyDomain", out=str(tmp_path), num_trials=1, variants=["control"]
        )

    run = asyncio.run(notebook_cell())
    assert run.summary()["finished_episodes"] == 3


def test_run_leaves_the_garbage_collector_as_it_was(tmp_path) -> None:
    before = gc.get_threshold()
    emotau.run(domain="toydomain:ToyDomain", out=str(tmp_path), num_trials=1, variants=["control"])
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0 and gc.isenabled()


def test_run_async(tmp_path) -> None:
    run = asyncio.run(
        emotau.run_async(
            domain="toydomain:ToyDomain", out=str(tmp_path), num_trials=1, variants=["neutral"]
        )
    )
    assert run.summary()["variants"][0]["episodes"] == 3


def test_api_errors_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="unknown variant"):
        emotau.run(out=str(tmp_path), variants=["nope"])
    with pytest.raises(UserError, match="unknown scripted agent options: skil"):
        emotau.run(out=str(tmp_path), agent__options={"skil": 1})
    with pytest.raises(UserError, match="not an emotau run"):
        emotau.load_run(tmp_path)
    assert not (tmp_path / "demo").exists()
