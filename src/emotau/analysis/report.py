"""The analysis of one run: every table the report shows, computed in one streaming pass.

:func:`analyze` reads a run directory shard by shard, ``CHUNK`` episodes at a time, and keeps
only compact per-episode and per-message numbers (about 1 KB per episode). Trajectories are
never all in memory: turn rows go straight to ``turns.parquet`` and the conversation browser
keeps a bounded sample. :meth:`Analysis.write` renders the report directory
(:mod:`emotau.analysis.render`).

With ``emotion_judge=True`` the customer messages are also labelled by the run's judge model
(the ``judge`` labeller of :mod:`emotau.analysis.labellers`; ``labeller=NAME`` picks another),
and the manipulation check is repeated on those labels. Only that mode keeps the messages'
text until the end of the pass (about the size of the customer's side of every conversation;
identical texts are stored once).
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import warnings as pywarnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emotau.analysis._analysis import Analysis
from emotau.analysis._manipulation import manipulation_check
from emotau.analysis._messages import score_episodes
from emotau.analysis.conversation import (
    behaviour_vs_success,
    conversation_summary,
    failure_taxonomy,
)
from emotau.analysis.labellers import LABELLERS, EmotionLabeller, label_messages
from emotau.analysis.render import write_report
from emotau.analysis.stats import (
    compare_variants,
    estimate_icc,
    minimum_detectable_effect,
    summarize_variants,
)
from emotau.analysis.tables import TURN_COLUMNS, build_tables
from emotau.core import InfraError, Status, UserError, is_finished
from emotau.emotion import SCORE_COLUMNS

CHUNK = 500  # episodes whose full records are held at once
MAX_CONVERSATIONS = 600  # episodes embedded in the HTML conversation browser
MAX_TURN_INDEX = 20  # emotion-over-turns curve: customer messages 0..20
MIN_ICC_TASKS = 20  # tasks the reference arm needs before its measured ICC is used


def analyze(
    run: Any,
    out: str | Path | None = None,
    *,
    reference: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    valence: bool | None = None,
    max_conversations: int = MAX_CONVERSATIONS,
    progress: Callable[[int], None] | None = None,
    emotion_judge: bool = False,
    judge_base_url: str | None = None,
    api_key_env: str | None = None,
    labeller: str | None = None,
) -> Analysis:
    """Analyse a run (a path or :class:`emotau.Run`); with ``out``, also write the report.

    ``reference`` is the arm the others are compared with: by default ``control`` when the
    run has it (else no deltas, with a warning); a named arm that does not exist is a
    :class:`UserError`. ``valence=False`` skips VADER (faster on large runs of LLM text).

    ``emotion_judge=True`` also labels every distinct customer message with the run's judge
    model, built from the run's frozen spec as ``emotau resume`` builds it (so what
    ``resume`` needs must be there: the domain, variant files, the roles' API keys);
    ``judge_base_url`` and ``api_key_env`` move the judge to another server, as ``resume``'s
    flags do. The judge failing (unreachable, unusable answers after the retries) is a
    :class:`UserError`, and no report is written. ``labeller`` names another labeller of the
    entry-point group ``emotau.labellers`` (``emotion_judge=True`` is ``labeller="judge"``).
    """
    from emotau.results import Run, usage_totals
    from emotau.runner import outside_event_loop

    run = run if isinstance(run, Run) else Run.open(run)
    variants = run.variants
    ref = pick_reference(reference, variants)
    second = _second_labeller(emotion_judge, labeller)
    uses_judge = second is not None and second.uses_judge
    if not uses_judge and (judge_base_url is not None or api_key_env is not None):
        raise UserError("--judge-base-url and --api-key-env are options of --emotion-judge")
    judge_exp = _judge_experiment(run, judge_base_url, api_key_env) if uses_judge else None
    if out is not None:
        _check_out(Path(out), run.path)
    created = _missing_dirs(Path(out)) if out is not None else []
    writer = _TurnWriter(Path(out) / "turns.parquet") if out is not None else None
    ident = run.frozen["identity"]
    keep = _conversation_picker(ident, variants, max_conversations, seed)
    ep_parts: list[pd.DataFrame] = []
    msg_parts: list[pd.DataFrame] = []
    conversations: list[dict[str, Any]] = []
    infra_rows: list[dict[str, Any]] = []
    done = 0
    finished = False
    judged: pd.DataFrame | None = None
    judge_info: dict[str, Any] = {}
    infra_error = Status.INFRA_ERROR.value
    try:
        for chunk in _chunks(run.store.iter_merged(), CHUNK):
            ep, turns = build_tables(chunk)
            ep_parts.append(_compact(ep))
            if writer is not None:
                writer.write(turns)
            del turns
            ran = [r for r in chunk if is_finished(r)]  # infra errors: no say
            if ran:
                msgs = score_episodes(ran, valence=valence)
                if second is None:
                    msgs = msgs.drop(columns="text")
                msg_parts.append(_compact(msgs))
            conversations.extend(_conversation(r) for r in chunk if keep(r))
            infra_rows.extend(_infra_row(r) for r in chunk if r.get("status") == infra_error)
            done += len(chunk)
            if progress is not None:
                progress(done)
        if not ep_parts:
            raise UserError(f"run {str(run.path)!r} has no episodes yet: nothing to analyse")
        episodes = pd.concat(ep_parts, ignore_index=True)
        del ep_parts
        messages = (
            pd.concat(msg_parts, ignore_index=True)
            if msg_parts
            else _no_messages(second is not None)
        )
        del msg_parts
        if second is not None:  # before the turn file is kept: a failure leaves no report
            judged, judge_info = outside_event_loop(
                lambda: asyncio.run(_second_labels(second, judge_exp, messages))
            )
            judged = judged.drop(columns="text")
            messages = messages.drop(columns="text")
            messages["judge_emotion"] = judged["judge_emotion"].to_numpy()
            messages["judge_intensity"] = judged["judge_intensity"].to_numpy()
        finished = True
    finally:
        if writer is not None:
            writer.close(keep=finished)
        if not finished:
            _remove_empty(created)
    conversations.sort(key=lambda c: (c["task_id"], c["trial"], _order(variants, c["variant"])))

    infra = pd.DataFrame(infra_rows, columns=["task_id", "variant", "trial", "error"])
    with pywarnings.catch_warnings(record=True) as caught:  # emotau's own: into the report
        pywarnings.simplefilter("always")
        result = _compute(run, variants, ref, reference, episodes, messages, infra, n_boot, seed)
        if judged is not None:
            _add_judge(result, judged, judge_info, n_boot, seed)
    for w in caught:
        if w.category is UserWarning and str(w.message) not in result.warnings:
            result.warnings.append(str(w.message))  # e.g. an emotion the scorer does not know
        elif w.category is not UserWarning:
            pywarnings.warn(w.message, w.category, stacklevel=2)  # a library's: as it was
    result.conversations = conversations
    result.conversations_total = len(episodes)
    result.usage = usage_totals(run.store.iter_records(light=True))
    if len(conversations) < len(episodes):
        result.warnings.append(
            f"the conversation browser holds {len(conversations)} of {len(episodes)} episodes "
            "(every variant of a sample of tasks); all of them are in turns.parquet"
        )
    if out is not None:
        write_report(result, Path(out), turns_written=writer is not None and writer.ok)
    return result


# --------------------------------------------------------------------------- computing
def _compute(
    run: Any,
    variants: list[str],
    ref: str | None,
    asked: str | None,
    episodes: pd.DataFrame,
    messages: pd.DataFrame,
    infra: pd.DataFrame,
    n_boot: int,
    seed: int,
) -> Analysis:
    ident = run.frozen["identity"]
    warnings: list[str] = []
    order = [v for v in variants if v in set(episodes["variant"])]
    order += sorted(set(episodes["variant"]) - set(order))
    scored = episodes[(episodes["status"] == Status.COMPLETED) & episodes["scored"]]
    if ref is None and asked is None:
        warnings.append(
            "the run has no 'control' arm: no differences against control are reported "
            "(name another arm with --reference)"
        )
    if messages["valence"].isna().all() and not messages.empty:
        warnings.append(
            "no valence scores: VADER is off (--no-valence) or not installed "
            "(pip install 'emotau[analysis]')"
        )
    if ref is not None and not (scored["variant"] == ref).any():
        warnings.append(f"the reference arm {ref!r} has no scored episodes: no deltas")
        ref = None
    completeness = _completeness(episodes, variants, ident)
    missing = int(completeness["missing"].sum())
    if missing:
        short = completeness[completeness["missing"] > 0]
        warnings.append(
            f"incomplete run: {missing} of {int(completeness['expected'].sum())} episodes are "
            "missing or ended in an infrastructure error ("
            + ", ".join(f"{r.variant} {r.missing}" for r in short.itertuples())
            + "); `emotau resume` finishes it. The numbers below use what is there."
        )
    if len(infra):
        warnings.append(
            f"{len(infra)} episode(s) ended in an infrastructure error: listed, never scored"
        )
    trials = int(ident.get("num_trials") or 1)
    if trials == 1:
        warnings.append(
            "one trial per task: pass^k only for k=1, and the minimum detectable effect "
            "assumes an intra-task correlation (it cannot be measured with one trial)"
        )
    if scored.empty:
        warnings.append("no scored episodes: no success statistics")
        summary = comparison = pd.DataFrame()
    else:
        tbl = scored[["task_id", "variant", "trial", "success", "reward"]]
        if (missing_reward := int(tbl["reward"].isna().sum())) > 0:
            warnings.append(f"{missing_reward} scored episode(s) have no reward: counted as 0")
            tbl = tbl.assign(reward=tbl["reward"].fillna(0.0))
        summary = summarize_variants(tbl, n_boot=n_boot, seed=seed)
        summary = _ordered(summary, order)
        comparison = (
            _ordered(compare_variants(tbl, reference=ref, n_boot=n_boot, seed=seed), order)
            if ref is not None and tbl["variant"].nunique() > 1
            else pd.DataFrame()
        )
    design = _design(scored, ident, ref, order)
    manip = _manipulation(messages, ref, order, n_boot, seed, warnings)
    result = Analysis(
        run=str(run.path),
        meta=_meta(run),
        variants=order,
        reference=ref,
        episodes=episodes,
        messages=messages,
        summary=summary,
        comparison=comparison,
        design=design,
        manipulation=manip,
        taxonomy=failure_taxonomy(episodes),
        conversation=conversation_summary(episodes),
        behaviour=behaviour_vs_success(episodes),
        infra=infra,
        completeness=completeness,
        task_matrix=_task_matrix(scored, order),
        emotion_turns=_emotion_turns(messages, order),
        conversations=[],
        conversations_total=0,
        warnings=warnings,
    )
    if result.synthetic:
        warnings.insert(
            0,
            "SYNTHETIC: scripted models produced these episodes; the numbers test the "
            "pipeline, not an agent",
        )
    return result


def pick_reference(
    asked: str | None, arms: Sequence[str], what: str = "an arm of this run (arms"
) -> str | None:
    """The named arm (a UserError if it is not in ``arms``), else control when present."""
    if asked is None:
        return "control" if "control" in arms else None
    if asked not in arms:
        raise UserError(f"--reference {asked!r} is not {what}: {', '.join(arms)})")
    return asked


def _ordered(df: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    if df.empty:
        return df
    rank = {v: i for i, v in enumerate(order)}
    return df.sort_values("variant", key=lambda s: s.map(rank), kind="stable").reset_index(
        drop=True
    )


def _order(variants: Sequence[str], v: str) -> int:
    return variants.index(v) if v in variants else len(variants)


def _meta(run: Any) -> dict[str, Any]:
    ident = run.frozen["identity"]
    models = {}
    for role in ("agent", "user", "judge"):
        cfg = ident.get(role)
        if isinstance(cfg, Mapping):
            models[role] = cfg.get("model")
    return {
        "run": str(run.path),
        "spec_hash": run.frozen.get("hash"),
        "domain": ident.get("domain"),
        "agent_strategy": ident.get("agent_strategy"),
        "user_strategy": ident.get("user_strategy"),
        "models": models,
        "tasks": len(ident.get("task_ids") or ()),
        "trials": int(ident.get("num_trials") or 1),
        "variants": list(run.variants),
        "emotau_version": run.frozen.get("emotau_version"),
    }


def _infra_row(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("task_id", "variant", "trial")} | {
        "error": _clip(str(rec.get("error") or "unknown error"), 300)
    }


def _completeness(
    episodes: pd.DataFrame, variants: Sequence[str], ident: Mapping[str, Any]
) -> pd.DataFrame:
    expected = len(ident.get("task_ids") or ()) * int(ident.get("num_trials") or 1)
    rows = []
    for v in variants:
        sub = episodes[episodes["variant"] == v]
        n_infra = int((sub["status"] == Status.INFRA_ERROR).sum())
        finished = len(sub) - n_infra
        scored = int(((sub["status"] == Status.COMPLETED) & sub["scored"]).sum())
        rows.append(
            {
                "variant": v,
                "expected": expected,
                "finished": finished,
                "scored": scored,
                "simulator_errors": finished - scored,
                "infra_errors": n_infra,
                "missing": max(0, expected - finished),
            }
        )
    return pd.DataFrame(rows)


def _design(
    scored: pd.DataFrame, ident: Mapping[str, Any], ref: str | None, order: Sequence[str]
) -> dict[str, Any]:
    tasks = len(ident.get("task_ids") or ()) or int(scored["task_id"].nunique())
    trials = int(ident.get("num_trials") or 1)
    comparisons = max(1, len(order) - 1)
    base_arm = scored[scored["variant"] == ref] if ref is not None else scored.iloc[:0]
    baseline = float(base_arm["success"].mean()) if len(base_arm) else math.nan
    icc = math.nan
    measured_tasks = int(base_arm["task_id"].nunique()) if len(base_arm) else 0
    if trials > 1 and measured_tasks >= MIN_ICC_TASKS:  # fewer tasks: too noisy to trust
        icc = estimate_icc(base_arm[["task_id", "success"]])
    note = []
    b = baseline
    if not 0 < b < 1:
        note.append(
            "baseline taken as 50% (the reference rate is "
            + ("unknown" if math.isnan(b) else f"{b:.0%}")
            + ")"
        )
        b = 0.5
    icc_used = icc if not math.isnan(icc) else None
    if icc_used is None:
        note.append(
            "intra-task correlation assumed 0.3 (it is measured only with 2+ trials and "
            f"{MIN_ICC_TASKS}+ tasks in the reference arm)"
        )
    mde = minimum_detectable_effect(tasks, trials, b, icc=icc_used)
    mde_holm = minimum_detectable_effect(tasks, trials, b, icc=icc_used, alpha=0.05 / comparisons)
    return {
        "tasks": tasks,
        "trials": trials,
        "arms": len(order),
        "baseline": baseline,
        "icc": icc,
        "mde": mde,
        "mde_holm": mde_holm,
        "comparisons": comparisons,
        "note": "; ".join(note),
    }


def _manipulation(
    messages: pd.DataFrame,
    ref: str | None,
    order: Sequence[str],
    n_boot: int,
    seed: int,
    warnings: list[str],
    label: str = "manipulation check",
) -> dict[str, pd.DataFrame]:
    if messages.empty:
        return {}
    arms = list(dict.fromkeys(messages["variant"]))
    check = manipulation_check(
        messages, ref if ref is not None else arms[0], n_boot=n_boot, seed=seed
    )
    check["stability"] = _ordered(check["stability"], order)
    if ref is None:
        check["expression"] = pd.DataFrame()
    else:
        check["expression"] = _ordered(check["expression"], order)
        flagged = check["expression"]
        flagged = flagged[flagged["flag"] & ~flagged["placebo"]]
        for v in dict.fromkeys(flagged["variant"]):
            warnings.append(
                f"{label}: the customer in {v!r} did not clearly express its "
                f"emotion more than in {ref!r}; its numbers may not measure what they claim"
            )
    return check


# --------------------------------------------------------------------------- LLM judge
def _judge_experiment(run: Any, base_url: str | None, api_key_env: str | None) -> Any:
    """The run's experiment rebuilt from its frozen spec, with the judge's endpoint moved as
    ``emotau resume --judge-base-url/--api-key-env`` moves it (validates the clients)."""
    from emotau.models import provider_for
    from emotau.runner import prepare, spec_of_run
    from emotau.spec import build_spec

    spec = build_spec(
        spec_of_run(run.path).model_dump(mode="json"),
        {"judge.base_url": base_url, "judge.api_key_env": api_key_env},
    )
    if provider_for(spec.judge) == "scripted" and (base_url or api_key_env):
        raise UserError(
            "the run's judge is the in-process scripted model (judge model 'scripted'), which "
            "has no endpoint: --judge-base-url and --api-key-env do not apply"
        )
    return prepare(spec)


def _second_labeller(emotion_judge: bool, name: str | None) -> EmotionLabeller | None:
    """The labeller that labels the messages next to the lexicon, if any."""
    if emotion_judge and name not in (None, "judge"):
        raise UserError(f"--emotion-judge is --labeller judge, not also --labeller {name}")
    if emotion_judge:
        name = "judge"
    if name is None:
        return None
    cls = LABELLERS.get(name)
    try:
        return cls()
    except Exception as exc:
        raise UserError(f"emotion labeller {name!r} could not be built: {exc}") from None


async def _second_labels(
    labeller: EmotionLabeller, exp: Any, messages: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The labeller's labels of the messages, and what the report says about it."""
    distinct = len({t for t in messages["text"] if isinstance(t, str) and t.strip()})
    info: dict[str, Any] = {
        "labeller": labeller.name,
        "title": labeller.title or labeller.name,
        "distinct_messages": distinct,
        "synthetic": False,
    }
    if exp is not None:
        labelled, judge = await _judge_labels(labeller, exp, messages)
        return labelled, {**info, **judge}
    try:
        labelled = await label_messages(labeller, messages)
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise UserError(
            f"--labeller {labeller.name}: {type(exc).__name__}: {text} (no report written)"
        ) from None
    return labelled, info


