"""SYNTHETIC is said wherever scripted results appear: compare, plots, summary JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import emotau as api
from emotau.analysis.report import analyze
from helpers import emotau_here

pytest.importorskip("matplotlib")

MARK = "SYNTHETIC (scripted models)"


def _run(tmp: Path, name: str) -> Path:
    return api.run(
        experiment_name=name, out=str(tmp), tasks=4, num_trials=2, variants=["control", "anger"]
    ).path


def _as_real(run_dir: Path, dest: Path) -> Path:
    """A copy of a scripted run whose records say they are not synthetic (as a real model's)."""
    shutil.copytree(run_dir, dest)
    for f in (dest / "episodes").glob("shard-*.jsonl"):
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        lines = [json.dumps(r | {"synthetic": False}, separators=(",", ":")) for r in recs]
        f.write_text("".join(line + "\n" for line in lines))
    return dest


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    a, b = _run(tmp, "a"), _run(tmp, "b")
    return {
        "a": a,
        "b": b,
        "real_a": _as_real(a, tmp / "real-a"),
        "real_b": _as_real(b, tmp / "real-b"),
    }


@pytest.mark.parametrize(
    ("pair", "expect"),
    [(("a", "b"), ["a (A)", "b (B)"]), (("real_a", "b"), ["b (B)"]), (("real_a", "real_b"), [])],
)
def test_compare_says_synthetic(runs, tmp_path, pair, expect) -> None:
    out = tmp_path / "cmp"
    r = emotau_here("compare", str(runs[pair[0]]), str(runs[pair[1]]), "--out", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "compare.md").read_text()
    csv = (out / "compare.csv").read_text().splitlines()
    header, first = csv[0].split(","), csv[1].split(",")
    flags = (first[header.index("synthetic_a")], first[header.index("synthetic_b")])
    if not expect:
        assert "SYNTHETIC" not in r.stdout + r.stderr + md
        assert flags == ("False", "False")
        return
    for text in (r.stdout, r.stderr, md):
        assert MARK in text
        line = next(x for x in text.splitlines() if "scripted models produced" in x)
        for name in expect:
            assert name in line
        assert ("a (A)" in line) == ("a (A)" in expect)
    assert md.splitlines()[0].endswith(MARK)  # in the heading too
    assert flags == (str(pair[0] == "a"), "True")


def _figure_texts(monkeypatch) -> dict[str, list[str]]:
    """Every text of every figure the report saves, by file name (read before saving)."""
    from matplotlib.figure import Figure

    texts: dict[str, list[str]] = {}
    save = Figure.savefig

    def spy(self, fname, *args, **kwargs):
        texts[Path(fname).stem] = [
            t.get_text() for t in self.findobj(lambda o: hasattr(o, "get_text"))
        ]
        return save(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return texts


def test_every_plot_of_a_scripted_run_is_marked(runs, tmp_path, monkeypatch) -> None:
    texts = _figure_texts(monkeypatch)
    analyze(runs["a"], tmp_path / "report", n_boot=200)
    assert set(texts) == {"success", "pass_k", "task_heatmap", "emotion_turns"}
    for name, found in texts.items():
        assert MARK in found, name


def test_plots_of_a_real_run_are_not_marked(runs, tmp_path, monkeypatch) -> None:
    texts = _figure_texts(monkeypatch)
    analyze(runs["real_a"], tmp_path / "report", n_boot=200)
    assert texts and not any("SYNTHETIC" in t for found in texts.values() for t in found)


def test_summary_json_and_table_say_synthetic(runs) -> None:
    for name, synthetic in (("a", True), ("real_a", False)):
        r = emotau_here("summary", str(runs[name]), "--format", "json")
        assert json.loads(r.stdout)["synthetic"] is synthetic
        table = emotau_here("summary", str(runs[name])).stdout
        assert (MARK in table) is synthetic
