"""The report directory: ``summary.md``, ``report.html``, Parquet tables, CSV tables, plots.

Markdown and HTML are rendered from one list of :class:`Section` (title, paragraphs, tables of
strings), so they always say the same thing. Every string that reaches the HTML goes through
:func:`html.escape`; conversations are embedded as JSON (with ``<``, ``>`` and ``&`` written
as ``\\u003c``...) and put on the page with ``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from emotau.analysis._format import (
    Section,
    Table,
    ci,
    count_of,
    markdown_table,
    md_cell,
    missing,
    num,
    p_value,
    pct,
    signed,
)
from emotau.analysis.conversation import FAILURE_REASONS, SUMMARY_MEASURES

if TYPE_CHECKING:
    from emotau.analysis._analysis import Analysis

PLOTS = {
    "success": "Success rate by variant (95% task-bootstrap intervals)",
    "pass_k": "pass^k by variant",
    "task_heatmap": "Success rate by task and variant",
    "emotion_turns": "Customer emotion over the conversation",
}


# --------------------------------------------------------------------------- sections
def build_sections(a: Analysis) -> list[Section]:
    return [
        s
        for s in (
            _overview(a),
            _success(a),
            _deltas(a),
            _design(a),
            _manipulation(a),
            _manipulation(a, judge=True),
            _taxonomy(a),
            _conversation(a),
            _completeness(a),
            _usage(a),
        )
        if s is not None
    ]


def _overview(a: Analysis) -> Section:
    m = a.meta
    models = ", ".join(f"{k} `{v}`" for k, v in m["models"].items() if v)
    s = Section("Overview", anchor="overview")
    s.paragraphs.append(
        f"Run `{m['run']}` (spec {m['spec_hash']}): domain `{m['domain']}`, "
        f"{count_of(m['tasks'], 'task')} x {count_of(len(a.variants), 'variant')} x "
        f"{count_of(m['trials'], 'trial')} = {count_of(len(a.episodes), 'episode')} recorded. "
        f"Models: {models}. Agent strategy `{m['agent_strategy']}`."
    )
    if a.reference:
        s.paragraphs.append(f"Differences are against the `{a.reference}` arm.")
    for w in a.warnings:
        s.paragraphs.append(f"**Warning:** {w}")
    return s


def _metric(a: Analysis, variant: str, metric: str, k: int | None = None) -> pd.Series | None:
    df = a.summary
    sel = (df["variant"] == variant) & (df["metric"] == metric)
    if k is not None:
        sel &= df["k"] == k
    rows = df[sel]
    return None if rows.empty else rows.iloc[0]


def _success(a: Analysis) -> Section | None:
    if a.summary.empty:
        return None
    kmax = int(a.summary["k"].max()) if a.summary["k"].notna().any() else 1
    ks = list(range(1, kmax + 1)) if kmax <= 8 else [1, 2, 4, 8, kmax]
    headers = ["variant", "episodes", "tasks", "success", "95% CI", "mean reward", "95% CI "]
    headers += [f"pass^{k}" for k in ks]
    rows = []
    for v in a.variants:
        sr = _metric(a, v, "success_rate")
        if sr is None:
            continue
        mr = _metric(a, v, "mean_reward")
        row = [v, str(sr["episodes"]), str(sr["tasks"]), pct(sr["estimate"])]
        row += [ci(sr["low"], sr["high"]), num(mr["estimate"] if mr is not None else None)]
        row.append("" if mr is None else ci(mr["low"], mr["high"], scale=1, digits=2))
        for k in ks:
            pk = _metric(a, v, "pass^k", k)
            row.append("–" if pk is None else f"{pct(pk['estimate'])} {ci(pk['low'], pk['high'])}")
        rows.append(row)
    s = Section("Success by variant", anchor="success")
    s.paragraphs.append(
        "Scored episodes only (infrastructure errors are never scored). Intervals: 95% "
        "percentile bootstrap over tasks. pass^k: the unbiased estimator, the mean over tasks "
        "of C(c,k)/C(n,k); it weights tasks equally, so pass^1 differs from the success rate "
        "when tasks have different numbers of scored trials."
    )
    s.tables.append(Table(headers, rows))
    return s


def _deltas(a: Analysis) -> Section | None:
    if a.comparison.empty:
        return None
    ref = a.reference
    headers = ["variant", "pairs", ref or "reference", "variant rate", "difference (points)"]
    headers += ["95% CI", "relative", "discordant (ref/var)", "McNemar p (Holm)"]
    headers += ["permutation p (Holm)"]
    rows = []
    for r in a.comparison.itertuples():
        rows.append(
            [
                str(r.variant),
                str(r.pairs),
                pct(r.ref_rate),
                pct(r.variant_rate),
                signed(r.diff_pp),
                ci(r.diff_low_pp, r.diff_high_pp, scale=1),
                "–" if missing(r.rel_change) else f"{100 * r.rel_change:+.0f}%",
                f"{r.ref_only}/{r.variant_only}",
                f"{p_value(r.p_mcnemar)} ({p_value(r.p_mcnemar_holm)})",
                f"{p_value(r.p_permutation)} ({p_value(r.p_permutation_holm)})",
            ]
        )
    s = Section(f"Against {ref}", anchor="deltas")
    s.paragraphs.append(
        f"Paired on the (task, trial) episodes both arms have. Difference = variant - {ref} in "
        "percentage points, with a 95% task-bootstrap interval; relative = difference / "
        f"{ref} rate. Tests: exact McNemar on the discordant pairs, and a permutation test "
        "over tasks; in brackets the Holm-adjusted p-value over all variants."
    )
    s.tables.append(Table(headers, rows))
    return s


def _design(a: Analysis) -> Section:
    d = a.design
    icc = "assumed 0.30" if missing(d["icc"]) else f"measured {d['icc']:.2f}"
    base = "unknown" if missing(d["baseline"]) else pct(d["baseline"], 0)
    s = Section("Design and power", anchor="design")
    s.paragraphs.append(
        f"{count_of(d['tasks'], 'task')} x {count_of(d['trials'], 'trial')} per arm. The smallest "
        f"difference from the reference this design detects with 80% power at alpha = 0.05 is "
        f"**{100 * d['mde']:.1f} points** ({100 * d['mde_holm']:.1f} with the Bonferroni bound "
        f"of Holm over {count_of(d['comparisons'], 'comparison')}); reference success {base}, "
        f"intra-task "
        f"correlation {icc}. Smaller true effects are likely to be missed: a difference that is "
        "not significant here is not evidence of no effect. `emotau run --plan` prints this "
        "before a run."
    )
    if d["note"]:
        s.paragraphs.append(f"Note: {d['note']}.")
    return s


def _manipulation(a: Analysis, judge: bool = False) -> Section | None:
    """The manipulation check on the lexicon's scores, or (``judge``) on the LLM judge's
    labels, with the judge's agreement with the lexicon."""
    m = a.manipulation_judge if judge else a.manipulation
    if not m:
        return None
    if judge and "model" not in a.judge:  # a labeller that needs no model
        j = a.judge
        s = Section(f"Manipulation check ({j.get('title')})", anchor="manipulation-judge")
        s.paragraphs.append(
            f"The emotion labeller `{j.get('labeller')}` labelled each of the "
            f"{j.get('distinct_messages', 0)} distinct customer messages with one emotion (or "
            "none) and an intensity 0-3. The labelled emotion scores intensity / 3, so an "
            "episode expresses an emotion when a message is labelled with it at intensity 1 or "
            "more. A variant is flagged when the lower bound of its paired 95% interval "
            "against the reference is at or below zero."
        )
    elif judge:
        s = Section("Manipulation check (LLM judge)", anchor="manipulation-judge")
        j = a.judge
        where = f" at {j['endpoint']}" if j.get("endpoint") else " (in process)"
        if j.get("synthetic"):
            s.paragraphs.append(
                "**Warning:** SYNTHETIC: these labels come from the scripted judge, which "
                "labels with emotau's own lexicon; they test the pipeline, not an LLM's "
                "judgement, and agree with the lexicon by construction."
            )
        s.paragraphs.append(
            f"The run's judge model `{j.get('model')}`{where} labelled each of the "
            f"{j.get('distinct_messages', 0)} distinct customer messages with one emotion "
            "(or none) and an intensity 0-3, using emotau's fixed rubric "
            f"({count_of(j.get('calls', 0), 'call')}, {j.get('prompt_tokens', 0)} prompt and "
            f"{j.get('completion_tokens', 0)} completion tokens). The labelled emotion scores "
            "intensity / 3, so an episode expresses an emotion when a message is labelled "
            "with it at intensity 1 or more. A variant is flagged when the lower bound of its "
            "paired 95% interval against the reference is at or below zero."
        )
    else:
        s = Section("Manipulation check: did the customer show the emotion?", anchor="manipulation")
        s.paragraphs.append(
            "Every customer message is scored offline for frustration, anxiety, anger and "
            "confusion (emotau's cue lexicon; valence from VADER). An episode expresses an "
            "emotion when its strongest message reaches 0.3. A variant is flagged when the "
            "lower bound of its paired 95% interval against the reference is at or below zero."
        )
    ex = m.get("expression")
    if ex is not None and not ex.empty:
        rows = []
        for r in ex.itertuples():
            if r.placebo:  # an arm that asks for no emotion (control, a placebo)
                verdict = (
                    "no emotion asked: not above reference (as expected)"
                    if r.flag
                    else "no emotion asked, yet ABOVE reference"
                )
            else:
                verdict = "FLAG: not clearly above reference" if r.flag else "expressed"
            rows.append(
                [
                    str(r.variant),
                    str(r.emotion),
                    str(r.n_episodes),
                    f"{pct(r.rate)} {ci(r.rate_low, r.rate_high)}",
                    pct(r.reference_rate),
                    f"{100 * r.diff:+.1f} {ci(r.diff_low, r.diff_high)}",
                    verdict,
                ]
            )
        headers = ["variant", "emotion", "episodes", "expressed in", a.reference or "reference"]
        headers += ["difference (points)", "verdict"]
        s.tables.append(Table(headers, rows, "Expression rate"))
    conf = m.get("confusion_rates")
    counts = m.get("confusion_counts")
    if conf is not None and not conf.empty:
        rows = []
        for intended, r in conf.iterrows():
            n = int(counts.loc[intended].sum()) if counts is not None else 0
            rows.append([str(intended), str(n), *(pct(x, 0) for x in r.to_numpy())])
        headers = ["intended \\ detected", "episodes", *map(str, conf.columns)]
        s.tables.append(Table(headers, rows, "Confusion matrix (share of episodes)"))
    inten = m.get("intensity")
    if inten is not None and not inten.empty:
        rows = [
            [
                str(r.emotion),
                str(r.intensity),
                str(r.n_episodes),
                num(r.mean_score),
                num(r.mean_max_score),
                pct(r.rate),
                "–" if missing(r.monotonic) else ("yes" if r.monotonic else "NO"),
            ]
            for r in inten.itertuples()
        ]
        headers = ["emotion", "requested", "episodes", "mean score", "mean peak", "expressed"]
        headers += ["mild < moderate < severe"]
        s.tables.append(Table(headers, rows, "Intensity by requested intensity"))
    stab = m.get("stability")
    if stab is not None and not stab.empty:
        rows = [
            [
                str(r.variant),
                str(r.emotion),
                str(r.n_episodes),
                num(r.first),
                num(r.last),
                signed(r.diff, 2),
            ]
            for r in stab.itertuples()
        ]
        headers = ["variant", "emotion", "episodes", "first message", "last message", "change"]
        s.tables.append(Table(headers, rows, "Stability over the conversation"))
    agree = m.get("agreement")
    if agree is not None and not agree.empty:
        rows = [
            [str(r.variant), str(r.messages), str(r.agree), pct(r.agreement), num(r.kappa)]
            for r in agree.itertuples()
        ]
        headers = ["variant", "messages", "same label", "agreement", "Cohen's kappa"]
        s.tables.append(Table(headers, rows, "Agreement with the lexicon (per message)"))
    return s


