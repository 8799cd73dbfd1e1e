"""`emotau analyze` on a 100,000-episode synthetic run: wall time and peak memory.

Target: `emotau analyze RUN_DIR --out DIR` on 100k episodes in under 60 s, with memory bounded
by a fixed budget (not growing with the number of episodes).

The run directories are built from real episode records. A small real run (the built-in hotel
domain, scripted models, every task x every built-in variant x 3 trials = 810 episodes) is made
through the Python API; its records are then replicated with new task ids (copy c of task s
becomes task c * 45 + s) until the target size is reached, and written in canonical grid order
round-robin over 4 shard files, streaming, as a sharded run would have written them. spec.json
is the small run's, with the task ids (identity and spec) and the hash updated, so that
`emotau summary` and `emotau.load_run` accept the run and report it complete. A fresh build is
checked with `emotau summary --format json`; a valid existing build is reused.

Then `emotau analyze` runs as a subprocess at each size (default 25k and 100k episodes, in two
directories) and a table shows episodes, shard bytes, wall time and peak RSS (the child's
ru_maxrss from wait4, plus the summed RSS of its process tree sampled every 50 ms), and the
100k/25k ratios: peak RSS should stay flat while episodes grow 4x.

    python benchmarks/analysis_100k.py [--episodes 100000] [--sizes 25000,100000]
        [--run-dir /tmp/emotau-bench/analysis-100k] [--rebuild] [--generate-only]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path("/tmp/emotau-bench")
GENERATOR_VERSION = 1
MANIFEST = "bench-manifest.json"  # written last: a valid, checked build
MARKER = ".emotau-bench"  # written first: this directory is the benchmark's to replace
EMOTAU = str(Path(sys.executable).with_name("emotau"))
TARGET_WALL_S = 60.0


def label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# ------------------------------------------------------------------------------ the source run
@dataclass
class Source:
    """The small real run: its frozen spec and one line template per (task, variant, trial)."""

    frozen: dict[str, Any]
    n_tasks: int
    labels: list[str]
    trials: int
    #: key -> the record's JSON without task_id and shard, outer braces stripped
    bodies: dict[tuple[int, str, int], bytes]


def source_spec(trials: int, out: str) -> dict[str, Any]:
    # every task and every built-in variant (the RunSpec defaults), scripted models
    return {"experiment_name": "source", "domain": "hotel", "num_trials": trials, "out": out}


def source_hash(trials: int) -> str:
    """The small run's spec hash, without running it (changes with domain, prompts, variants)."""
    from emotau.runner import prepare
    from emotau.spec import build_spec

    return prepare(build_spec(source_spec(trials, "unused"))).resolved.hash


def make_source(trials: int) -> Source:
    import emotau
    from emotau.results import record_key

    with tempfile.TemporaryDirectory(prefix="emotau-bench-source-") as tmp:
        run = emotau.run(source_spec(trials, tmp))
        summary = run.summary()
        if not summary["complete"]:
            sys.exit(f"the source run is incomplete: {summary['finished_episodes']} episodes")
        frozen = run.frozen
        bodies: dict[tuple[int, str, int], bytes] = {}
        for rec in run.episodes():
            key = record_key(rec)
            # real records start with task_id and end with shard; everything else is kept as is
            body = {k: v for k, v in rec.items() if k not in ("task_id", "shard")}
            blob = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            bodies[key] = blob[1:-1]
    ident = frozen["identity"]
    if ident["task_ids"] != list(range(len(ident["task_ids"]))):
        sys.exit("the source run's task ids are not 0..N-1")
    labels = sorted(ident["variants"])
    return Source(frozen, len(ident["task_ids"]), labels, ident["num_trials"], bodies)


