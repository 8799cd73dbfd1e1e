"""Progress reporting: a live rich bar on a terminal, plain log lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TextIO

from emotau.core import Key, is_finished


class Progress(Protocol):
    """``start``: the episodes of each variant in this shard (``totals``), those already
    finished (``done``), and ``scored``: (successes, scored) per variant among those, so that
    the rates shown cover the whole shard, as the summary does, not only this process's."""

    def start(
        self,
        totals: Mapping[str, int],
        done: Mapping[str, int],
        synthetic: bool = False,
        scored: Mapping[str, tuple[int, int]] | None = None,
    ) -> None: ...
    def update(self, record: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


class _Counts:
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.total = 0
        self.finished = 0  # finished before this process started + here
        self.new = 0
        self.successes = 0
        self.scored = 0
        self.errors = 0
        self.per_variant: dict[str, list[int]] = {}  # variant -> [successes, scored]
        self.synthetic = False
        self.t0 = time.monotonic()

    def start(
        self,
        totals: Mapping[str, int],
        done: Mapping[str, int],
        synthetic: bool = False,
        scored: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.synthetic = synthetic
        self.totals = dict(totals)
        self.done = {k: done.get(k, 0) for k in totals}
        self.total = sum(totals.values())
        self.finished = sum(self.done.values())
        prior = scored or {}
        self.per_variant = {k: [int(w), int(n)] for k, (w, n) in prior.items()}
        self.successes = sum(w for w, _ in self.per_variant.values())
        self.scored = sum(n for _, n in self.per_variant.values())
        self.t0 = time.monotonic()

    def update(self, rec: Mapping[str, Any]) -> None:
        self.synthetic = self.synthetic or bool(rec.get("synthetic"))
        if is_finished(rec):
            self.finished += 1
            self.new += 1
            self.done[rec["variant"]] = self.done.get(rec["variant"], 0) + 1
            if rec.get("scored"):
                win = 1 if rec.get("success") else 0
                self.scored += 1
                self.successes += win
                pv = self.per_variant.setdefault(rec["variant"], [0, 0])
                pv[0] += win
                pv[1] += 1
        else:
            self.errors += 1

    def rate(self) -> float:
        return self.new / max(1e-9, time.monotonic() - self.t0)

    def line(self) -> str:
        rate = self.rate()
        left = self.total - self.finished
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        succ = f"{100 * self.successes / self.scored:.1f}%" if self.scored else "-"
        pct = 100 * self.finished / self.total if self.total else 100.0
        tag = " (SYNTHETIC)" if self.synthetic else ""
        return (
            f"{self.finished}/{self.total} ({pct:.0f}%) success{tag} {succ} "
            f"infra errors {self.errors} {rate:.1f} ep/s eta {eta}"
        )


class NullProgress:
    def start(
        self,
        totals: Mapping[str, int],
        done: Mapping[str, int],
        synthetic: bool = False,
        scored: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        pass

    def update(self, record: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class LogProgress(_Counts):
    """One plain line every ``interval`` seconds and at the end (for logs and Slurm)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last = 0.0

    def _emit(self) -> None:
        print(f"[emotau] {self.line()}", file=self.stream, flush=True)
        self._last = time.monotonic()

    def start(
        self,
        totals: Mapping[str, int],
        done: Mapping[str, int],
        synthetic: bool = False,
        scored: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        super().start(totals, done, synthetic, scored)
        self._emit()

    def update(self, record: Mapping[str, Any]) -> None:
        super().update(record)
        if time.monotonic() - self._last >= self.interval:
            self._emit()

    def close(self) -> None:
        self._emit()


class RichProgress(_Counts):
    """A live bar: overall done/total, success so far, errors, rate, ETA; one row per variant.

    The layout follows the console's width: on a narrow terminal (80 columns) the labels are
    shorter, the bar narrower and the elapsed time left out, so that no part is cut.
    """

    def __init__(self, console: Any | None = None) -> None:
        super().__init__()
        from rich.console import Console

        self._console = console if console is not None else Console(stderr=True)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._all: Any = None
        self._narrow = False

    def _columns(self, names: list[str]) -> list[Any]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        width = int(self._console.width)
        label = min(24, max([len(n) + 2 for n in names] + [len("all (SYNTHETIC)")]))
        counts = 2 * len(str(self.total)) + 1

        def rest() -> int:  # counts, info, times (7 each), one space between columns
            times = 7 if self._narrow else 15
            return counts + len(self._info(100.0, 10**4, 10**4)) + times + 5

        self._narrow = label + rest() + 20 > width
        label = min(label, max(8, width - rest() - 10))
        fixed = label + rest()
        columns: list[Any] = [TextColumn(f"{{task.description:<{label}.{label}}}")]
        bar = min(40, width - fixed - 1)
        if bar >= 5:
            columns.append(BarColumn(bar_width=bar))
        columns += [MofNCompleteColumn(), TextColumn("{task.fields[info]}")]
        if not self._narrow:
            columns.append(TimeElapsedColumn())
        columns.append(TimeRemainingColumn())
        return columns

    def _all_name(self) -> str:
        return "all (SYNTHETIC)" if self.synthetic else "all"

    def _info(self, succ: float | None, errors: int, rate: float) -> str:
        s = "-" if succ is None else f"{succ:.1f}%"
        if self._narrow:
            return f"{s} err {errors} {rate:.0f}/s"
        return f"success {s} errors {errors} {rate:.0f} ep/s"

    def start(
        self,
        totals: Mapping[str, int],
        done: Mapping[str, int],
        synthetic: bool = False,
        scored: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        from rich.progress import Progress as RichBar

        super().start(totals, done, synthetic, scored)
        self._progress = p = RichBar(
            *self._columns(list(totals)),
            transient=False,
            refresh_per_second=8,
            console=self._console,
        )
        self._all = p.add_task(
            self._all_name(), total=self.total, completed=self.finished, info=self._all_info()
        )
        for name, total in totals.items():
            self._tasks[name] = p.add_task(
                f"  {name}",
                total=total,
                completed=self.done.get(name, 0),
                info=self._variant_info(name),
            )
        p.start()

    def _all_info(self) -> str:
        succ = 100 * self.successes / self.scored if self.scored else None
        return self._info(succ, self.errors, self.rate())

    def _variant_info(self, name: str) -> str:
        wins, n = self.per_variant.get(name, [0, 0])
        return (("" if self._narrow else "success ") + f"{100 * wins / n:.0f}%") if n else ""

    def update(self, record: Mapping[str, Any]) -> None:
        super().update(record)
        name = record["variant"]
        if is_finished(record):
            task = self._tasks.get(name)
            if task is not None:
                self._progress.update(task, advance=1, info=self._variant_info(name))
            self._progress.update(self._all, advance=1)
        self._progress.update(self._all, description=self._all_name(), info=self._all_info())

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def scored_so_far(
    keys: Iterable[Key], finished: Mapping[Key, tuple[bool, bool]]
) -> dict[str, tuple[int, int]]:
    """(successes, scored) per variant among the already finished ``keys`` (what the progress
    display starts from after a resume)."""
    out: dict[str, list[int]] = {}
    for key in keys:
        outcome = finished.get(key)
        if outcome is not None and outcome[0]:
            c = out.setdefault(key[1], [0, 0])
            c[0] += 1 if outcome[1] else 0
            c[1] += 1
    return {k: (w, n) for k, (w, n) in out.items()}


def make_progress(mode: str = "auto") -> Progress:
    """``auto``: a rich bar on a terminal, log lines otherwise; ``bar``; ``log``; ``none``."""
    if mode not in {"auto", "bar", "log", "none"}:
        raise ValueError(f"unknown progress mode {mode!r}")
    if mode == "none":
        return NullProgress()
    if mode == "log" or (mode == "auto" and not sys.stderr.isatty()):
        return LogProgress()
    return RichProgress()