async def _judge_labels(
    labeller: EmotionLabeller, exp: Any, messages: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The labels with the run's judge client; its failures become one UserError."""
    from emotau.models import EpisodeClient, provider_for

    cfg = exp.spec.judge
    scripted = provider_for(cfg) == "scripted"
    # as the HTTP client names it in its errors (see OpenAIClient.complete)
    where = f"judge model {cfg.model!r}" + (
        " (in process)" if scripted else f" at {cfg.base_url or 'OpenAI'}"
    )
    exp.client_settings().rebind()  # the endpoint limits belong to this event loop
    inner = exp.make_client("judge", cfg)
    client = EpisodeClient(inner, None)  # meters calls and tokens; retries as a run's calls
    flag = "--emotion-judge" if labeller.name == "judge" else f"--labeller {labeller.name}"
    try:
        labelled = await label_messages(
            labeller, messages, judge=client,
            concurrency=cfg.max_concurrency or exp.spec.max_concurrency,
        )  # fmt: skip
    except InfraError as exc:
        detail = str(exc) if where in str(exc) else f"{where}: {exc}"
        raise UserError(f"{flag}: " + " ".join(detail.split()) + " (no report written)") from None
    finally:
        await inner.aclose()
    info = {
        "model": cfg.model,
        "endpoint": None if scripted else (cfg.base_url or "OpenAI"),
        "synthetic": bool(client.synthetic),
        **client.usage(),
    }
    return labelled, info


def _add_judge(
    result: Analysis, judged: pd.DataFrame, info: dict[str, Any], n_boot: int, seed: int
) -> None:
    """The manipulation check on the second labeller's labels, its agreement with the lexicon."""
    label = f"manipulation check ({info.get('title', 'LLM judge')})"
    warnings = result.warnings
    if info["synthetic"]:
        warnings.append(
            f"{label}: SYNTHETIC labels: the scripted judge labels with emotau's own lexicon, "
            "so it agrees with the lexicon by construction (a pipeline test, not a second "
            "opinion)"
        )
    check = _manipulation(judged, result.reference, result.variants, n_boot, seed, warnings, label)
    check["agreement"] = judge_agreement(result.messages, result.variants)
    result.manipulation_judge = check
    result.judge = info


def judge_agreement(messages: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """Judge vs lexicon per customer message (rows with a judge label), over ``all`` and per
    arm (in ``order``, then the others): ``variant, messages, agree`` (messages whose
    ``detected`` equals ``judge_emotion``), ``agreement`` (agree / messages) and ``kappa``
    (Cohen's, over the five labels: ``(p_o - p_e) / (1 - p_e)``, ``p_o`` = agreement,
    ``p_e`` = the sum over labels of the product of the two labellers' shares of that label;
    NaN when ``p_e`` is 1: both gave one and the same label throughout)."""
    df = messages[messages["judge_emotion"].notna()]
    arms = [v for v in order if v in set(df["variant"])]
    arms += [v for v in dict.fromkeys(df["variant"]) if v not in arms]
    rows = [_agreement_row("all", df["detected"], df["judge_emotion"])]
    for v in arms:
        g = df[df["variant"] == v]
        rows.append(_agreement_row(str(v), g["detected"], g["judge_emotion"]))
    return pd.DataFrame(rows, columns=["variant", "messages", "agree", "agreement", "kappa"])


def _agreement_row(variant: str, lexicon: pd.Series, judge: pd.Series) -> dict[str, Any]:
    n = len(lexicon)
    a = lexicon.astype(str).to_numpy()
    b = judge.astype(str).to_numpy()
    agree = int((a == b).sum())
    kappa = math.nan
    if n:
        p_o = agree / n
        share_a = pd.Series(a).value_counts(normalize=True)
        share_b = pd.Series(b).value_counts(normalize=True)
        p_e = float((share_a * share_b.reindex(share_a.index, fill_value=0.0)).sum())
        if not np.isclose(p_e, 1.0):
            kappa = (p_o - p_e) / (1 - p_e)
    return {
        "variant": variant,
        "messages": n,
        "agree": agree,
        "agreement": agree / n if n else math.nan,
        "kappa": kappa,
    }


def _task_matrix(scored: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    if scored.empty:
        return pd.DataFrame()
    m = scored.groupby(["task_id", "variant"])["success"].mean().unstack("variant")
    return m[[v for v in order if v in m.columns]]


def _emotion_turns(messages: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    df = messages[messages["turn_index"].notna()]
    if df.empty:
        return pd.DataFrame()
    df = df[df["turn_index"] <= MAX_TURN_INDEX]
    strongest = df[list(SCORE_COLUMNS)].max(axis=1)
    cols = {"strongest": strongest, "valence": df["valence"]}
    frame = pd.DataFrame({"variant": df["variant"], "turn": df["turn_index"].astype(int), **cols})
    g = frame.groupby(["variant", "turn"])
    out = g.agg(
        n=("strongest", "size"), strongest=("strongest", "mean"), valence=("valence", "mean")
    ).reset_index()
    return _ordered(out, order)


# --------------------------------------------------------------------------- streaming
def _chunks(it: Iterator[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(it, n)):
        yield chunk


def _no_messages(with_text: bool) -> pd.DataFrame:
    """The message table of a run in which no episode ran (every one an infra error)."""
    cols = ["task_id", "variant", "trial", "turn_index", "n_user_turns", "intended"]
    cols += ["intended_intensity", *SCORE_COLUMNS, "valence", "detected"]
    cols += ["text"] if with_text else []
    return pd.DataFrame(columns=cols)


def _compact(df: pd.DataFrame) -> pd.DataFrame:
    """Share one string object per distinct value (labels repeat on every row): memory per
    row becomes a pointer instead of a fresh string from each record's JSON."""
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = [sys.intern(x) if isinstance(x, str) else x for x in df[col]]
    return df


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def _remove_empty(dirs: Sequence[Path]) -> None:
    """Remove the directories an analysis created when it failed (empty ones only)."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


def _check_out(out: Path, run_path: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} exists and is not a directory")
    if out.resolve() == run_path.resolve():
        raise UserError("--out must not be the run directory itself (use a subdirectory)")


class _TurnWriter:
    """Appends turn-table chunks to one Parquet file (no-op without pyarrow)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ok = True
        self._writer: Any = None
        try:
            import pyarrow as pa
        except ImportError:
            self.ok = False
            return
        types = {
            "int64": pa.int64(),
            "Int64": pa.int64(),
            "float64": pa.float64(),
            "str": pa.string(),
            "bool": pa.bool_(),
            "boolean": pa.bool_(),
        }
        self._schema = pa.schema([(c, types[t]) for c, t in TURN_COLUMNS.items()])

    def write(self, df: pd.DataFrame) -> None:
        if not self.ok:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        self._writer.write_table(table)

    @property
    def _tmp(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def close(self, keep: bool) -> None:
        """Finish the file (``keep``) or remove what was written (an error stopped us)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            if keep:
                self._tmp.replace(self.path)
            else:
                self._tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- browser sample
def _conversation_picker(
    ident: Mapping[str, Any], variants: Sequence[str], budget: int, seed: int
) -> Callable[[Mapping[str, Any]], bool]:
    """Which episodes the HTML browser embeds: all when they fit in ``budget``, else every
    variant of a seeded sample of tasks at the first trials (so side by side always works)."""
    tasks = list(ident.get("task_ids") or ())
    trials = int(ident.get("num_trials") or 1)
    per_task = max(1, len(variants)) * trials
    if len(tasks) * per_task <= budget:
        return lambda rec: True
    use_trials = min(trials, 2) if budget >= 2 * len(variants) else 1
    n_tasks = budget // max(1, len(variants) * use_trials)
    if n_tasks == 0:  # not even one task under every variant
        return lambda rec: False
    rng = random.Random(seed)
    chosen = set(rng.sample(tasks, min(n_tasks, len(tasks))))
    return lambda rec: rec.get("task_id") in chosen and int(rec.get("trial", 0)) < use_trials


def _conversation(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a record the browser shows (text is escaped when rendered)."""
    turns = []
    for t in rec.get("turns") or ():
        if not isinstance(t, Mapping):
            continue
        calls = [
            {
                "name": str(c.get("name")),
                "arguments": c.get("arguments"),
                "result": _clip(c.get("result")),
                "error": bool(c.get("error")),
            }
            for c in t.get("tool_calls") or ()
            if isinstance(c, Mapping)
        ]
        turns.append({"role": t.get("role"), "content": t.get("content"), "tool_calls": calls})
    return {
        "task_id": rec.get("task_id"),
        "variant": rec.get("variant"),
        "trial": rec.get("trial"),
        "status": rec.get("status"),
        "success": bool(rec.get("success")) if rec.get("scored") else None,
        "reward": rec.get("reward"),
        "termination": rec.get("termination"),
        "num_turns": rec.get("num_turns"),
        "error": rec.get("error"),
        "turns": turns,
    }


def _clip(value: Any, limit: int = 2000) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"... [{len(value) - limit} more characters]"
    return value


__all__ = ["CHUNK", "MAX_CONVERSATIONS", "Analysis", "analyze", "judge_agreement"]
