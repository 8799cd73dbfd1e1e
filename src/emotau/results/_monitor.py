"""Where a run stands, read from its directory alone (``emotau status``).

Works from a login node while jobs write the run: it reads the frozen spec and the shard
files (only each line's key, status and timestamps), never the models or the domain. The
grid order and the shard rule are the runner's: key number k = ((trial * tasks) + task
position) * variants + variant position over the sorted variant labels, and shard i/N owns
the keys with k % N == i.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotau.results._store import RunStore, is_finished, parse_line, parse_shard_name, record_key

RATE_WINDOW_S = 600.0  # the rate is measured over the last ten minutes of finished episodes
STALL_AFTER_S = 900.0  # an unfinished shard whose file has not grown for this long is stalled


@dataclass
class ShardState:
    index: int  # shard index/count: "3/8" is index 3 of count 8
    count: int
    expected: int
    done: int = 0
    #: episodes in this shard's file that ended in an infrastructure error and that no file has
    #: finished since: what a resume runs again (the per-variant count's meaning)
    infra_errors: int = 0
    infra_error_lines: int = 0  # every infra-error record in the file, retried ones included
    lines: int = 0
    last_write: float | None = None  # mtime of the shard file
    state: str = "not started"  # done | running | stalled | not started

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class RunStatus:
    path: str
    total: int
    done: int
    per_variant: dict[str, dict[str, int]]
    shards: list[ShardState]
    rate_per_min: float | None
    eta_s: float | None
    last_activity: float | None
    duplicates: int  # finished records of a key beyond the first (dropped by every reader)
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "total": self.total,
            "done": self.done,
            "complete": self.complete,
            "per_variant": self.per_variant,
            "shards": [s.__dict__ | {"name": s.name} for s in self.shards],
            "rate_per_min": self.rate_per_min,
            "eta_s": self.eta_s,
            "last_activity": self.last_activity,
            "duplicates": self.duplicates,
            "warnings": self.warnings,
        }


@dataclass
class _FileScan:
    """What one shard file held at the last look; only bytes appended since are read again."""

    offset: int = 0
    lines: int = 0
    infra: set[tuple[int, str, int]] = field(default_factory=set)
    infra_lines: int = 0
    finished: list[tuple[int, str, int]] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    mtime: float | None = None

    def update(self, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if st.st_size < self.offset:  # cut back (a repaired last line): read it again
            self.__init__()  # type: ignore[misc]
        self.mtime = st.st_mtime
        with open(path, "rb") as fh:
            fh.seek(self.offset)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # being written: next time
                self.offset += len(raw)
                rec = parse_line(raw)  # exactly the lines every reader accepts
                if rec is None:
                    continue
                self.lines += 1
                key = record_key(rec)
                if not is_finished(rec):
                    self.infra_lines += 1
                    self.infra.add(key)
                    continue
                self.finished.append(key)
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    self.ends.append(float(rec["started_at"]) + float(rec["duration_s"]))


class StatusReader:
    """Reads a run's status; kept between calls (``--watch``), it reads only new lines."""

    def __init__(self, path: str | Path) -> None:
        from emotau.results._reader import Run

        self.run = Run.open(path)
        self._files: dict[str, _FileScan] = {}

    def read(
        self,
        *,
        now: float | None = None,
        stall_after: float = STALL_AFTER_S,
        array: int | None = None,
    ) -> RunStatus:
        """Done/total per variant and per shard, infra errors, rate, ETA, stalled shards.

        ``array`` is the number of shards the run was submitted as (``emotau submit``
        records it); shards of that split with no file yet show as "not started".
        """
        run = self.run
        now = time.time() if now is None else now
        ident = run.frozen["identity"]
        task_ids = list(ident["task_ids"])
        labels = sorted(run.variants)
        trials = int(ident["num_trials"])
        pos_task = {t: i for i, t in enumerate(task_ids)}
        pos_label = {v: i for i, v in enumerate(labels)}
        total = len(task_ids) * len(labels) * trials
        array = array if array is not None else _submitted_array(run.path)

        finished: dict[tuple[int, str, int], int] = {}  # key -> grid number
        duplicates = 0
        infra_keys: set[tuple[int, str, int]] = set()
        ends: list[float] = []
        files: dict[tuple[int, int], tuple[int, int, float | None]] = {}
        scans: dict[tuple[int, int], _FileScan] = {}
        for f in RunStore(run.path).shard_files():
            parsed = parse_shard_name(f.name)
            assert parsed is not None
            i, n = parsed
            if not 0 <= i < n:
                continue  # not a name emotau writes
            scan = self._files.setdefault(f.name, _FileScan())
            scan.update(f)
            scans[(i, n)] = scan
            infra_keys |= scan.infra
            ends += scan.ends
            for key in scan.finished:
                if key in finished:
                    duplicates += 1
                elif key[0] in pos_task and key[1] in pos_label and 0 <= key[2] < trials:
                    finished[key] = (key[2] * len(task_ids) + pos_task[key[0]]) * len(
                        labels
                    ) + pos_label[key[1]]

        for ix, scan in scans.items():  # open infra errors, as per variant: not finished since
            files[ix] = (scan.lines, len(scan.infra - finished.keys()), scan.mtime)
        per_variant = {
            v: {"total": len(task_ids) * trials, "done": 0, "infra_errors": 0} for v in run.variants
        }
        for key in finished:
            per_variant[key[1]]["done"] += 1
        for key in infra_keys - finished.keys():  # still open: retried by the next resume
            if key[1] in per_variant:
                per_variant[key[1]]["infra_errors"] += 1
        shards = _shards(files, finished, total, array, now, stall_after)
        for sh in shards:
            if (sh.index, sh.count) in scans:
                sh.infra_error_lines = scans[(sh.index, sh.count)].infra_lines
        done = len(finished)
        recent = [e for e in ends if now - RATE_WINDOW_S <= e <= now]
        rate = None
        if len(recent) >= 2:
            span = max(10.0, now - min(recent))
            rate = 60.0 * len(recent) / span
        eta = None
        if done >= total:
            eta = 0.0
        elif rate:
            eta = (total - done) / rate * 60.0
        mtimes = [t for _, _, t in files.values() if t is not None]
        last = max(mtimes, default=None)
        status = RunStatus(
            path=str(run.path),
            total=total,
            done=done,
            per_variant=per_variant,
            shards=shards,
            rate_per_min=rate,
            eta_s=eta,
            last_activity=last,
            duplicates=duplicates,
        )
        stalled = [s.name for s in shards if s.state == "stalled"]
        if stalled:
            status.warnings.append(
                f"stalled shard(s) {', '.join(stalled)}: unfinished and no new episode for "
                f"{stall_after / 60:.0f} min (job dead or pre-empted? `emotau submit slurm "
                "--resubmit-failed` or `emotau resume --shard i/N` re-runs them)"
            )
        return status