# ------------------------------------------------------------------------------ the big run
def plan(episodes: int, per_task: int) -> int:
    """Tasks needed for at least ``episodes`` episodes (each task has ``per_task``)."""
    return -(-episodes // per_task)


def frozen_for(src: Source, run_dir: Path, n_tasks: int) -> dict[str, Any]:
    from emotau.spec import spec_hash

    frozen = json.loads(json.dumps(src.frozen))
    frozen["identity"]["task_ids"] = list(range(n_tasks))
    frozen["hash"] = spec_hash(frozen["identity"])
    spec = frozen["spec"]
    spec.update(
        {"experiment_name": run_dir.name, "out": str(run_dir.parent), "tasks": None},
        task_ids=list(range(n_tasks)),
    )
    frozen["created"] = {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
    return frozen


def write_run(src: Source, build: Path, final: Path, n_tasks: int, shards: int) -> int:
    """Write spec.json and the shard files under ``build``; return the number of episodes."""
    from emotau.results import EPISODES_DIR, SPEC_FILE, shard_filename

    build.mkdir(parents=True)
    (build / MARKER).touch()
    with open(build / SPEC_FILE, "w", encoding="utf-8") as fh:
        json.dump(frozen_for(src, final, n_tasks), fh, indent=2, sort_keys=True)
        fh.write("\n")
    (build / EPISODES_DIR).mkdir()
    files = [
        open(build / EPISODES_DIR / shard_filename(i, shards), "wb", buffering=1 << 20)  # noqa: SIM115
        for i in range(shards)
    ]
    tails = [f',"shard":"{i}/{shards}"}}\n'.encode() for i in range(shards)]
    k = 0
    try:
        # canonical grid order (trial, task, variant label); shard i takes items i, i+N, ...
        for trial in range(src.trials):
            for task_id in range(n_tasks):
                head = b'{"task_id":%d,' % task_id
                for lab in src.labels:
                    i = k % shards
                    line = head + src.bodies[(task_id % src.n_tasks, lab, trial)] + tails[i]
                    if k < 3:  # the template must give what json.dumps of the record gives
                        rec = json.loads(line)
                        assert rec["task_id"] == task_id and rec["variant"] == lab, rec
                        assert rec["trial"] == trial and rec["shard"] == f"{i}/{shards}", rec
                    files[i].write(line)
                    k += 1
    finally:
        for fh in files:
            fh.close()
    return k


def shard_sizes(run_dir: Path) -> dict[str, int]:
    from emotau.results import RunStore

    return {p.name: p.stat().st_size for p in RunStore(run_dir).shard_files()}


def check_summary(run_dir: Path, expected: int) -> list[str]:
    """`emotau summary` must see every episode and call the run complete; returns its table."""
    import emotau

    run = emotau.load_run(run_dir)
    run.spec  # noqa: B018 - the frozen spec must validate as a RunSpec
    proc = subprocess.run(
        [EMOTAU, "summary", str(run_dir), "--format", "json"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"emotau summary {run_dir} failed: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    if data["finished_episodes"] != expected or not data["complete"]:
        sys.exit(
            f"emotau summary {run_dir}: {data['finished_episodes']}/"
            f"{data['expected_episodes']} episodes, complete={data['complete']}; "
            f"expected {expected} and complete"
        )
    # the table `emotau summary RUN_DIR` prints, rendered from the same data
    from rich.console import Console

    from emotau.results import render_table

    console = Console(file=io.StringIO(), width=120)
    console.print(render_table(data, title=str(run_dir)))
    return console.file.getvalue().splitlines()


def manifest_ok(run_dir: Path, want: dict[str, Any]) -> bool:
    from emotau.results import RunStore

    try:
        have = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        frozen = RunStore(run_dir).read_frozen()
    except Exception:  # unreadable or not an emotau run: rebuild
        return False
    return (
        frozen is not None
        and all(have.get(k) == v for k, v in want.items())
        and have.get("shard_bytes") == shard_sizes(run_dir)
        and len(frozen["identity"]["task_ids"]) == want["tasks"]
    )


def ensure_run(
    run_dir: Path, episodes: int, args: argparse.Namespace, cache: dict[str, Any]
) -> dict[str, Any]:
    """Build (or reuse) a run of at least ``episodes`` episodes; return its manifest."""
    from emotau.spec import DEFAULT_VARIANTS

    per_task = len(DEFAULT_VARIANTS) * args.trials  # checked against the source run below
    if "hash" not in cache:
        cache["hash"] = source_hash(args.trials)
    want = {
        "generator": GENERATOR_VERSION,
        "source_hash": cache["hash"],
        "tasks": plan(episodes, per_task),
        "shards": args.shards,
    }
    if not args.rebuild and manifest_ok(run_dir, want):
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        print(f"reusing {run_dir} ({manifest['episodes']} episodes; --rebuild to rebuild)")
        manifest["reused"] = True
        return manifest
    if run_dir.exists() and not (run_dir / MARKER).exists() and any(run_dir.iterdir()):
        sys.exit(f"{run_dir} exists and was not made by this benchmark; not replacing it")
    if "source" not in cache:
        t0 = time.perf_counter()
        cache["source"] = make_source(args.trials)
        cache["source_s"] = time.perf_counter() - t0
        src = cache["source"]
        print(
            f"source run: {len(src.bodies)} real episodes (hotel, scripted models, "
            f"{src.n_tasks} tasks x {len(src.labels)} variants x {src.trials} trials) "
            f"in {cache['source_s']:.1f}s"
        )
        if src.frozen["hash"] != cache["hash"] or len(src.labels) * src.trials != per_task:
            sys.exit("the source run does not have the expected spec")
    src = cache["source"]
    build = run_dir.with_name(f"{run_dir.name}.building-{os.getpid()}")
    shutil.rmtree(build, ignore_errors=True)
    try:
        t0 = time.perf_counter()
        n = write_run(src, build, run_dir, want["tasks"], args.shards)
        gen_s = time.perf_counter() - t0
        sizes = shard_sizes(build)
        shutil.rmtree(run_dir, ignore_errors=True)
        build.rename(run_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    t0 = time.perf_counter()
    lines = check_summary(run_dir, n)
    check_s = time.perf_counter() - t0
    manifest = {
        **want,
        "episodes": n,
        "shard_bytes": sizes,
        "generate_s": round(gen_s, 2),
        "source_s": round(cache["source_s"], 2),
    }
    # written last: a build that was cut short or failed the check is rebuilt next time
    (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(sizes.values())
    print(
        f"generated {run_dir}: {n} episodes ({want['tasks']} tasks), {len(sizes)} shards, "
        f"{total / 1e9:.2f} GB, in {gen_s:.1f}s (+{cache['source_s']:.1f}s source run); "
        f"emotau summary: {n}/{n} complete (checked in {check_s:.1f}s)"
    )
    for line in lines[:7]:
        print("   ", line)
    return {**manifest, "reused": False}


# ------------------------------------------------------------------------------ measuring
def tree_rss_mb(pid: int) -> float:
    """Summed VmRSS of a process and its descendants (0 once it has exited)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total / 1024


@dataclass
class Result:
    rc: int
    wall_s: float
    peak_rss_mb: float  # the largest single process (ru_maxrss of the child and its waited-for)
    tree_rss_mb: float  # summed RSS of the process tree, sampled
    stderr: str


def measure(cmd: list[str], timeout: float) -> Result:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        peak_tree = 0.0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_tree
            while not done.is_set():
                peak_tree = max(peak_tree, tree_rss_mb(proc.pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        finally:
            timer.cancel()
            done.set()
            sampler.join()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return Result(
            proc.returncode,
            wall,
            usage.ru_maxrss / 1024,
            peak_tree,
            err.read().decode(errors="replace"),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=100_000, help="the large size")
    ap.add_argument(
        "--sizes", help="comma-separated sizes, e.g. 25000,100000 (default: episodes/4, episodes)"
    )
    ap.add_argument(
        "--run-dir",
        type=Path,
        help="directory of the largest size (default /tmp/emotau-bench/analysis-100k); "
        "smaller sizes go beside it as analysis-<size>",
    )
    ap.add_argument("--rebuild", action="store_true", help="regenerate even if valid")
    ap.add_argument("--generate-only", action="store_true", help="do not run emotau analyze")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--trials", type=int, default=3, help="trials of the small source run")
    ap.add_argument("--timeout", type=float, default=900.0, help="per emotau analyze run, s")
    args = ap.parse_args()
    if args.sizes:
        try:
            sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
        except ValueError:
            ap.error(f"--sizes must be integers, got {args.sizes!r}")
    else:
        sizes = sorted({max(1, args.episodes // 4), args.episodes})
    if not sizes or sizes[0] < 1 or args.shards < 1:
        ap.error("sizes and --shards must be positive")
    largest = args.run_dir or ROOT / f"analysis-{label(sizes[-1])}"
    dirs = {n: largest.parent / f"analysis-{label(n)}" for n in sizes[:-1]}
    dirs[sizes[-1]] = largest
    if len(set(dirs.values())) != len(dirs):
        ap.error(f"--run-dir {largest} collides with the directory of a smaller size")

    cache: dict[str, Any] = {}
    manifests = {n: ensure_run(dirs[n], n, args, cache) for n in sizes}
    if args.generate_only:
        return

    rows: dict[int, Result] = {}
    missing = False
    for n in sizes:
        run_dir = dirs[n]
        out = run_dir.with_name(f"{run_dir.name}-report")
        shutil.rmtree(out, ignore_errors=True)
        res = measure([EMOTAU, "analyze", str(run_dir), "--out", str(out)], args.timeout)
        if res.rc != 0 and "No such command" in res.stderr:
            missing = True
            break
        if res.rc != 0:
            tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"emotau analyze {run_dir} failed (exit {res.rc}, {res.wall_s:.1f}s): {tail}")
        rows[n] = res

    print()
    head = ("episodes", "gen s", "shard MB", "wall s", "peak RSS MB", "tree RSS MB")
    print(f"{head[0]:>9} {head[1]:>7} {head[2]:>9} {head[3]:>7} {head[4]:>12} {head[5]:>12}")
    for n in sizes:
        m = manifests[n]
        gen = "reused" if m["reused"] else f"{m['generate_s']:.1f}"
        line = f"{m['episodes']:>9} {gen:>7} {sum(m['shard_bytes'].values()) / 1e6:>9.0f}"
        res = rows.get(n)
        if res is not None:
            ok = "" if res.rc == 0 else f"  (exit {res.rc})"
            line += f" {res.wall_s:>7.1f} {res.peak_rss_mb:>12.0f} {res.tree_rss_mb:>12.0f}{ok}"
        print(line)
    if missing:
        print(
            "\nemotau analyze is not implemented yet ('No such command'); only generation was "
            "measured (generation times above; every build passed the emotau summary check "
            "before it was marked valid for reuse)"
        )
        return
    ok = [n for n in sizes if n in rows and rows[n].rc == 0]
    if len(ok) >= 2:
        n0, n1 = ok[0], ok[-1]
        r0, r1 = rows[n0], rows[n1]
        e0, e1 = manifests[n0]["episodes"], manifests[n1]["episodes"]
        print(
            f"ratio {label(n1)}/{label(n0)}: episodes x{e1 / e0:.2f}, "
            f"wall x{r1.wall_s / r0.wall_s:.2f}, peak RSS x{r1.peak_rss_mb / r0.peak_rss_mb:.2f}, "
            f"tree RSS x{r1.tree_rss_mb / max(r0.tree_rss_mb, 1e-9):.2f}"
        )
    if ok:
        e, r = manifests[ok[-1]]["episodes"], rows[ok[-1]]
        verdict = "within" if r.wall_s < TARGET_WALL_S else "OVER"
        print(
            f"{e} episodes in {r.wall_s:.1f}s on {os.cpu_count()} CPUs: {verdict} the "
            f"{TARGET_WALL_S:.0f} s target"
        )


if __name__ == "__main__":
    main()
