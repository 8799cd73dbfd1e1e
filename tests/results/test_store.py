from __future__ import annotations

import json

from emotau.results._store import RunStore, ShardWriter, merge_records, read_shard, repair_shard

IDENT = {"task_ids": [0], "variants": {"a": "x"}, "num_trials": 1}


def _rec(task: int, variant: str, trial: int, status: str = "completed", **kw) -> dict:
    return {"task_id": task, "variant": variant, "trial": trial, "status": status, **kw}


def test_writer_appends_lines_that_parse(tmp_path) -> None:
    path = tmp_path / "shard-00000-of-00001.jsonl"
    w = ShardWriter(path)
    for i in range(5):
        w.append(_rec(i, "control", 0, text="line\nwith newline and ünïcode"))
    w.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 6
    assert [json.loads(x)["task_id"] for x in lines[:-1]] == [0, 1, 2, 3, 4]


def test_repair_cuts_truncated_last_line(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    good = json.dumps(_rec(0, "control", 0)) + "\n"
    path.write_text(good + good + '{"task_id": 5, "varia')
    assert repair_shard(path) == len('{"task_id": 5, "varia')
    assert path.read_text() == good + good
    assert repair_shard(path) == 0  # idempotent


def test_repair_cuts_garbage_last_line_and_handles_empty(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    good = json.dumps(_rec(0, "control", 0)) + "\n"
    path.write_bytes(good.encode() + b"\x00\x00\x00\n")
    repair_shard(path)
    assert path.read_text() == good
    path.write_text('{"partial')
    repair_shard(path)
    assert path.read_bytes() == b""
    assert repair_shard(tmp_path / "missing.jsonl") == 0


def test_reader_ignores_unterminated_line_without_touching_it(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    content = json.dumps(_rec(0, "a", 0)) + "\n" + '{"task_id": 1'
    path.write_text(content)
    assert [r["task_id"] for r in read_shard(path)] == [0]
    assert path.read_text() == content  # a reader never modifies another writer's file


def test_merge_prefers_finished_and_first(tmp_path) -> None:
    recs = [
        _rec(0, "a", 0, status="infra_error", n=1),
        _rec(0, "a", 0, n=2),
        _rec(0, "a", 0, n=3),  # duplicate of a finished episode from another shard
        _rec(1, "a", 0, status="infra_error", n=4),
        _rec(1, "a", 0, status="infra_error", n=5),
    ]
    merged = merge_records(recs)
    assert merged[(0, "a", 0)]["n"] == 2
    assert merged[(1, "a", 0)]["n"] == 5
    assert len(merged) == 2


def test_store_merges_shards_and_finished_keys(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    store.create({"hash": "h", "identity": IDENT})
    for i, recs in enumerate(
        [
            [_rec(0, "a", 0), _rec(1, "a", 0, status="infra_error")],
            [_rec(0, "a", 0), _rec(2, "a", 0)],
        ]
    ):
        w = ShardWriter(store.episodes_dir / f"shard-{i:05d}-of-00002.jsonl")
        for r in recs:
            w.append(r)
        w.close()
    assert store.finished_keys() == {(0, "a", 0), (2, "a", 0)}
    assert len(store.merged()) == 3
    assert len(list(store.iter_records())) == 4


def test_create_keeps_first_spec(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    first = store.create({"hash": "one", "identity": IDENT})
    second = store.create({"hash": "two", "identity": IDENT})
    assert first["hash"] == second["hash"] == "one"
    assert not list(store.path.glob(".spec.*"))  # no temp files left behind