def _taxonomy(a: Analysis) -> Section | None:
    t = a.taxonomy
    if t.empty:
        return None
    cats = [c for c in FAILURE_REASONS if (t.loc[t["category"] == c, "n_flagged"] > 0).any()]
    if not cats:
        cats = [c for c in FAILURE_REASONS if c != "false_goal_met"][:1]
    rows = []
    for v in a.variants:
        sub = t[t["variant"] == v].set_index("category")
        if sub.empty:
            continue
        first = sub.iloc[0]
        row = [v, str(first["n_scored"]), str(first["n_failed"])]
        for c in cats:
            r = sub.loc[c]
            n = int(r["n_flagged"] if c == "false_goal_met" else r["n_primary"])
            row.append(
                f"{n} ({pct(r['share_flagged'] if c == 'false_goal_met' else r['share'], 0)})"
            )
        rows.append(row)
    s = Section("Why episodes failed", anchor="failures")
    s.paragraphs.append(
        "Each failed episode has one primary category (share of the variant's failures in "
        "brackets). `false_goal_met` counts failures where the customer said the goal was met; "
        "it overlaps the others."
    )
    s.tables.append(Table(["variant", "scored", "failed", *cats], rows))
    return s


def _conversation(a: Analysis) -> Section | None:
    c = a.conversation
    if c.empty:
        return None
    s = Section("Conversation measures", anchor="conversation")
    s.paragraphs.append(
        "Means over completed episodes with a 95% interval from task-clustered standard "
        "errors. Rates are of episodes where the agent did it at least once (rules written for "
        "emotau: apologies, acknowledging the customer's feelings, clarifying questions)."
    )
    rows = []
    for measure in SUMMARY_MEASURES:
        row = [measure]
        for v in a.variants:
            r = c[(c["variant"] == v) & (c["measure"] == measure)]
            if r.empty or r.iloc[0]["n"] == 0:
                row.append("–")
                continue
            r = r.iloc[0]
            if measure.startswith("any_"):
                row.append(f"{pct(r['mean'], 0)} {ci(r['ci_low'], r['ci_high'], digits=0)}")
            else:
                row.append(f"{r['mean']:.1f} {ci(r['ci_low'], r['ci_high'], 1)}")
        rows.append(row)
    s.tables.append(Table(["measure", *a.variants], rows))
    b = a.behaviour
    if not b.empty:
        rows = [
            [
                str(r.variant),
                str(r.behaviour),
                str(r.n_with),
                pct(r.success_with),
                str(r.n_without),
                pct(r.success_without),
                signed(r.difference, scale=100),
            ]
            for r in b.itertuples()
        ]
        headers = ["variant", "behaviour", "episodes with", "success with", "episodes without"]
        headers += ["success without", "difference (points)"]
        s.tables.append(
            Table(headers, rows, "Agent behaviour and success (associations, not causes)")
        )
    return s


