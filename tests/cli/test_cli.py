from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from helpers import FAST_RETRIES, all_lines, emotau, emotau_here, install_plugin, mock_server

TOY = "toydomain:ToyDomain"


def summary_json(run_dir: Path) -> dict:
    r = emotau_here("summary", str(run_dir), "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_help_is_fast_and_lists_commands() -> None:
    t0 = time.perf_counter()
    r = emotau_here("--help")
    assert r.returncode == 0
    for cmd in ("run", "summary", "variants"):
        assert cmd in r.stdout
    assert time.perf_counter() - t0 < 10  # sanity only; the 0.3 s figure is a benchmark


def test_default_run_covers_all_variants(tmp_path) -> None:
    r = emotau_here("run", "--progress", "log", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout  # scripted results are labelled
    progress = [x for x in r.stderr.splitlines() if x.startswith("[emotau]")]
    assert progress[0].startswith("[emotau] 0/810") and progress[-1].startswith("[emotau] 810/810")
    assert "success (SYNTHETIC)" in progress[-1]
    s = summary_json(tmp_path / "runs" / "demo")
    assert s["complete"] and s["synthetic"]
    names = [row["variant"] for row in s["variants"]]
    assert names == ["control", "neutral", "frustration", "anxiety", "anger", "confusion"]
    for row in s["variants"]:
        assert row["episodes"] == row["expected"] > 0
        assert set(row["pass_k"]) == {"1", "2", "3"}
    # rerun resumes: nothing left to do, nothing duplicated
    r2 = emotau_here("run", "--quiet", cwd=tmp_path)
    assert r2.returncode == 0 and "0 episodes run now" in r2.stderr


def test_predecessor_flags(tmp_path) -> None:
    r = emotau_here(
        "run",
        "--experiment-name",
        "x",
        "--env",
        TOY,
        "--task-ids",
        "0,2",
        "--variants",
        "control,anger:severe,anxiety+confusion",
        "--num-trials",
        "2",
        "--agent-strategy",
        "react",
        "--user-strategy",
        "verify",
        "--model",
        "scripted",
        "--user-model",
        "scripted",
        "--temperature",
        "0.3",
        "--max-concurrency",
        "4",
        "--seed",
        "7",
        "--max-steps",
        "20",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    frozen = json.loads((tmp_path / "x" / "spec.json").read_text())
    ident = frozen["identity"]
    assert ident["task_ids"] == [0, 2] and ident["num_trials"] == 2 and ident["seed"] == 7
    assert set(ident["variants"]) == {"control", "anger:severe", "anxiety+confusion"}
    assert ident["agent_strategy"] == "react" and ident["user_strategy"] == "verify"
    assert ident["agent"]["temperature"] == 0.3 and ident["max_steps"] == 20
    assert summary_json(tmp_path / "x")["finished_episodes"] == 12


def test_config_file_and_flag_override(tmp_path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        f'experiment_name = "cfg"\ndomain = "{TOY}"\nnum_trials = 1\n'
        f'variants = ["control", "anger"]\nout = "{tmp_path}"\n'
    )
    r = emotau_here("run", "--config", str(cfg), "--num-trials", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert summary_json(tmp_path / "cfg")["num_trials"] == 2


def test_variants_list_and_show(tmp_path) -> None:
    r = emotau_here("variants", "list")
    assert r.returncode == 0
    for name in ("control", "neutral", "frustration", "anxiety", "anger", "confusion"):
        assert name in r.stdout
    show = emotau_here("variants", "show", "anger:severe", "--task", "1", "--env", TOY)
    assert show.returncode == 0
    assert "Ask for your balance" in show.stdout and "anger (severe)" in show.stdout
    ctrl = emotau_here("variants", "show", "control", "--task", "1", "--env", TOY)
    assert "Emotional state" not in ctrl.stdout
    react = emotau_here("variants", "show", "control", "--env", TOY, "--user-strategy", "react")
    assert "Thought:" in react.stdout


def _bad(args: list[str], needle: str, tmp_path: Path, cwd: Path | None = None) -> None:
    r = emotau_here(*args, cwd=cwd or tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emotau: error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--variants", "control,joy"], "unknown variant 'joy'; allowed: control"),
        (["--variants", "anger:extreme"], "allowed: mild, moderate, severe"),
        (["--domain", "nowhere"], "unknown domain 'nowhere'; allowed: hotel"),
        (["--domain", "no_such_mod:X"], "cannot import domain module"),
        (
            ["--agent-strategy", "magic"],
            "unknown agent strategy 'magic'; allowed: act, few-shot, react",
        ),
        (["--user-strategy", "psychic"], "unknown user strategy 'psychic'; allowed: llm"),
        (["--task-ids", "1,999"], "task id 999 out of range"),
        (["--task-ids", "1,x"], "comma-separated integers"),
        (["--tasks", "0"], "field 'tasks'"),
        (["--tasks", "5", "--task-ids", "1"], "not both"),
        (["--num-trials", "-1"], "field 'num_trials'"),
        (["--shard", "4/4"], "need 0 <= i < N"),
        (["--bogus"], "No such option"),
        (
            ["--model", "gpt-4o", "--api-key-env", "EMOTAU_TEST_NO_SUCH_KEY"],
            "environment variable 'EMOTAU_TEST_NO_SUCH_KEY' (api_key_env) is not set",
        ),
        (
            [
                "--config",
                str(FAST_RETRIES),
                "--model",
                "m",
                "--agent-base-url",
                "http://127.0.0.1:9/v1",
                "--quiet",  # no lines about the preflight's retries (test_preflight_says_...)
            ],
            "agent endpoint http://127.0.0.1:9/v1 cannot be used: cannot connect",
        ),
        (["--experiment-name", "a/b"], "field 'experiment_name'"),
    ],
)
def test_bad_run_input(tmp_path, args, needle) -> None:
    _bad(["run", "--out", str(tmp_path / "runs"), *args], needle, tmp_path)
    assert not (tmp_path / "runs").exists()  # no partial run directory


def test_bad_files(tmp_path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("num_trials = [\n")
    _bad(["run", "--config", str(bad_toml)], "is not valid TOML", tmp_path)
    vf = tmp_path / "v.yaml"
    vf.write_text("variants:\n  grumpy:\n    emotion: anger\n    text: {mild: ok}\n")
    _bad(
        ["run", "--variants-file", str(vf), "--variants", "grumpy"],
        f"variants file '{vf}', variant 'grumpy', field 'text.moderate'",
        tmp_path,
    )
    _bad(["variants", "list", "--variants-file", str(vf)], "field 'text.moderate'", tmp_path)
    _bad(["variants", "show", "anger", "--task", "99"], "task id 99 out of range", tmp_path)
    assert not (tmp_path / "runs").exists()


def test_unwritable_output(tmp_path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    _bad(
        ["run", "--env", TOY, "--out", str(blocker / "runs")],
        "cannot write run directory",
        tmp_path,
    )
    assert blocker.read_text() == "x"


def test_summary_bad_paths(tmp_path) -> None:
    _bad(["summary", str(tmp_path / "nope")], "is not a directory", tmp_path)
    _bad(["summary", str(tmp_path)], "is not an emotau run", tmp_path)


def test_changed_spec_refused_then_new_run(tmp_path) -> None:
    base = ["run", "--env", TOY, "--out", str(tmp_path), "--experiment-name", "e", "--quiet"]
    assert emotau_here(*base, "--num-trials", "1").returncode == 0
    shard = next((tmp_path / "e" / "episodes").glob("*.jsonl"))
    before = shard.read_bytes()
    _bad([*base, "--num-trials", "2", "--variants", "control"], "num_trials (1 -> 2)", tmp_path)
    assert shard.read_bytes() == before  # finished results untouched
    r = emotau_here(*base, "--num-trials", "2", "--new-run")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "e-2" / "spec.json").exists()
    assert summary_json(tmp_path / "e-2")["num_trials"] == 2


def test_domain_from_entry_point(tmp_path) -> None:
    """A third-party package registers a domain through the `emotau.domains` entry point group."""
    environ = install_plugin(
        tmp_path, "toyplugin", {"emotau.domains": {"toy-bank": "toydomain:ToyDomain"}}
    )
    r = emotau(
        "run", "--domain", "toy-bank", "--out", str(tmp_path), "--num-trials", "1",
        "--variants", "control", "--quiet", environ=environ,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    frozen = json.loads((tmp_path / "demo" / "spec.json").read_text())
    assert frozen["identity"]["domain"] == "toy" and frozen["identity"]["task_ids"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("[agent.options]\npenalty = {anger = 'x'}\n", "option 'penalty.anger' must be a number"),
        ("[agent.options]\npenalty = 3\n", "option 'penalty' must be a table"),
        ("[user.options]\nlatency = [1]\n", "option 'latency' must be a number"),
        ("[agent.options]\nskill = 2\n", "option 'skill' must be a number from 0 to 1"),
        ("tasks = 3\ntask_ids = [1]\n", "give tasks or task_ids, not both"),
        ('num_trials = "3"\n', "field 'num_trials'"),
        ("tasks = true\n", "field 'tasks'"),
        ('variants = "control"\n', "field 'variants'"),
        ("[agent]\noptions = 3\n", "field 'agent.options'"),
        ('experiment_name = "demo\\n"\n', "field 'experiment_name'"),
    ],
)
def test_bad_config_values(tmp_path, config, needle) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    _bad(["run", "--config", str(cfg), "--out", str(tmp_path / "runs")], needle, tmp_path)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("domain", "needle"),
    [
        (":", "expected package.module:object"),
        ("..:x", "expected package.module:object"),
        ("subprocess:run", "could not be built"),
        ("emotau.domains:Domain", "could not be built"),
        ("json:dumps", "could not be built"),
        ("toydomain:MisnumberedDomain", "tasks()[0] has id 2"),
    ],
)
def test_bad_domains(tmp_path, domain, needle) -> None:
    _bad(["run", "--domain", domain, "--out", str(tmp_path / "runs")], needle, tmp_path)
    assert not (tmp_path / "runs").exists()


def test_more_bad_files(tmp_path) -> None:
    binary = tmp_path / "v.toml"
    binary.write_bytes(b"\xff\xfe[variants.x]\n")
    _bad(["variants", "list", "--variants-file", str(binary)], "is not UTF-8 text", tmp_path)
    ctrl = tmp_path / "c.toml"
    ctrl.write_text("[variants.control]\ntext = 'I am angry.'\n")
    _bad(["run", "--variants-file", str(ctrl)], "variant 'control' is reserved", tmp_path)
    empty = tmp_path / "p.toml"
    empty.write_text("[variants.placebo2]\ndescription = 'nothing'\n")
    _bad(
        ["run", "--variants-file", str(empty), "--variants", "placebo2+anger"],
        "variant 'placebo2' injects nothing",
        tmp_path,
    )
    assert not (tmp_path / "runs").exists()


def test_damaged_run_directory(tmp_path) -> None:
    base = ["--env", TOY, "--out", str(tmp_path), "--num-trials", "1", "--quiet"]
    assert emotau_here("run", *base).returncode == 0
    spec = tmp_path / "demo" / "spec.json"
    spec.write_text('{"hash": "x", "identity": 5}')
    _bad(["run", *base], "is not a valid emotau spec file", tmp_path)
    _bad(["summary", str(tmp_path / "demo")], "is not a valid emotau spec file", tmp_path)
    spec.write_text("{not json")
    _bad(["summary", str(tmp_path / "demo")], "is corrupt", tmp_path)
    (tmp_path / "afile").write_text("")
    _bad(["run", *base, "--experiment-name", "afile"], "exists and is not a directory", tmp_path)


def test_no_arguments_prints_help() -> None:
    r = emotau_here()
    assert r.returncode == 0 and "Commands:" in r.stdout and "run" in r.stdout


def test_missing_episodes_exit_4_with_the_errors_and_the_resume_command(tmp_path) -> None:
    """Every episode fails (endpoint down, no preflight): exit status 4, the most common error
    with its count, the resume command that runs them, and no SYNTHETIC label on a table of
    no results."""
    dead = "http://127.0.0.1:9/v1"
    base = ["--config", str(FAST_RETRIES), "--env", TOY, "--task-ids", "0,1", "--num-trials", "1"]
    r = emotau_here(
        "run", *base, "--variants", "control", "--model", "scripted-agent", "--base-url", dead,
        "--no-preflight", "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "0/2 episodes finished (INCOMPLETE)" in r.stdout and "SYNTHETIC" not in r.stdout
    assert "these results are SYNTHETIC" not in r.stderr
    lines = r.stderr.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("emotau: incomplete: 2 of the 2"))
    assert lines[at + 1].split()[:3] == ["2", "x", "agent"], lines[at + 1]
    assert f"agent model 'scripted-agent' at {dead}: cannot connect" in lines[at + 1]
    assert len(lines[at + 1]) <= 120  # shortened
    cmd = lines[at + 2].rsplit(": ", 1)[1]
    assert cmd == f"emotau resume {tmp_path / 'demo'}", lines[at + 2]
    # resume exits 4 too while the endpoint is down; the printed command finishes the run
    again = emotau_here(*cmd.split()[1:], "--no-preflight", "--quiet")
    assert again.returncode == 4 and "2 of the 2 episodes" in again.stderr, again.stderr
    with mock_server("--oracle-domains", TOY) as url:
        done = emotau_here(*cmd.split()[1:], "--base-url", url, "--quiet")
    assert done.returncode == 0 and "2 episodes run now" in done.stderr, done.stderr
    assert summary_json(tmp_path / "demo")["complete"]
    assert "4    run/resume: episodes missing" in emotau_here("--help").stdout


def test_a_shard_that_misses_episodes_names_its_shard(tmp_path) -> None:
    """With --workers too: a worker that misses episodes is no failed worker."""
    r = emotau(
        "run", "--config", str(FAST_RETRIES), "--env", TOY, "--num-trials", "1", "--variants",
        "control", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--no-preflight",
        "--out", str(tmp_path), "--shard", "1/2", "--workers", "2", "--quiet",
    )  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert r.stderr.rstrip().endswith(f"emotau resume {tmp_path / 'demo'} --shard 1/2")


def test_preflight_says_what_it_waits_for_and_each_retry(tmp_path) -> None:
    dead = "http://127.0.0.1:9/v1"
    args = ["run", "--config", str(FAST_RETRIES), "--env", TOY, "--model", "m"]
    r = emotau_here(*args, "--agent-base-url", dead, "--out", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    *waits, last = r.stderr.strip().splitlines()
    assert last.startswith("emotau: error: agent endpoint http://127.0.0.1:9/v1 cannot be used")
    assert len(waits) == 5, waits  # fast-retries.toml keeps the default 6 attempts
    for n, line in enumerate(waits, 1):
        assert line.startswith(
            f"emotau: preflight: waiting for the agent endpoint {dead}: "
            f"attempt {n} of 6 failed: cannot connect"
        ), line
        assert "; next try in 0.0" in line and len(line) <= 180, line
    assert not (tmp_path / "runs").exists()
    # --quiet: the error alone
    q = emotau_here(*args, "--agent-base-url", dead, "--out", str(tmp_path / "runs"), "-q")
    assert q.returncode == 2 and q.stderr.strip() == last, q.stderr


def test_an_unknown_emotion_is_refused_and_analyze_prints_no_raw_warning(tmp_path) -> None:
    vf = tmp_path / "rage.toml"
    vf.write_text('[variants.furious]\nemotion = "rage"\ntext = "You are furious."\n')
    _bad(
        ["run", "--env", TOY, "--variants-file", str(vf), "--variants", "control,furious"],
        f"variants file '{vf}', variant 'furious', field 'emotion': unknown emotion 'rage'; "
        "allowed: frustration, anxiety, anger, confusion",
        tmp_path,
    )
    _bad(["variants", "list", "--variants-file", str(vf)], "unknown emotion 'rage'", tmp_path)
    assert not (tmp_path / "runs").exists()
    # a run from before the check: its records name the emotion; analyze says so in one line
    vf.write_text('[variants.furious]\nemotion = "anger"\ntext = "You are furious."\n')
    r = emotau_here(
        "run", "--env", TOY, "--variants-file", str(vf), "--variants", "control,furious",
        "--num-trials", "1", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for shard in (tmp_path / "demo" / "episodes").glob("*.jsonl"):
        shard.write_text(shard.read_text().replace('"emotion":"anger"', '"emotion":"rage"'))
    a = emotau("analyze", str(tmp_path / "demo"))  # a real process: its real stderr
    assert a.returncode == 0, a.stderr
    assert "warning: no score for emotion(s) rage" in a.stderr, a.stderr
    assert "Warning:" not in a.stderr and ".py:" not in a.stderr, a.stderr
    summary_md = (tmp_path / "demo" / "report" / "summary.md").read_text()
    assert "no score for emotion(s) rage" in summary_md  # the report keeps it too


def test_resume_of_a_changed_run_offers_only_what_resume_takes(tmp_path) -> None:
    vf = tmp_path / "v.toml"
    vf.write_text("[variants.grr]\nemotion = 'anger'\ntext = 'Be cross.'\n")
    r = emotau_here(
        "run", "--env", TOY, "--variants", "control,grr", "--variants-file", str(vf),
        "--num-trials", "1", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    vf.write_text("[variants.grr]\nemotion = 'anger'\ntext = 'Be very cross.'\n")
    _bad(
        ["resume", str(tmp_path / "demo")],
        f"run '{tmp_path / 'demo'}' cannot be resumed: what it measures now resolves "
        "differently from when it started: variants.grr",
        tmp_path,
    )
    r = emotau_here("resume", str(tmp_path / "demo"))
    assert "Use --new-run" not in r.stderr and "`emotau run` (--new-run" in r.stderr, r.stderr
    assert "--new-run" not in emotau_here("resume", "--help").stdout  # indeed not resume's


FOLDED = (
    "hotel, tau-bench:airline, tau-bench:retail[:dev|:train], tau2:airline[:test|:train], "
    "tau2:mock, tau2:retail[:test|:train], tau2:telecom[:full|:small|:test|:train], "
    "or package.module:object"
)


@pytest.mark.parametrize(
    ("domain", "needle"),
    [
        ("taubench:airline", "domain 'taubench:airline' (did you mean 'tau-bench:airline'?)"),
        ("tau_bench:airline:test", "(did you mean 'tau-bench:airline:test'?); allowed: " + FOLDED),
        ("nowhere", "unknown domain 'nowhere'; allowed: " + FOLDED),
        ("no_such_mod:X", "cannot import domain module 'no_such_mod': No module named "),
        ("no_such_mod:X", "; the domains: " + FOLDED),
    ],
)
def test_a_wrong_domain_says_which_are_accepted(tmp_path, domain, needle) -> None:
    _bad(["run", "--domain", domain, "--out", str(tmp_path / "runs")], needle, tmp_path)


def test_a_domain_with_its_split_is_a_domain(tmp_path) -> None:
    """`tau-bench:airline:test` is tau-bench's airline domain (its test split), not a module."""
    import importlib.util

    r = emotau_here("run", "--domain", "tau-bench:airline:test", "--plan", cwd=tmp_path)
    assert "cannot import domain module" not in r.stderr, r.stderr
    if importlib.util.find_spec("tau_bench") is None:
        assert r.returncode == 2 and "tau-bench is not installed" in r.stderr, r.stderr
    else:
        assert r.returncode == 0 and "domain tau-bench:airline," in r.stdout, r.stdout


def test_help_lists_the_domain_names() -> None:
    top = " ".join(emotau_here("--help").stdout.split())
    assert "Domains (--domain): " + FOLDED in top, top
    run_help = " ".join(emotau_here("run", "--help").stdout.split())
    assert "Domain [hotel]: " + FOLDED in run_help, run_help


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dead_endpoint_does_not_burn_the_grid(tmp_path, workers) -> None:
    """The circuit breaker (issue 13 item 3): after N episodes in a row end as infrastructure
    errors, none starts while it probes the endpoints for retry.breaker_wait seconds; then exit
    6 with a line that says so, and the rest of the grid is left for the resume, which
    completes it once a server answers."""
    cfg = tmp_path / "breaker.toml"
    cfg.write_text(
        FAST_RETRIES.read_text() + "stop_after_failed_episodes = 5\nbreaker_wait = 1.5\n"
    )
    grid = ["--env", TOY, "--task-ids", "0,1,2", "--num-trials", "4", "--max-concurrency", "2"]
    t = time.monotonic()
    cli = emotau if workers > 1 else emotau_here  # workers need the tests' PYTHONPATH
    r = cli(
        "run", "--config", str(cfg), *grid, "--model", "scripted-agent", "--user-model",
        "scripted-user", "--base-url", "http://127.0.0.1:9/v1", "--no-preflight",
        "--out", str(tmp_path), "--quiet", "--workers", str(workers),
    )  # fmt: skip
    assert r.returncode == 6, r.stderr
    assert time.monotonic() - t >= 1.5  # it waited for the endpoint before it gave up
    said = " ".join(r.stderr.split())
    which = "2 of 2 workers; worker 0/2: " if workers == 2 else ""
    assert f"stopped early: {which}5 episodes in a row ended in infrastructure errors and" in said
    assert "did not answer probes for 1.5 s (last probe: agent endpoint http://127.0.0.1:9" in said
    tried = all_lines(tmp_path / "demo")
    assert 5 * workers <= len(tried) <= 6 * workers < 3 * 6 * 4  # +1 in flight each: not 72
    log = "".join(f.read_text() for f in (tmp_path / "demo" / "logs").glob("*.log"))
    assert "circuit breaker opened" in log and "circuit breaker gave up" in log
    with mock_server("--oracle-domains", TOY) as url:
        done = emotau_here("resume", str(tmp_path / "demo"), "--base-url", url, "--quiet")
    assert done.returncode == 0, done.stderr
    assert summary_json(tmp_path / "demo")["complete"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_breaker_waits_for_an_endpoint_that_comes_back(tmp_path, workers) -> None:
    """The endpoint is down when the run starts and comes up on the same port while the
    breaker probes it: the run carries on and does the rest of the grid; only the episodes
    that failed before it opened are left for the resume (exit 4, not 6)."""
    import socket
    import subprocess
    import sys

    from helpers import env

    with socket.socket() as s:  # a port nobody listens on, for now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "breaker.toml"
    cfg.write_text(FAST_RETRIES.read_text() + "stop_after_failed_episodes = 3\nbreaker_wait = 60\n")
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "emotau", "run", "--config", str(cfg), "--env", TOY,
         "--task-ids", "0,1,2", "--num-trials", "4", "--max-concurrency", "1",
         "--workers", str(workers), "--model", "scripted-agent", "--user-model",
         "scripted-user", "--base-url", f"http://127.0.0.1:{port}/v1", "--no-preflight",
         "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(all_lines(out / "demo")) < 3 * workers and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(all_lines(out / "demo")) >= 3 * workers  # every worker's breaker is open
        with mock_server("--oracle-domains", TOY, port=port):
            _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 4, err
    lines = all_lines(out / "demo")
    failed = [x for x in lines if x["status"] == "infra_error"]
    assert len(lines) == 3 * 6 * 4  # every episode was tried once: none burnt, none skipped
    assert 3 * workers <= len(failed) <= 4 * workers
    if workers == 1:
        assert "the circuit breaker opened 1 time(s) after 3 episodes in a row" in err
    with mock_server("--oracle-domains", TOY) as url:
        done = emotau_here("resume", str(out / "demo"), "--base-url", url, "--quiet")
    assert done.returncode == 0, done.stderr
    assert summary_json(out / "demo")["complete"]
