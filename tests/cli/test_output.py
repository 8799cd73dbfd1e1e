"""What `emotau run` and `emotau summary` print: it fits the terminal and says what it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import emotau_here


def _summary_json(run_dir: Path) -> dict:
    r = emotau_here("summary", str(run_dir), "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def twelve_trials(tmp_path_factory) -> Path:
    """A finished run with 12 trials and every default variant (scripted: SYNTHETIC)."""
    cwd = tmp_path_factory.mktemp("twelve")
    r = emotau_here("run", "--tasks", "2", "--num-trials", "12", "--quiet", cwd=cwd)
    assert r.returncode == 0, r.stderr
    return cwd / "runs" / "demo"


def _rows(out: str, names: list[str]) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = line.replace("│", " ").replace("┃", " ").split()
        if cells and cells[0] in names:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("columns", [80, 160])
def test_summary_table_fits_with_many_trials(twelve_trials, monkeypatch, columns) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    data = _summary_json(twelve_trials)
    r = emotau_here("summary", str(twelve_trials))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "…" not in r.stdout  # no cell (or header) cut short
    assert max(len(line) for line in lines) <= columns
    assert "SYNTHETIC" in r.stdout
    names = [v["variant"] for v in data["variants"]]
    rows = _rows(r.stdout, names)
    assert set(rows) == set(names)
    for v in data["variants"]:
        cells = rows[v["variant"]]
        assert cells[0] == str(v["episodes"])
        assert cells[1] == f"{100 * v['success_rate']:.1f}"
        for k in ("1", "12"):  # pass^1 and pass^(largest k) are always there
            assert f"{100 * v['pass_k'][k]:.1f}" in cells
    assert "p^k: pass^k" in " ".join(r.stdout.split())  # the abbreviations are explained
    if columns == 160:  # room for 1, 2, 4, 8 and 12
        header = next(line for line in lines if "variant" in line).split()
        assert [h for h in header if h.startswith("p^")] == ["p^1", "p^2", "p^4", "p^8", "p^12"]
    # --wide: every k, full headers, nothing cut, whatever the terminal
    wide = emotau_here("summary", str(twelve_trials), "--wide")
    assert wide.returncode == 0 and "…" not in wide.stdout
    for k in range(1, 13):
        assert f"pass^{k}" in wide.stdout
    for v in data["variants"]:
        cells = _rows(wide.stdout, names)[v["variant"]]
        assert cells[3 : 3 + 12] == [f"{100 * v['pass_k'][str(k)]:.1f}" for k in range(1, 13)]


def test_run_output_and_bar_fit_80_columns(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    r = emotau_here("run", "--tasks", "25", "--num-trials", "2", "--progress", "bar", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # the bar's lines: the whole grid, then one per variant (the other lines are messages)
    bar = [line for line in r.stderr.splitlines() if line.startswith(("all", "  "))]
    assert len(bar) == 7
    for text in (r.stdout, "\n".join(bar)):
        assert "…" not in text
        assert max(len(line) for line in text.splitlines()) <= 80
    assert bar[0].startswith("all (SYNTHETIC)") and "300/300" in bar[0]  # the counts, whole
    assert all("50/50" in line for line in bar[1:])
    assert "success" in r.stdout and "p^2" in r.stdout


def _last_rate(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("[emotau]")]
    words = lines[-1].split()
    return words[words.index("success") + 2]  # "success (SYNTHETIC) 85.0%"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_progress_rates_after_a_resume_agree_with_the_summary(tmp_path, workers) -> None:
    grid = ("--tasks", "10", "--num-trials", "2", "--variants", "control,anger,confusion")
    half = emotau_here("run", *grid, "--shard", "0/2", "--progress", "log", cwd=tmp_path)
    assert half.returncode == 0, half.stderr
    run_dir = tmp_path / "runs" / "demo"
    first = _summary_json(run_dir)
    assert first["finished_episodes"] == 30
    r = emotau_here("resume", str(run_dir), "--progress", "log", "--workers", workers, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "30 episodes run now, 30 already finished" in r.stderr
    data = _summary_json(run_dir)
    assert data["complete"]
    wins = sum(v["success_rate"] * v["episodes"] for v in data["variants"])
    scored = sum(v["episodes"] for v in data["variants"])
    assert _last_rate(r.stderr) == f"{100 * wins / scored:.1f}%"
    # the rate at the start of the resume is the first half's
    wins1 = sum(v["success_rate"] * v["episodes"] for v in first["variants"])
    head = next(x for x in r.stderr.splitlines() if x.startswith("[emotau] 30/60"))
    assert f"{100 * wins1 / 30:.1f}%" in head


def test_bar_rows_start_from_the_finished_episodes() -> None:
    import io

    from rich.console import Console

    from emotau.runner._progress import RichProgress

    console = Console(file=io.StringIO(), width=120)
    bar = RichProgress(console)
    bar.start({"control": 4, "anger": 4}, {"control": 2, "anger": 2}, True, {"control": (1, 2)})
    rec = {"variant": "control", "status": "completed", "scored": True, "success": True}
    bar.update(rec)
    bar.close()
    out = console.file.getvalue()
    assert "success 66.7%" in out  # 2 of 3: the earlier 1 of 2, and this one
    assert "success 67%" in out  # control's own row