def _completeness(a: Analysis) -> Section:
    s = Section("Completeness and errors", anchor="completeness")
    rows = [[str(x) for x in r[1:]] for r in a.completeness.itertuples()]
    headers = ["variant", "expected", "finished", "scored", "simulator errors"]
    headers += ["infrastructure errors", "missing"]
    s.tables.append(Table(headers, rows))
    if len(a.infra):
        shown = a.infra.head(50)
        rows = [
            [str(r.task_id), str(r.variant), str(r.trial), str(r.error)] for r in shown.itertuples()
        ]
        caption = f"Infrastructure errors ({len(a.infra)}; first {len(shown)} shown)"
        s.tables.append(Table(["task", "variant", "trial", "error"], rows, caption))
    return s


def usage_frame(a: Analysis) -> pd.DataFrame:
    """The usage table: one row per role, then ``total`` (tokens and cost summed)."""
    rows = [{"role": role, **t} for role, t in a.usage.items()]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows, columns=["role", "episodes", "calls", "prompt_tokens",
                                     "completion_tokens", "cost_usd"])  # fmt: skip
    costs = df["cost_usd"].dropna()
    total = {
        "role": "total",
        "episodes": None,
        **{c: int(df[c].sum()) for c in ("calls", "prompt_tokens", "completion_tokens")},
        "cost_usd": round(float(costs.sum()), 8) if len(costs) else None,
    }
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def _usage(a: Analysis) -> Section | None:
    from emotau.results import format_usd

    df = usage_frame(a)
    if df.empty:
        return None
    s = Section("Tokens and cost", anchor="usage")
    s.paragraphs.append(
        "Model calls, tokens and cost per role, summed over every recorded episode attempt "
        "(infrastructure errors that a resume retried included: what the run spent), as "
        "`emotau summary` gives them. A cost needs the role's `price` (USD per million "
        "tokens) in the config; '-' where none was set."
    )
    rows = []
    for r in df.itertuples():
        cost = "-" if missing(r.cost_usd) else format_usd(float(r.cost_usd))
        eps = "" if missing(r.episodes) else f"{int(r.episodes):,}"
        counts = [f"{int(v):,}" for v in (r.calls, r.prompt_tokens, r.completion_tokens)]
        rows.append([str(r.role), eps, *counts, cost])
    headers = ["role", "episodes", "calls", "prompt tokens", "completion tokens", "cost (USD)"]
    s.tables.append(Table(headers, rows))
    return s


