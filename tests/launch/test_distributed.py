"""Shards, `emotau status`, `emotau collect`, `emotau submit` (dry runs, bad input, Ray).

The real Slurm cluster tests are in test_slurm.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from emotau.launch import check_array, compress, node_local_warning, plan_submission
from emotau.results._monitor import run_status
from helpers import FAST_RETRIES, all_lines, emotau, emotau_here, mock_server, popen

GRID = ["--tasks", "4", "--num-trials", "2", "--variants", "control,anger,confusion"]


def run_args(out: Path, name: str, *extra: str) -> list[str]:
    return ["run", "--out", str(out), "--experiment-name", name, *GRID, "--quiet", *extra]


def keys(run_dir: Path) -> list[tuple]:
    return [(r["task_id"], r["variant"], r["trial"]) for r in all_lines(run_dir)]


def outcomes(run_dir: Path) -> dict[tuple, tuple]:
    return {
        (r["task_id"], r["variant"], r["trial"]): (r["status"], r["success"], r["reward"])
        for r in all_lines(run_dir)
    }


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    r = emotau_here(*run_args(out, "one"))
    assert r.returncode == 0, r.stderr
    return out / "one"


# ------------------------------------------------------------------ shards = one process
def test_shards_in_parallel_give_exactly_the_single_process_episodes(tmp_path, single) -> None:
    procs = [popen(*run_args(tmp_path, "sharded", "--shard", f"{i}/3")) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    sharded = tmp_path / "sharded"
    got = keys(sharded)
    assert len(got) == len(set(got)) == 4 * 3 * 2  # every episode exactly once
    assert outcomes(sharded) == outcomes(single)  # and the same episodes
    assert sorted(p.name for p in (sharded / "episodes").iterdir()) == [
        f"shard-0000{i}-of-00003.jsonl" for i in range(3)
    ]


# ------------------------------------------------------------------ status
def test_status_per_variant_and_shard(tmp_path) -> None:
    for i in (0, 2):
        assert emotau_here(*run_args(tmp_path, "part", "--shard", f"{i}/4")).returncode == 0
    run = tmp_path / "part"
    st = run_status(run, array=4)
    lines = all_lines(run)
    assert st.total == 24 and st.done == len(lines) == 12
    for v in ("control", "anger", "confusion"):
        assert st.per_variant[v]["done"] == sum(r["variant"] == v for r in lines)
    states = {s.name: s.state for s in st.shards}
    assert states == {"0/4": "done", "1/4": "not started", "2/4": "done", "3/4": "not started"}
    assert all(s.expected == 6 for s in st.shards)
    # the CLI: exit 1 while unfinished, JSON for scripts
    r = emotau_here("status", str(run), "--format", "json")
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["done"] == 12
    r = emotau_here("status", str(run))
    assert "12/24 episodes" in r.stdout and "0/4" in r.stdout


def test_status_flags_a_stalled_shard_and_gives_rate_and_eta(tmp_path) -> None:
    assert emotau_here(*run_args(tmp_path, "stall", "--shard", "0/2")).returncode == 0
    run = tmp_path / "stall"
    shard = run / "episodes" / "shard-00000-of-00002.jsonl"
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:5]) + "\n")  # shard 0 is only part done ...
    old = time.time() - 3600
    os.utime(shard, (old, old))  # ... and has not moved for an hour
    st = run_status(run, array=2)
    s0 = next(s for s in st.shards if s.name == "0/2")
    assert (s0.state, s0.done, s0.expected) == ("stalled", 5, 12)
    assert any("stalled shard(s) 0/2" in w for w in st.warnings)
    # rate and ETA: 5 episodes finished at known times, measured "now" just after
    ends = [json.loads(x)["started_at"] + json.loads(x)["duration_s"] for x in lines[:5]]
    now = max(ends) + 1.0
    st = run_status(run, array=2, now=now, stall_after=1e9)
    rate = 60 * 5 / max(10.0, now - min(ends))  # per minute, over at least 10 s
    assert st.rate_per_min == pytest.approx(rate, rel=1e-6)
    assert st.eta_s == pytest.approx((24 - 5) / rate * 60)


def test_status_of_a_non_run_is_an_error(tmp_path) -> None:
    r = emotau_here("status", str(tmp_path))
    assert r.returncode == 2 and "is not an emotau run" in r.stderr


# ------------------------------------------------------------------ collect
def test_collect_merges_copies_from_other_machines(tmp_path, single) -> None:
    # "machine" copies: each ran one shard in its own copy of the run directory
    assert emotau_here(*run_args(tmp_path, "main", "--shard", "0/3")).returncode == 0
    main = tmp_path / "main"
    copies = []
    for i in (1, 2):
        copy = tmp_path / f"node{i}" / "main"
        copy.mkdir(parents=True)
        shutil.copy(main / "spec.json", copy / "spec.json")
        r = emotau_here("resume", str(copy), "--shard", f"{i}/3", "--quiet")
        assert r.returncode == 0, r.stderr
        copies.append(copy)
    # an overlapping copy too: the whole of node 1 plus shard 0 again (duplicates)
    r = emotau_here(
        "collect", str(main), "--from", str(copies[0]), "--from", str(copies[1] / "episodes")
    )
    assert r.returncode == 0, r.stderr
    assert "16 finished episode(s) added" in r.stdout
    got = keys(main)
    assert len(got) == len(set(got)) == 24
    assert outcomes(main) == outcomes(single)
    again = emotau_here("collect", str(main), "--from", str(copies[0]), "--from", str(copies[1]))
    assert "0 finished episode(s) added" in again.stdout and "16 already present" in again.stdout
    assert len(all_lines(main)) == 24
    assert emotau_here("summary", str(main)).returncode == 0


def test_collect_never_adds_a_second_finished_record(tmp_path, single) -> None:
    target = tmp_path / "t"
    shutil.copytree(single, target)
    first = json.loads(
        (target / "episodes" / "shard-00000-of-00001.jsonl").read_text().split("\n")[0]
    )
    # the target also has a later infrastructure-error record of that finished episode
    infra = dict(first, status="infra_error", scored=False, error="timeout")
    (target / "episodes" / "shard-00001-of-00002.jsonl").write_text(json.dumps(infra) + "\n")
    copy = tmp_path / "copy"
    shutil.copytree(single, copy)
    r = emotau_here("collect", str(target), "--from", str(copy))
    assert r.returncode == 0 and "0 finished episode(s) added" in r.stdout, r.stdout
    finished = [k for k, rec in zip(keys(target), all_lines(target), strict=True)
                if rec["status"] == "completed"]  # fmt: skip
    assert len(finished) == len(set(finished)) == 24


def test_collect_refuses_other_specs_and_bare_folders(tmp_path, single) -> None:
    assert emotau_here(*run_args(tmp_path, "x", "--seed", "5", "--shard", "0/2")).returncode == 0
    other = tmp_path / "x"
    target = tmp_path / "copy"
    shutil.copytree(single, target)
    before = (target / "episodes").read_bytes() if False else sorted(keys(target))
    r = emotau_here("collect", str(target), "--from", str(other))
    assert r.returncode == 2 and "ran a different spec" in r.stderr and "seed" in r.stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(next((other / "episodes").iterdir()), bare)
    r = emotau_here("collect", str(target), "--from", str(bare))
    assert r.returncode == 2 and "has no spec.json" in r.stderr
    r = emotau_here("collect", str(target), "--from", str(target))
    assert r.returncode == 2 and "is the target run itself" in r.stderr
    assert sorted(keys(target)) == before  # nothing written by the refused calls


# ------------------------------------------------------------------ submit: planning
def test_compress_and_array_checks() -> None:
    assert compress([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert compress([3]) == "3"
    assert check_array(4, 24) == []
    assert "job start-up will dominate" in check_array(20, 24)[0]
    with pytest.raises(Exception, match="more shards than the grid"):
        check_array(25, 24)
    with pytest.raises(Exception, match="at least 1"):
        check_array(0, 24)
    assert node_local_warning(Path("/tmp/x/run")) is not None
    assert node_local_warning(Path("/work/shared/run")) is None


def test_submit_slurm_dry_run_writes_the_array_script(tmp_path) -> None:
    r = emotau(
        "submit", "slurm", "--out", str(tmp_path), "--experiment-name", "sub", *GRID,
        "--array", "4", "--partition", "gpu", "--gres", "gpu:1", "--time", "01:00:00",
        "--max-parallel", "2", "--sbatch-arg", "--constraint=a100", "--serve-agent",
        "--vllm-command", "vllm serve", "--model", "Qwen/Qwen3-8B", "--base-url",
        "http://127.0.0.1:9/v1", "--user-base-url", "http://10.0.0.5:8001/v1", "--dry-run",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    script = next((tmp_path / "sub" / "submit").glob("slurm-*.sbatch")).read_text()
    assert script == r.stdout.split("dry run:")[0]
    for line in (
        "#SBATCH --array=0-3%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=01:00:00",
        "#SBATCH --constraint=a100",
        f"#SBATCH --output={tmp_path / 'sub' / 'submit' / 'logs'}/%A_%a.out",
    ):
        assert line in script, line
    assert f'shard-task {tmp_path / "sub"} --shard "$SLURM_ARRAY_TASK_ID/4"' in script
    assert "--serve-agent --vllm-command 'vllm serve'" in script
    # endpoint flags reach every job (as `emotau resume` takes them)
    assert "--base-url http://127.0.0.1:9/v1 --user-base-url http://10.0.0.5:8001/v1" in script
    assert "API_KEY=" not in script and "OPENAI" not in script
    assert (tmp_path / "sub" / "spec.json").is_file()  # the run is frozen before submitting
    assert not (tmp_path / "sub" / "submit" / "jobs.json").exists()  # nothing submitted


def test_submit_bad_input(tmp_path) -> None:
    base = ["submit", "slurm", "--out", str(tmp_path), "--experiment-name", "bad", *GRID]
    env_path = os.environ.get("PATH", "")
    cases = [
        ([*base, "--array", "100"], "more shards than the grid has episodes (24)"),
        ([*base, "--array", "0"], "must be at least 1"),
        ([*base], "--array N is required"),
        (["submit", "slurm", "--run-dir", str(tmp_path / "nope"), "--array", "2"], "not a dir"),
    ]
    for args, message in cases:
        r = emotau_here(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
    # no sbatch on PATH: a clear message, and the script is still there to submit by hand
    os.environ["PATH"] = "/nonexistent"
    try:
        r = emotau_here(*base, "--array", "2")
    finally:
        os.environ["PATH"] = env_path
    assert r.returncode == 2 and "sbatch not found on PATH" in r.stderr
    assert list((tmp_path / "bad" / "submit").glob("slurm-*.sbatch"))


def test_submit_refuses_what_would_fail_in_every_job(tmp_path, single) -> None:
    base = ["submit", "slurm", "--out", str(tmp_path), "--experiment-name", "j", *GRID,
            "--array", "2", "--dry-run"]  # fmt: skip
    qwen = ["--model", "Qwen/Qwen3-8B", "--base-url", "http://127.0.0.1:9/v1"]
    spaced = tmp_path / "with space"
    cases = [
        ([*base, *qwen, "--serve-agent", "--serve-extra-args", "--max-model-len 5"],
         "--max-model-len in --serve-extra-args: use --serve-max-model-len"),
        ([*base, *qwen, "--serve-agent", "--serve-extra-args", "'unclosed"], "cannot split"),
        ([*base, "--serve-agent"], "--serve-agent starts vLLM for the agent's model in each job"),
        ([*base, *qwen, "--serve-agent", "--serve-extra-args", "--api-key sk-1"],
         "would be written into the job script"),
        ([*base, "--vllm-command", "vllm serve"], "need --serve-agent/--serve-user"),
        ([*base, *qwen, "--serve-agent", "--serve-timeout", "0"], "Invalid value"),
        (["submit", "slurm", "--run-dir", str(single), "--tasks", "3", "--array", "2"],
         "--run-dir uses the run's frozen spec: drop --tasks"),
        (["submit", "slurm", "--out", str(spaced), "--experiment-name", "r", *GRID,
          "--array", "2", "--dry-run"], "#SBATCH lines cannot carry"),
    ]  # fmt: skip
    for args, message in cases:
        r = emotau_here(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    # a damaged record of submissions: one line, not a traceback
    target = tmp_path / "jobs"
    shutil.copytree(single, target)
    (target / "submit").mkdir()
    for bad in ("[1]", '[{"array": "x"}]', "not json"):
        (target / "submit" / "jobs.json").write_text(bad)
        r = emotau("submit", "slurm", "--run-dir", str(target), "--array", "2", "--dry-run")
        assert r.returncode == 2 and "jobs.json" in r.stderr, r.stderr


def test_submit_names_only_its_own_serve_options(tmp_path) -> None:
    """The serving checks' messages name `emotau serve`'s flags; submit says its own."""
    base = ["submit", "slurm", "--out", str(tmp_path), "--experiment-name", "j", *GRID,
            "--array", "2", "--dry-run", "--base-url", "http://127.0.0.1:9/v1",
            "--serve-agent"]  # fmt: skip
    unknown = emotau_here(*base, "--model", "acme/unknown-7b")
    assert unknown.returncode == 2, unknown.stderr
    line = unknown.stderr.strip()
    assert "pass --serve-tool-call-parser NAME, or --serve-tool-call-parser none" in line, line
    for serve_only in (" --tool-call-parser", "--no-tools", " --extra-args"):
        assert serve_only not in line, (serve_only, line)
    qwen = [*base, "--model", "Qwen/Qwen3-8B"]
    own = emotau_here(*qwen, "--serve-extra-args", "--enable-auto-tool-choice")
    assert own.returncode == 2 and "--no-tools" not in own.stderr, own.stderr
    assert "in --serve-extra-args: use --serve-tool-call-parser" in own.stderr, own.stderr
    # what the message offers works: a server without tool calling
    ok = emotau_here(*base, "--model", "acme/unknown-7b", "--serve-tool-call-parser", "none")
    assert ok.returncode == 0 and "--serve-tool-call-parser none" in ok.stdout, ok.stderr


def test_resubmit_failed_with_nothing_left(tmp_path, single) -> None:
    target = tmp_path / "done"
    shutil.copytree(single, target)
    r = emotau("submit", "slurm", "--run-dir", str(target), "--array", "3", "--resubmit-failed")
    assert r.returncode == 0, r.stderr
    assert "nothing to resubmit" in r.stdout


def test_plan_submission_from_python(tmp_path, single) -> None:
    """What `emotau submit` plans, from the Python API: shards, warnings, the frozen run."""
    from emotau.core._errors import UserError
    from emotau.spec._spec import build_spec

    spec = build_spec(
        {"out": str(tmp_path), "experiment_name": "py", "tasks": 4, "num_trials": 2,
         "variants": ["control", "anger", "confusion"]}
    )  # fmt: skip
    seen: list[str] = []
    planned = plan_submission(
        "slurm", spec, array=20, options={"partition": "gpu"}, on_warning=seen.append
    )
    assert planned.plan is not None and planned.scheduler.name == "slurm"
    assert planned.plan.shards == list(range(20)) and planned.plan.array == 20
    assert planned.plan.run_dir == (tmp_path / "py").resolve()
    assert planned.plan.options == {"partition": "gpu"} and planned.plan.name == "emotau-py"
    assert (tmp_path / "py" / "spec.json").is_file()  # frozen before anything is submitted
    assert seen == planned.warnings and "job start-up will dominate" in seen[0]
    with pytest.raises(UserError, match="--array N is required"):
        plan_submission("ray", run_dir=tmp_path / "py")
    with pytest.raises(ValueError, match="exactly one"):
        plan_submission("ray", spec, run_dir=tmp_path / "py", array=2)
    # a finished run: resubmitting what failed plans nothing
    done = tmp_path / "done"
    shutil.copytree(single, done)
    nothing = plan_submission("slurm", run_dir=done, array=3, resubmit_failed=True)
    assert nothing.plan is None and nothing.still_active == [] and nothing.array == 3
    with pytest.raises(UserError, match="nothing to submit"):
        nothing.submit()


# ------------------------------------------------------------------ Ray
@pytest.mark.ray
def test_submit_ray_runs_every_shard_on_a_local_ray(tmp_path, single) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'emotau[ray]'")
    r = emotau(
        "submit", "ray", "--out", str(tmp_path), "--experiment-name", "ray", *GRID,
        "--array", "3", timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 shard(s) finished on Ray" in r.stdout
    run = tmp_path / "ray"
    got = keys(run)
    assert len(got) == len(set(got)) == 24
    assert outcomes(run) == outcomes(single)


def test_status_watch_follows_the_run_until_it_completes(tmp_path) -> None:
    assert emotau_here(*run_args(tmp_path, "w", "--shard", "0/2")).returncode == 0
    run = tmp_path / "w"
    watch = popen("status", str(run), "--watch", "--interval", "0.2")
    jsonl = popen("status", str(run), "--watch", "--interval", "0.2", "--format", "json")
    time.sleep(1.5)
    assert watch.poll() is None  # still watching an unfinished run
    r = emotau_here("resume", str(run), "--shard", "1/2", "--quiet")
    assert r.returncode == 0, r.stderr
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err  # it noticed the run is complete, and says so
    assert "24/24 episodes" in out
    out, err = jsonl.communicate(timeout=60)
    looks = [json.loads(line) for line in out.splitlines()]
    assert jsonl.returncode == 0 and len(looks) >= 2, err
    assert looks[0]["done"] == 12 and looks[-1]["done"] == 24 and looks[-1]["complete"]


def test_status_watch_writes_plain_lines_off_a_terminal(tmp_path) -> None:
    """stdout a pipe: a plain line at once, while the run is unfinished, then one per change
    (none while nothing changes), the last one when the run completes."""
    import select

    assert emotau_here(*run_args(tmp_path, "p", "--shard", "0/2")).returncode == 0
    run = tmp_path / "p"
    watch = popen("status", str(run), "--watch", "--interval", "0.2")
    assert watch.stdout is not None
    ready, _, _ = select.select([watch.stdout], [], [], 30)
    assert ready and watch.poll() is None, "no line while watching an unfinished run"
    first = watch.stdout.readline()
    assert f"{run}: 12/24 episodes (50%), 0 infra errors open" in first, first
    assert "\x1b" not in first and "┃" not in first  # plain text, no terminal codes
    time.sleep(1.0)  # five refreshes, nothing changed: no new line
    assert not select.select([watch.stdout], [], [], 0)[0]
    r = emotau_here("resume", str(run), "--shard", "1/2", "--quiet")
    assert r.returncode == 0, r.stderr
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert lines and f"{run}: 24/24 episodes (100%)" in lines[-1] and "ETA done" in lines[-1]
    assert all(line[2] == ":" and line[5] == ":" for line in lines)  # each starts HH:MM:SS


def test_status_counts_open_infra_errors_the_same_per_variant_and_per_shard(tmp_path) -> None:
    """One meaning, both tables: episodes whose infrastructure error no resume has fixed yet
    (every infra-error line of a file is there too, as infra_error_lines)."""
    base = ["--out", str(tmp_path), "--tasks", "2", "--num-trials", "1", "--variants", "control",
            "--model", "scripted-agent", "--quiet"]  # fmt: skip
    r = emotau_here("run", *base, "--config", str(FAST_RETRIES), "--no-preflight",
                    "--base-url", "http://127.0.0.1:9/v1")  # fmt: skip
    assert r.returncode == 4, r.stderr

    def look() -> tuple[int, int, int, str]:
        st = emotau_here("status", str(tmp_path / "demo"), "--format", "json")
        data = json.loads(st.stdout)
        (shard,) = data["shards"]
        table = " ".join(emotau_here("status", str(tmp_path / "demo")).stdout.split())
        return (data["per_variant"]["control"]["infra_errors"], shard["infra_errors"],
                shard["infra_error_lines"], table)  # fmt: skip

    assert look()[:3] == (2, 2, 2)
    with mock_server() as url:
        assert emotau_here("resume", str(tmp_path / "demo"), "--base-url", url).returncode == 0
    variant, shard, lines, table = look()
    assert (variant, shard, lines) == (0, 0, 2)  # fixed: none open, two lines on record
    assert table.count("infra errors (open)") == 2, table


def test_status_counts_writes_of_overlapping_files() -> None:
    from emotau.results._monitor import _shards

    now = 1000.0
    # shard 0/2 ran as --workers 2 (files 0/4 and 2/4, written just now); the old 1/2 split
    # file is an hour old but its episodes are being redone by the 1/4 and 3/4 files
    files = {(0, 4): (3, 0, now - 5), (2, 4): (3, 0, now - 5), (1, 2): (1, 0, now - 3600)}
    files |= {(1, 4): (1, 0, now - 2), (3, 4): (1, 0, now - 2)}
    finished = {("k", i): i for i in (0, 4, 8)}  # grid numbers: all in 0/4
    rows = {s.name: s for s in _shards(files, finished, 16, 2, now, stall_after=900)}
    assert rows["0/2"].state == "running" and rows["0/2"].last_write == now - 5
    assert rows["1/2"].state == "running"  # not a false "stalled": 1/4 and 3/4 are writing
    assert rows["0/4"].done == 3 and rows["2/4"].done == 0


def test_submit_serve_agent_asks_no_api_key_and_no_scripted_model(tmp_path, monkeypatch) -> None:
    """Each job serves the agent's model itself: no OPENAI_API_KEY is needed to plan it, and
    the offline 'scripted' model, which vLLM cannot serve, is refused in one line."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    base = ["submit", "slurm", "--tasks", "4", "--array", "2", "--serve-agent", "--dry-run",
            "--out", str(tmp_path)]  # fmt: skip
    r = emotau_here(*base, "--experiment-name", "a")
    assert r.returncode == 2
    assert "--serve-agent starts vLLM for the agent's model in each job" in r.stderr
    assert "give --model a model vLLM can serve" in r.stderr
    r = emotau_here(*base, "--experiment-name", "b", "--model", "Qwen/Qwen3-8B")
    assert r.returncode == 0, r.stderr
    assert "OPENAI_API_KEY" not in r.stderr and "--serve-agent" in r.stdout