def run_status(
    path: str | Path,
    *,
    now: float | None = None,
    stall_after: float = STALL_AFTER_S,
    array: int | None = None,
) -> RunStatus:
    """One look at a run (see :meth:`StatusReader.read`)."""
    return StatusReader(path).read(now=now, stall_after=stall_after, array=array)


def _shards(
    files: dict[tuple[int, int], tuple[int, int, float | None]],
    finished: dict[tuple[int, str, int], int],
    total: int,
    array: int | None,
    now: float,
    stall_after: float,
) -> list[ShardState]:
    """One row per shard of each split that has files (and of the submitted split). A shard's
    last write is the newest of every file whose episodes overlap it (``--workers``
    sub-shards, a later split of the same run), so work done under another name counts."""
    splits = sorted({n for _, n in files} | ({array} if array else set()))
    out = []
    for n in splits:
        done_by = Counter(k % n for k in finished.values())
        for i in range(n):
            expected = total // n + (1 if i < total % n else 0)
            s = ShardState(i, n, expected, done=done_by[i])
            if (i, n) in files:
                s.lines, s.infra_errors, _ = files[(i, n)]
            writes = [
                t
                for (j, m), (_, _, t) in files.items()
                if t is not None and i % math.gcd(n, m) == j % math.gcd(n, m)
            ]
            s.last_write = max(writes, default=None)
            if s.done >= expected:
                s.state = "done"
            elif s.last_write is None:
                s.state = "not started"
            elif now - s.last_write > stall_after:
                s.state = "stalled"
            else:
                s.state = "running"
            if (i, n) in files or n == array:
                out.append(s)
    return out