# --------------------------------------------------------------------------- markdown
def render_markdown(a: Analysis, sections: Sequence[Section], plots: Sequence[str]) -> str:
    out = [f"# emotau report: {md_cell(a.meta['run'])}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [p, ""]
        for t in s.tables:
            out += markdown_table(t)
    if plots:
        out += ["## Plots", ""]
        out += [f"![{PLOTS[p]}](plots/{p}.png)" for p in plots]
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- plots
def write_plots(a: Analysis, folder: Path) -> list[str]:
    """Write the plots that the data allows; return their names (keys of :data:`PLOTS`)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for name, fn in (
        ("success", _plot_success),
        ("pass_k", _plot_pass_k),
        ("task_heatmap", _plot_heatmap),
        ("emotion_turns", _plot_emotion),
    ):
        fig = fn(a, plt)
        if fig is None:
            continue
        if a.synthetic:
            mark_synthetic(fig)
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        done.append(name)
    return done


SYNTHETIC_MARK = "SYNTHETIC (scripted models)"


def mark_synthetic(fig: Any) -> None:
    """Label a figure of scripted results: a line over it and a watermark across it, so that
    the image says so even when it is copied out of the report."""
    fig.text(0.01, 1.0, SYNTHETIC_MARK, ha="left", va="bottom", color="#b00020", fontsize=9,
             fontweight="bold")  # fmt: skip
    fig.text(0.5, 0.5, SYNTHETIC_MARK, ha="center", va="center", rotation=25, fontsize=26,
             color="#b00020", alpha=0.15, zorder=100)  # fmt: skip


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _plot_success(a: Analysis, plt: Any) -> Any:
    rows = [(v, _metric(a, v, "success_rate")) for v in a.variants] if not a.summary.empty else []
    rows = [(v, r) for v, r in rows if r is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(rows) + 2), 3.6))
    xs = range(len(rows))
    est = [100 * r["estimate"] for _, r in rows]
    err = [
        [100 * (r["estimate"] - r["low"]) for _, r in rows],
        [100 * (r["high"] - r["estimate"]) for _, r in rows],
    ]
    colors = ["#888888" if v == a.reference else "#3b6ea8" for v, _ in rows]
    ax.bar(xs, est, color=colors, yerr=err, capsize=4)
    if a.reference and (ref := _metric(a, a.reference, "success_rate")) is not None:
        ax.axhline(100 * ref["estimate"], color="#888888", ls="--", lw=1)
    ax.set_xticks(list(xs), [v for v, _ in rows], rotation=30, ha="right")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 105)
    ax.set_title(PLOTS["success"], fontsize=10)
    return fig


def _plot_pass_k(a: Analysis, plt: Any) -> Any:
    if a.summary.empty:
        return None
    pk = a.summary[a.summary["metric"] == "pass^k"]
    if pk.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for v in a.variants:
        sub = pk[pk["variant"] == v].sort_values("k")
        if sub.empty:
            continue
        k = sub["k"].astype(int).to_numpy()
        (line,) = ax.plot(k, 100 * sub["estimate"], marker="o", label=v)
        ax.fill_between(k, 100 * sub["low"], 100 * sub["high"], alpha=0.12, color=line.get_color())
    ax.set_xlabel("k (trials that must all succeed)")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_ylabel("pass^k (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title(PLOTS["pass_k"], fontsize=10)
    return fig


def _plot_heatmap(a: Analysis, plt: Any) -> Any:
    m = a.task_matrix
    if m.empty:
        return None
    if a.reference in m.columns:
        m = m.sort_values(a.reference, kind="stable")
    height = min(14.0, 1.5 + 0.18 * len(m))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * m.shape[1] + 2), height))
    im = ax.imshow(m.to_numpy(dtype=float), aspect="auto", cmap="RdYlGn", vmin=0, vmax=1)
    ax.set_xticks(range(m.shape[1]), list(m.columns), rotation=30, ha="right")
    if len(m) <= 60:
        ax.set_yticks(range(len(m)), [str(t) for t in m.index], fontsize=7)
    else:
        ax.set_yticks([])
    ax.set_ylabel("task")
    fig.colorbar(im, ax=ax, label="success rate")
    ax.set_title(PLOTS["task_heatmap"], fontsize=10)
    return fig


def _plot_emotion(a: Analysis, plt: Any) -> Any:
    et = a.emotion_turns
    if et.empty:
        return None
    has_valence = et["valence"].notna().any()
    fig, axes = plt.subplots(1, 2 if has_valence else 1, figsize=(10 if has_valence else 5.5, 3.6))
    axes = list(axes) if has_valence else [axes]
    for v in a.variants:
        sub = et[et["variant"] == v].sort_values("turn")
        if sub.empty:
            continue
        axes[0].plot(sub["turn"] + 1, sub["strongest"], marker=".", label=v)
        if has_valence:
            axes[1].plot(sub["turn"] + 1, sub["valence"], marker=".", label=v)
    axes[0].set_ylabel("strongest emotion score (0-1)")
    axes[0].set_xlabel("customer message")
    for ax in axes:
        ax.xaxis.set_major_locator(_integer_ticks())
    axes[0].legend(fontsize=8, ncol=2)
    if has_valence:
        axes[1].set_ylabel("valence (VADER compound)")
        axes[1].set_xlabel("customer message")
        axes[1].axhline(0, color="#888888", lw=0.8)
    fig.suptitle(PLOTS["emotion_turns"], fontsize=10)
    return fig


# --------------------------------------------------------------------------- HTML
def _asset(name: str) -> str:
    return (resources.files("emotau.analysis") / "assets" / name).read_text(encoding="utf-8")


def _sha256(script: str) -> str:
    """CSP source for the one inline script: any other script or event handler is refused."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _finite(obj: Any) -> Any:
    """Model output may hold NaN or Infinity (Python's json reads them): null in the page."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_for_script(obj: Any) -> str:
    text = json.dumps(_finite(obj), ensure_ascii=False, default=str, allow_nan=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(a, b)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _md_inline(text: str) -> str:
    """Escape, then the two bits of Markdown the paragraphs use: `code` and **bold**."""

    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _html_table(t: Table) -> str:
    cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows
    )
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    a: Analysis, sections: Sequence[Section], plot_dir: Path, plots: Sequence[str]
) -> str:
    parts = []
    nav = [f'<a href="#{s.anchor}">{html.escape(s.title.split(":")[0])}</a>' for s in sections]
    nav += ['<a href="#plots">Plots</a>', '<a href="#browser">Conversations</a>']
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        for p in s.paragraphs:
            cls = ' class="warn"' if p.startswith("**Warning:**") else ""
            parts.append(f"<p{cls}>{_md_inline(p)}</p>")
        parts += [_html_table(t) for t in s.tables]
        parts.append("</section>")
    parts.append('<section id="plots" class="plots"><h2>Plots</h2>')
    for name in plots:
        data = base64.b64encode((plot_dir / f"{name}.png").read_bytes()).decode("ascii")
        alt = html.escape(PLOTS[name])
        parts.append(
            f'<figure><img id="plot-{name}" alt="{alt}" src="data:image/png;base64,{data}">'
        )
        parts.append(f"<figcaption>{alt}</figcaption></figure>")
    parts.append("</section>")
    sample = ""
    if len(a.conversations) < a.conversations_total:
        sample = (
            f" The browser holds {len(a.conversations)} of {a.conversations_total} episodes: "
            "every variant of a seeded sample of tasks (all episodes are in turns.parquet)."
        )
    parts.append(
        '<section id="browser"><h2>Conversations</h2>'
        "<p>Filter the episodes, click one to read it, and pick a variant on the right to see "
        f"the same task and trial under it.{html.escape(sample)}</p>"
        '<div class="filters"><label>variant <select id="f-variant"><option value="">all'
        '</option></select></label><label>task <select id="f-task"><option value="">all'
        '</option></select></label><label>outcome <select id="f-outcome">'
        '<option value="">all</option><option value="success">success</option>'
        '<option value="failure">failure</option><option value="not scored">not scored'
        '</option></select></label><span id="episode-count"></span></div>'
        '<table id="episode-list"><thead><tr><th>task</th><th>variant</th><th>trial</th>'
        "<th>outcome</th><th>turns</th><th>termination</th></tr></thead><tbody></tbody></table>"
        '<div class="cols"><div class="col" id="conv-left"></div><div class="col">'
        '<label>side by side with <select id="compare-variant"><option value="">none'
        '</option></select></label><div id="conv-right"></div></div></div></section>'
    )
    payload = {"variants": a.variants, "reference": a.reference, "episodes": a.conversations}
    script = _asset("report.js")
    title = html.escape(f"emotau report: {a.meta['run']}")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"img-src data:; style-src 'unsafe-inline'; script-src '{_sha256(script)}'\">"
        f"<title>{title}</title><style>{_asset('report.css')}</style></head><body>"
        f"<header><h1>{title}</h1><nav>{''.join(nav)}</nav></header><main>"
        + "".join(parts)
        + f'</main><script type="application/json" id="episodes-data">{_json_for_script(payload)}'
        f"</script><script>{script}</script></body></html>"
    )


# --------------------------------------------------------------------------- the directory
def write_report(a: Analysis, out: Path, *, turns_written: bool = False) -> Path:
    """Write ``out``: summary.md, report.html, plots/, tables/ (CSV), Parquet files.

    Every file is written in a staging folder beside ``out`` first and moved into place only
    when all of them are written: a failure (a full disk, say) leaves the previous report as
    it was, never a partial one."""
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write_report(a, stage, turns_written=turns_written)
        for stale in [*(out / "tables").glob("*.csv"), *(out / "plots").glob("*.png")]:
            stale.unlink()  # an earlier report's tables and plots: only this one's remain
        for f in sorted(stage.rglob("*")):
            if f.is_file():
                target = out / f.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _write_report(a: Analysis, out: Path, *, turns_written: bool) -> Path:
    from emotau.analysis.tables import write_parquet

    files = []
    try:
        import pyarrow  # noqa: F401

        write_parquet(a.episodes, out / "episodes.parquet")
        write_parquet(a.messages, out / "emotion.parquet")
        files += ["episodes.parquet", "emotion.parquet"]
        if turns_written:
            files.append("turns.parquet")
    except ImportError:
        a.warnings.append(
            "Parquet files not written: pyarrow is missing (pip install 'emotau[analysis]')"
        )
    tables = out / "tables"
    tables.mkdir(exist_ok=True)
    named = {
        "summary": a.summary,
        "comparison": a.comparison,
        "failures": a.taxonomy,
        "conversation": a.conversation,
        "behaviour": a.behaviour,
        "completeness": a.completeness,
        "infra_errors": a.infra,
        "task_matrix": a.task_matrix,
        "emotion_turns": a.emotion_turns,
        "usage": usage_frame(a),
    }
    named |= {f"manipulation_{k}": v for k, v in a.manipulation.items() if k != "episodes"}
    named |= {
        f"manipulation_judge_{k}": v for k, v in a.manipulation_judge.items() if k != "episodes"
    }
    for name, df in named.items():
        if isinstance(df, pd.DataFrame) and not df.empty:
            df.to_csv(
                tables / f"{name}.csv",
                index=name in ("task_matrix",)
                or name.startswith(("manipulation_confusion", "manipulation_judge_confusion")),
            )
    (out / "design.json").write_text(json.dumps(_jsonable(a.design), indent=2) + "\n")
    plots = write_plots(a, out / "plots")
    sections = build_sections(a)
    files += ["report.html", "summary.md", "design.json", "tables/", "plots/"]
    sections[0].paragraphs.append(
        "Generated " + time.strftime("%Y-%m-%d %H:%M") + "; files: " + ", ".join(files) + "."
    )
    (out / "summary.md").write_text(render_markdown(a, sections, plots), encoding="utf-8")
    page = render_html(a, sections, out / "plots", plots)
    (out / "report.html").write_text(page, encoding="utf-8")
    return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if missing(v) and not isinstance(v, str) else v) for k, v in d.items()}
