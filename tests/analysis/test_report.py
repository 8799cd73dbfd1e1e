"""`emotau analyze`, `emotau compare`, `emotau run --plan`: the report and its bad inputs.

The numbers in the report are checked against values recomputed here from the raw shard
lines, and against the statistics functions (themselves checked by hand in test_stats.py).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

import emotau as api
from emotau.analysis.report import analyze
from emotau.analysis.stats import mde_table, minimum_detectable_effect
from emotau.core._errors import UserError
from emotau.results._store import RunStore
from helpers import all_lines, emotau_here, mock_server

pytest.importorskip("matplotlib")
pytest.importorskip("pyarrow")


def make_run(tmp: Path, name: str, **kw) -> Path:
    opts = dict(
        experiment_name=name,
        out=str(tmp),
        tasks=6,
        num_trials=2,
        variants=["control", "anger", "confusion"],
    )
    opts.update(kw)
    return api.run(**opts).path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), "base")


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("report")
    return out, analyze(run_dir, out, n_boot=300)


def scored_lines(run_dir: Path) -> list[dict]:
    return [r for r in all_lines(run_dir) if r["status"] == "completed" and r["scored"]]


# ------------------------------------------------------------------ the report directory
def test_report_directory_has_every_part(report, run_dir) -> None:
    out, _ = report
    for name in ("summary.md", "report.html", "episodes.parquet", "turns.parquet"):
        assert (out / name).is_file(), name
    for plot in ("success", "pass_k", "task_heatmap", "emotion_turns"):
        data = (out / "plots" / f"{plot}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, plot
    assert (out / "tables" / "comparison.csv").is_file()
    lines = all_lines(run_dir)
    eps = pd.read_parquet(out / "episodes.parquet")
    assert len(eps) == len(lines) == 6 * 3 * 2
    turns = pd.read_parquet(out / "turns.parquet")
    assert len(turns) == sum(len(r["turns"]) for r in lines)
    emo = pd.read_parquet(out / "emotion.parquet")
    assert len(emo) == sum(max(1, sum(t["role"] == "user" for t in r["turns"])) for r in lines)


def test_success_table_matches_the_raw_records(report, run_dir) -> None:
    out, a = report
    md = (out / "summary.md").read_text()
    for variant in ("control", "anger", "confusion"):
        recs = [r for r in scored_lines(run_dir) if r["variant"] == variant]
        rate = sum(r["success"] for r in recs) / len(recs)
        row = next(line for line in md.splitlines() if line.startswith(f"| {variant} | "))
        assert f"| {100 * rate:.1f}% |" in row, row
        # pass^2 by hand: mean over tasks of C(c,2)/C(2,2) = both trials succeeded
        by_task: dict[int, list[bool]] = {}
        for r in recs:
            by_task.setdefault(r["task_id"], []).append(r["success"])
        p2 = sum(all(v) for v in by_task.values() if len(v) == 2) / len(by_task)
        got = a.summary[(a.summary["variant"] == variant) & (a.summary["k"] == 2)]
        assert got["estimate"].iloc[0] == pytest.approx(p2)


def test_deltas_are_paired_against_control(report, run_dir) -> None:
    _, a = report
    recs = {(r["task_id"], r["variant"], r["trial"]): r["success"] for r in scored_lines(run_dir)}
    for variant in ("anger", "confusion"):
        pairs = [
            (recs[(t, "control", k)], recs[(t, variant, k)])
            for (t, v, k) in recs
            if v == variant and (t, "control", k) in recs
        ]
        diff = 100 * (sum(b for _, b in pairs) - sum(c for c, _ in pairs)) / len(pairs)
        row = a.comparison[a.comparison["variant"] == variant].iloc[0]
        assert row["diff_pp"] == pytest.approx(diff)
        assert row["pairs"] == len(pairs)
    assert set(a.comparison["variant"]) == {"anger", "confusion"}


def test_design_section_states_the_minimum_detectable_effect(report) -> None:
    out, a = report
    d = a.design
    icc = None if math.isnan(d["icc"]) else d["icc"]
    base = d["baseline"] if 0 < d["baseline"] < 1 else 0.5
    assert d["mde"] == pytest.approx(minimum_detectable_effect(6, 2, base, icc=icc))
    assert f"**{100 * d['mde']:.1f} points**" in (out / "summary.md").read_text()


def test_manipulation_check_is_in_the_report(report) -> None:
    out, a = report
    ex = a.manipulation["expression"]
    assert set(ex["variant"]) == {"anger", "confusion"}
    md = (out / "summary.md").read_text()
    assert "Manipulation check" in md and "Confusion matrix" in md
    assert "Stability over the conversation" in md


def test_python_api_returns_the_same_tables(run_dir) -> None:
    a = api.analyze(run_dir, n_boot=300)
    assert list(a.variants) == ["control", "anger", "confusion"]
    assert a.reference == "control"
    assert not (run_dir / "report").exists()  # nothing written without out


def test_cli_writes_into_the_run_directory_by_default(tmp_path) -> None:
    run = make_run(tmp_path, "cli", tasks=2, num_trials=1)
    before = {p: p.read_bytes() for p in (run / "episodes").iterdir()}
    r = emotau_here("analyze", str(run), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    assert (run / "report" / "report.html").is_file()
    assert "warning: SYNTHETIC" in r.stderr
    assert "one trial per task" in r.stderr
    # the run itself is untouched, and still a valid run
    assert {p: p.read_bytes() for p in (run / "episodes").iterdir()} == before
    assert emotau_here("summary", str(run)).returncode == 0


# ------------------------------------------------------------------ streaming merge
def test_iter_merged_keeps_first_finished_else_latest(tmp_path) -> None:
    run = make_run(tmp_path, "dups", tasks=2, num_trials=1, variants=["control"])
    shard = next((run / "episodes").glob("shard-*.jsonl"))
    lines = shard.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    infra = dict(recs[0], status="infra_error", scored=False, success=False, error="boom")
    later = dict(recs[0], reward=0.25)  # a second finished record: must be ignored
    extra_key = dict(recs[1], task_id=99, status="infra_error", scored=False, error="e1")
    extra_key2 = dict(extra_key, error="e2")  # latest infra error wins
    damaged = '{"task_id": 1, "variant": "control", "trial": 0, "status": "comp'
    # a line that starts like emotau's but is broken further on: every reader skips it
    prefixed = '{"task_id":98,"variant":"control","trial":0,"status":"completed",oops}'
    survivor = dict(extra_key, task_id=98, error="kept")
    new = [json.dumps(infra), *lines, json.dumps(later), json.dumps(extra_key)]
    new += [damaged, json.dumps(extra_key2), prefixed, json.dumps(survivor)]
    shard.write_text("\n".join(new) + "\n")
    store = RunStore(run)
    merged = list(store.iter_merged())
    assert merged == list(store.merged(light=False).values())
    by_key = {(r["task_id"], r["trial"]): r for r in merged}
    assert by_key[(recs[0]["task_id"], 0)]["reward"] == recs[0]["reward"]
    assert by_key[(recs[0]["task_id"], 0)]["status"] == "completed"
    assert by_key[(99, 0)]["error"] == "e2"
    assert by_key[(98, 0)]["error"] == "kept"
    a = analyze(run, n_boot=200)
    assert sorted(a.infra["error"]) == ["e2", "kept"]
    assert any("infrastructure error" in w for w in a.warnings)


# ------------------------------------------------------------------ degraded runs
def test_no_control_arm_reports_without_deltas(tmp_path) -> None:
    run = make_run(tmp_path, "noctl", tasks=3, variants=["anger", "confusion"])
    a = analyze(run, tmp_path / "rep", n_boot=200)
    assert a.reference is None and a.comparison.empty
    assert any("no 'control' arm" in w for w in a.warnings)
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "## Against" not in md and "## Success by variant" in md
    named = analyze(run, n_boot=200, reference="anger")
    assert list(named.comparison["variant"]) == ["confusion"]
    assert list(named.comparison["reference"]) == ["anger"]


def test_incomplete_run_is_analysed_with_a_warning(tmp_path) -> None:
    run = make_run(tmp_path, "partial", tasks=3)
    shard = next((run / "episodes").glob("shard-*.jsonl"))
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:-5]) + "\n" + lines[-5][:40])  # and a cut last line
    a = analyze(run, n_boot=200)
    warning = next(w for w in a.warnings if w.startswith("incomplete run"))
    assert "5 of 18 episodes are missing" in warning
    assert int(a.completeness["missing"].sum()) == 5
    assert RunStore(run).shard_files()[0].read_text().endswith(lines[-5][:40])  # untouched


def test_bad_inputs_get_one_line_and_status_2(tmp_path, run_dir) -> None:
    not_a_file = tmp_path / "file.txt"
    not_a_file.write_text("x")
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    spec = RunStore(run_dir).spec_path.read_text()
    (empty_run / "spec.json").write_text(spec)
    cases = [
        (["analyze", str(tmp_path / "missing")], "is not a directory"),
        (["analyze", str(tmp_path)], "is not an emotau run"),
        (["analyze", str(empty_run)], "has no episodes yet"),
        (["analyze", str(run_dir), "--reference", "nope"], "not an arm of this run"),
        (["analyze", str(run_dir), "--out", str(not_a_file)], "is not a directory"),
        (["analyze", str(run_dir), "--out", str(run_dir)], "must not be the run directory"),
        (["analyze", str(run_dir), "--bootstrap", "5"], "Invalid value"),
        (["compare", str(run_dir), str(run_dir)], "both paths are the same run"),
        (["compare", str(run_dir), str(tmp_path)], "is not an emotau run"),
    ]
    for args, message in cases:
        r = emotau_here(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (empty_run / "report").exists()


def test_bad_python_arguments_raise_user_errors(run_dir) -> None:
    with pytest.raises(UserError, match="not an arm"):
        analyze(run_dir, reference="missing")


# ------------------------------------------------------------------ compare
def test_compare_two_runs_matches_hand_counts(tmp_path, run_dir) -> None:
    other = make_run(tmp_path, "other", seed=7)
    res = api.compare(run_dir, other, n_boot=300)
    a = {(r["task_id"], r["variant"], r["trial"]): r["success"] for r in scored_lines(run_dir)}
    b = {(r["task_id"], r["variant"], r["trial"]): r["success"] for r in scored_lines(other)}
    for variant in ("control", "anger", "confusion"):
        keys = [k for k in a if k[1] == variant and k in b]
        diff = 100 * (sum(b[k] for k in keys) - sum(a[k] for k in keys)) / len(keys)
        row = res.table[res.table["variant"] == variant].iloc[0]
        assert row["diff_pp"] == pytest.approx(diff)
    anger = res.table[res.table["variant"] == "anger"].iloc[0]
    assert anger["did_pp"] == pytest.approx(anger["drop_b_pp"] - anger["drop_a_pp"])
    r = emotau_here("compare", str(run_dir), str(other), "--out", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr
    assert "| anger |" in r.stdout
    assert (tmp_path / "cmp" / "compare.csv").is_file()
    # each table names each column once (the drops are a table of their own)
    tables = [line for line in r.stdout.splitlines() if line.startswith("| variant |")]
    assert len(tables) == 2, r.stdout
    for header in tables:
        cells = [c.strip() for c in header.strip("|").split("|")]
        assert len(cells) == len(set(cells)), cells
    assert "## Difference from control (points; negative: a drop)" in r.stdout
    assert (tmp_path / "cmp" / "compare.md").read_text().strip() == r.stdout.strip()


def test_compare_refuses_runs_that_share_no_variant(tmp_path, run_dir) -> None:
    other = make_run(tmp_path, "calm", tasks=2, variants=["neutral"])
    r = emotau_here("compare", str(run_dir), str(other))
    assert r.returncode == 2 and "share no variant" in r.stderr


# ------------------------------------------------------------------ run --plan
def test_plan_prints_the_mde_and_runs_nothing(tmp_path) -> None:
    r = emotau_here(
        "run", "--plan", "--out", str(tmp_path), "--tasks", "20", "--num-trials", "3",
        "--variants", "control,anger,anxiety",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "20 tasks x 3 arms x 3 trials = 180 episodes" in r.stdout
    expect = 100 * minimum_detectable_effect(20, 3, 0.5, alpha=0.05 / 2)
    row = next(line for line in r.stdout.splitlines() if "50%" in line)
    assert f"{expect:.1f}" in row
    assert not any(tmp_path.iterdir())  # nothing created


def test_plan_reports_bad_specs_like_run(tmp_path) -> None:
    r = emotau_here("run", "--plan", "--out", str(tmp_path), "--variants", "control,furious")
    assert r.returncode == 2 and "furious" in r.stderr


def test_mde_table_by_hand() -> None:
    t = mde_table(50, trials=(1, 4), baselines=(0.5,), icc=0.0, comparisons=1)
    # icc 0, rho 0.5: Var(diff) = 2 p(1-p)/(n) * 0.5 = p(1-p)/n; z = 1.95996 + 0.84162
    for trials in (1, 4):
        n = 50 * trials
        assert t.loc[0.5, trials] == pytest.approx(100 * 2.80158 * math.sqrt(0.25 / n), rel=1e-4)
    with pytest.raises(ValueError):
        mde_table(10, comparisons=0)


# ------------------------------------------------------------------ a run over HTTP
def test_analyze_a_run_through_the_mock_server(tmp_path) -> None:
    with mock_server() as url:
        r = emotau_here(
            "run", "--out", str(tmp_path), "--base-url", url, "--model", "scripted-agent",
            "--user-model", "scripted-user", "--tasks", "3", "--num-trials", "2",
            "--variants", "control,frustration", "--progress", "none", "--experiment-name",
            "http",
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = emotau_here("analyze", str(tmp_path / "http"), "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "agent `scripted-agent`" in md
    assert "| frustration |" in md


def test_markdown_cells_cannot_carry_html() -> None:
    from emotau.analysis._format import md_cell as _md_cell

    cell = _md_cell("<b onmouseover=alert(1)>boom</b> <!-- x --> <script>|")
    assert "<b" not in cell and "</b" not in cell and "<!--" not in cell and "<script" not in cell
    assert cell.endswith("\\|")  # a pipe cannot break the table either
    assert _md_cell("<0.001 (<0.001)") == "<0.001 (<0.001)"  # p-values stay readable


# ------------------------------------------------------------------ review: odd runs
def _rewrite(run: Path, edit) -> None:
    shard = next((run / "episodes").glob("shard-*.jsonl"))
    recs = [json.loads(x) for x in shard.read_text().splitlines()]
    shard.write_text("".join(json.dumps(edit(r)) + "\n" for r in recs))


def test_infra_errors_do_not_count_in_the_manipulation_check(tmp_path) -> None:
    run = make_run(tmp_path, "infra", tasks=6, num_trials=2)
    hit = {"n": 0}

    def edit(r: dict) -> dict:
        if r["variant"] == "anger" and hit["n"] < 8:
            hit["n"] += 1
            return dict(r, status="infra_error", scored=False, turns=[], error="timeout")
        return r

    _rewrite(run, edit)
    a = analyze(run, n_boot=200)
    row = a.manipulation["expression"].set_index("variant").loc["anger"]
    assert row["n_episodes"] == 12 - 8  # only the episodes that ran
    assert not any("did not clearly express" in w for w in a.warnings)


def test_odd_values_in_records_still_give_a_report(tmp_path) -> None:
    run = make_run(tmp_path, "odd", tasks=2, num_trials=1)
    first = {"done": False}

    def edit(r: dict) -> dict:
        if not first["done"]:
            first["done"] = True
            for t in r["turns"]:
                for c in t.get("tool_calls") or ():
                    c["arguments"] = {"x": float("nan"), "y": float("inf")}
            return dict(r, reward=None)  # a scored episode without a reward
        return r

    _rewrite(run, edit)
    out = tmp_path / "rep"
    r = emotau_here("analyze", str(run), "--out", str(out), "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    assert "have no reward: counted as 0" in r.stderr
    page = (out / "report.html").read_text()
    text = re.sub(r'src="data:image/png;base64,[^"]*"', "", page)  # base64 may spell NaN
    assert '{"x": null, "y": null}' in text and "NaN" not in text


def test_a_second_report_into_the_same_directory_leaves_nothing_stale(tmp_path, run_dir) -> None:
    out = tmp_path / "rep"
    analyze(run_dir, out, n_boot=200)
    assert (out / "tables" / "comparison.csv").is_file()
    other = make_run(tmp_path, "noctl2", tasks=2, num_trials=1, variants=["anger", "confusion"])
    analyze(other, out, n_boot=200)
    assert not (out / "tables" / "comparison.csv").exists()  # no control: no deltas now
    assert "anger" in (out / "tables" / "summary.csv").read_text()
    assert "control" not in (out / "tables" / "summary.csv").read_text()


def test_control_is_not_called_a_placebo_against_another_reference(run_dir) -> None:
    a = analyze(run_dir, n_boot=200, reference="anger")
    from emotau.analysis.render import build_sections

    text = str([t.rows for s in build_sections(a) for t in s.tables])
    assert "no emotion asked" in text and "placebo" not in text


def test_max_conversations_is_a_ceiling(run_dir) -> None:
    assert analyze(run_dir, n_boot=200, max_conversations=0).conversations == []
    a = analyze(run_dir, n_boot=200, max_conversations=7)
    assert 0 < len(a.conversations) <= 7


def test_compare_runs_with_different_trials(tmp_path, run_dir) -> None:
    more = make_run(tmp_path, "three", num_trials=3)
    res = api.compare(run_dir, more, n_boot=200)
    assert any("2 and 3 trials per task" in w for w in res.warnings)
    # every number uses trials 0..1 only, the drops too
    b = [r for r in scored_lines(more) if r["trial"] < 2]
    for arm in ("anger", "confusion"):
        by_task: dict[int, list[float]] = {}
        for r in b:
            if r["variant"] in (arm, "control"):
                by_task.setdefault(r["task_id"], [0.0, 0.0])
                by_task[r["task_id"]][r["variant"] == "control"] += r["success"] / 2
        drop = 100 * sum(v - c for v, c in by_task.values()) / len(by_task)
        row = res.table.set_index("variant").loc[arm]
        assert row["drop_b_pp"] == pytest.approx(drop)


def test_plan_beside_a_run_with_another_spec_plans_and_says_so(tmp_path) -> None:
    """`--plan` writes nothing: a run already in the directory (make demo's) is no reason to
    refuse; it plans, and names the differences `run` would refuse."""
    run_dir = make_run(tmp_path, "planned", tasks=2, num_trials=1)
    before = sorted(p.name for p in run_dir.rglob("*"))
    args = ["run", "--plan", "--out", str(tmp_path), "--experiment-name", "planned"]
    args += ["--tasks", "2", "--num-trials", "2", "--variants", "control,anger,confusion"]
    r = emotau_here(*args)
    assert r.returncode == 0, r.stderr
    assert "plan: domain hotel, 2 tasks x 3 arms x 2 trials = 12 episodes" in r.stdout
    note = r.stderr.strip()
    assert note.startswith(f"note: {str(run_dir)!r} holds a run with another spec (")
    assert "num_trials" in note and "would refuse it; add --new-run" in note
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # nothing written
    r = emotau_here(*args, "--new-run")
    assert r.returncode == 0 and "note:" not in r.stderr
    r = emotau_here("run", "--plan", "--out", str(tmp_path), "--variants", "anger,confusion")
    assert r.returncode == 0 and "from the reference arm" in r.stdout


def test_a_full_disk_leaves_the_previous_report_whole(tmp_path, run_dir, monkeypatch) -> None:
    """The disk fills while a second report is written: one line naming the path and the
    cause, exit status 5, and the first report still there, whole (issue 13 item 4)."""
    import errno

    out = tmp_path / "rep"
    assert (
        emotau_here("analyze", str(run_dir), "--out", str(out), "--bootstrap", "100").returncode
        == 0
    )
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    r = emotau_here("analyze", str(run_dir), "--out", str(out), "--bootstrap", "200")
    assert r.returncode == 5, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert (
        line.startswith("emotau: file error: ") and "report.html: No space left on device" in line
    )
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing partial, nothing new, nothing gone
    assert not list(tmp_path.glob(".rep.partial-*"))  # the staging folder is cleaned up