def _submitted_array(path: Path) -> int | None:
    """The shard count of the latest ``emotau submit`` of this run, if any."""
    import json

    jobs = path / "submit" / "jobs.json"
    try:
        data = json.loads(jobs.read_text())
        return int(data[-1]["array"]) if data else None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def render_status(st: RunStatus, now: float | None = None) -> Any:
    """A rich renderable: per-variant table, per-shard table, totals line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = time.time() if now is None else now
    vt = Table(title=f"{st.path}: {st.done}/{st.total} episodes", title_justify="left")
    for col in ("variant", "done", "total", "%", "infra errors (open)"):
        vt.add_column(col, justify="left" if col == "variant" else "right")
    for v, row in st.per_variant.items():
        pct = 100 * row["done"] / row["total"] if row["total"] else 0.0
        vt.add_row(v, str(row["done"]), str(row["total"]), f"{pct:.0f}", str(row["infra_errors"]))
    parts: list[Any] = [vt]
    if st.shards:
        sh = Table(title="shards", title_justify="left")
        for col in ("shard", "done", "expected", "infra errors (open)", "last write", "state"):
            sh.add_column(col, justify="left" if col in ("shard", "state") else "right")
        for s in st.shards:
            ago = "–" if s.last_write is None else _duration(now - s.last_write) + " ago"
            style = {"stalled": "bold red", "done": "green", "running": "yellow"}.get(s.state, "")
            sh.add_row(
                s.name,
                str(s.done),
                str(s.expected),
                str(s.infra_errors),
                ago,
                Text(s.state, style=style),
            )
        parts.append(sh)
    rate = "–" if st.rate_per_min is None else f"{st.rate_per_min:.1f}/min"
    eta = "done" if st.complete else ("–" if st.eta_s is None else _duration(st.eta_s))
    parts.append(Text(f"rate {rate} (last {RATE_WINDOW_S / 60:.0f} min), ETA {eta}"))
    if st.duplicates:
        parts.append(Text(f"{st.duplicates} duplicate finished record(s), ignored by readers"))
    parts += [Text(f"warning: {w}", style="bold red") for w in st.warnings]
    return Group(*parts)


def status_line(st: RunStatus, now: float | None = None) -> str:
    """The status as one plain line (``status --watch`` off a terminal writes one per change):
    the local time, done/total, open infrastructure errors, rate, ETA, shard states, warnings."""
    now = time.time() if now is None else now
    pct = 100 * st.done / st.total if st.total else 100.0
    infra = sum(row["infra_errors"] for row in st.per_variant.values())
    rate = "-" if st.rate_per_min is None else f"{st.rate_per_min:.1f}/min"
    eta = "done" if st.complete else ("-" if st.eta_s is None else _duration(st.eta_s))
    states = Counter(s.state for s in st.shards)
    shards = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    line = (
        f"{time.strftime('%H:%M:%S', time.localtime(now))} {st.path}: {st.done}/{st.total} "
        f"episodes ({pct:.0f}%), {infra} infra errors open, rate {rate}, ETA {eta}"
        + (f"; shards: {shards}" if shards else "")
    )
    return "; ".join([line, *(f"warning: {w}" for w in st.warnings)])


def status_change(st: RunStatus) -> tuple[Any, ...]:
    """What a plain ``--watch`` line reports a change of (not the clock, the rate or the ETA)."""
    return (
        st.done,
        tuple(row["infra_errors"] for row in st.per_variant.values()),
        tuple((s.name, s.state) for s in st.shards),
        tuple(st.warnings),
    )


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
