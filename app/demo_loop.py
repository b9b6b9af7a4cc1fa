"""The whole audit loop run on the demo company (``auditloop demo loop``), start to finish, judged by
the loop's yardstick (facts, citations, retrieval; ``training/evaluation.py``) against a control and
two no-model baselines, with two corrupted dataset versions the gate has to refuse.

Steps, each in its own committed transaction (the worker reads the database through its own sessions):

1. seed a fresh demo database (``seed_demo``) and build or reuse the base model (pretrained on this
   seed's own corpus);
2. route the simulated ratings into review items (as the lead);
3. the weak department's SME (``sme.hr``) decides that department's items through the review service:
   a wrong answer is confirmed with the root cause of its simulated error and the auditor's suggested
   correction, a correct answer flagged for pulling in another department's documents is confirmed
   as department bias, any other correct answer is dismissed;
4. fixes are proposed, the safe kinds auto-applied and the rest approved by the lead: a new dataset
   version; the retraining triggers are evaluated (or, if none fires, the lead queues the job);
5. the gate items are fixed: gold items whose question and reference answer leaked into no training
   example, SME correction or applied fix; the champion (``v0``, the base model) is evaluated on them
   and the evaluation kept on its row; the worker then runs the job in-process: LoRA training,
   evaluation, gate, promotion;
6. the control: the same recipe, seed and number of steps on the dataset version from before any SME
   correction, judged on the same items, so that the correction effect (candidate − control) can be
   told apart from what any retraining gives; and the two extractive baselines (``training/baselines.py``);
7. two corrupted copies of the trained dataset version — answers shuffled between questions, and
   every answer's key value replaced by another valid value of its kind (the template and citation
   kept) — each trained on with the same recipe; the gate must refuse both while the champion stays.

Every judged item is stored (``evaluation_items``), per system and evaluation signature; the report's
figures are means of those rows with percentile bootstrap intervals over items.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit import schema
from audit.answers.models import Answer
from audit.auditlog import service as auditlog
from audit.db import make_session_factory
from audit.demo.corpus import DEFAULT_SEED, DemoCorpus, build_corpus
from audit.demo.seed import DEFAULT_DAYS, SeedReport, insert_ratings, seed_demo, write_credentials
from audit.demo.traffic import DemoAnswer, DemoRating, demo_questions, judge_real_answer, rate, simulate_traffic
from audit.demo.vocabulary import DEPARTMENTS as VOCABULARIES
from audit.demo.vocabulary import WEAK_DEPARTMENT
from audit.errors import AuditloopError, ConflictError, NotFoundError
from audit.fixes import repository as fixes_repo
from audit.fixes import service as fixes_service
from audit.knowledge import datasets
from audit.knowledge.datasets import ExampleRecord
from audit.knowledge.hashing import example_content_hash, normalise_text
from audit.knowledge.models import DatasetVersion, Example
from audit.modelops import repository as modelops_repo
from audit.modelops.models import ModelVersion
from audit.org import repository as org_repo
from audit.org.models import User
from audit.review import routing
from audit.review import service as review_service
from audit.settings import BUILTIN_TINY, Settings
from audit.triggers import service as triggers_service
from training import gate as gate_module
from training import jobs
from training.baselines import BASELINES, baseline_answer
from training.config import load_config
from training.evaluation import (
    HEADLINE_METRICS,
    EvaluationSummary,
    Interval,
    compare,
    item_rows,
    restrict,
    summarize,
)
from training.recipes import evaluate as evaluate_recipe
from training.worker import JobResult, Worker, WorkerOptions

Progress = Callable[[str], None]
T = TypeVar("T")

# The demo history ends on a fixed day, so the same seed gives the same company, the same review
# queue and (training is seeded) the same numbers on every run.
DEMO_TODAY = dt.date(2026, 3, 2)
LEAD = "lead"
METRICS = ("rougeL", "f1")
CORRUPTION_KIND = "demo_corruption"
# The corruptions the gate must refuse: name -> what was done to the trained version's answers.
CORRUPTIONS = {
    "shuffled": "answers shuffled between questions",
    "wrong_values": "every answer's key value replaced by another valid value of its kind (template and citation kept)",
}
# Systems the report compares, beside the model versions: each is stored under this name.
CONTROL_SYSTEM = "control:before-corrections"
EFFECT_METRICS = ("fact_accuracy", "wrong_value", "citation_accuracy", "retrieval_at_1", "rougeL")

# Recipe overrides for the loop's two training runs (the real job and the corrupted one), on top of
# training/configs/lora.yaml. None: the loop is judged on the recipe as shipped (one epoch, lr 2e-4,
# r 16), which fits the CPU budget; what it does and does not achieve on facts is in the README's loop
# section. `--set` adds to these (e.g. dataset.copy_drills=2).
LOOP_OVERRIDES: tuple[str, ...] = ()


# --------------------------------------------------------------------------- pure helpers


def shuffle_answers(
    questions: Sequence[str], answers: Sequence[str], *, seed: int, forbidden: Collection[str] = ()
) -> list[str]:
    """The answers permuted between the questions so that every question gets an answer other than
    its own (a derangement by text) and every new (question, answer) pair is one the data did not
    hold, none of the ``forbidden`` content hashes (pairs stored elsewhere) and no other position's
    (examples are unique by that pair).

    Sattolo's algorithm draws a single cycle (no index keeps its own answer); a position whose answer
    is still unacceptable (two examples sharing a text) swaps with random positions until both sides
    are acceptable. Deterministic for ``seed``. Raises ValueError when no such permutation is found
    (fewer than two examples, or one answer text held by most of them).
    """
    n = len(answers)
    if len(questions) != n:
        raise ValueError(f"shuffle_answers: {len(questions)} questions but {n} answers")
    if n < 2:
        raise ValueError("shuffle_answers: need at least two examples to shuffle")
    rng = random.Random(seed)
    order = list(range(n))
    for i in range(n - 1, 0, -1):  # Sattolo: j < i, never j == i
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]

    own = [normalise_text(a) for a in answers]
    original = {example_content_hash(q, a) for q, a in zip(questions, answers, strict=True)} | set(forbidden)
    pair = functools.cache(lambda position, source: example_content_hash(questions[position], answers[source]))
    held = Counter(pair(p, order[p]) for p in range(n))

    def unacceptable(position: int) -> bool:
        source = order[position]
        new_pair = pair(position, source)
        return own[source] == own[position] or new_pair in original or held[new_pair] > 1

    def swap(a: int, b: int) -> None:
        held[pair(a, order[a])] -= 1
        held[pair(b, order[b])] -= 1
        order[a], order[b] = order[b], order[a]
        held[pair(a, order[a])] += 1
        held[pair(b, order[b])] += 1

    # a small local search: swap an unacceptable position with a random partner when that leaves fewer
    # unacceptable positions (or as many, now and then, to walk off a plateau)
    pending = [p for p in range(n) if unacceptable(p)]
    for _ in range(200 * n):
        pending = [p for p in pending if unacceptable(p)]
        if not pending:  # a swap can also clash with a third position's pair: look at all of them
            pending = [p for p in range(n) if unacceptable(p)]
            if not pending:
                return [answers[source] for source in order]
        position, other = rng.choice(pending), rng.randrange(n)
        if other == position:
            continue
        bad_before = 1 + unacceptable(other)
        swap(position, other)
        bad_after = unacceptable(position) + unacceptable(other)
        if bad_after < bad_before or (bad_after == bad_before and rng.random() < 0.3):
            pending += [p for p in (position, other) if unacceptable(p) and p not in pending]
        else:
            swap(position, other)
    raise ValueError("shuffle_answers: no permutation moves every answer to a new question")


def department_gap(by_department: Mapping[str, Mapping[str, float]], metric: str) -> float:
    """Largest minus smallest department mean of ``metric`` (0.0 for fewer than two departments)."""
    values = [scores[metric] for scores in by_department.values()]
    if len(values) < 2:
        return 0.0
    return max(values) - min(values)


def wrong_values_answers(
    answers: Sequence[str],
    departments: Sequence[str],
    *,
    kinds_by_department: Mapping[str, Sequence[Sequence[str]]],
    seed: int,
) -> list[str]:
    """Each answer with its key value replaced by another valid value of the same kind: the
    realistic failure (the right template and citation, a wrong fact). ``kinds_by_department`` holds
    the value sets of each department's fact kinds (e.g. its retention periods); an answer's key
    value is its longest whole-word match among its department's values, else among the other
    departments' (an answer may quote another department's document). Deterministic for ``seed``.
    Raises ValueError for an answer that states no known value (the corruption would leave it right).
    """
    rng = random.Random(seed)
    compiled: dict[str, list[tuple[re.Pattern[str], str, Sequence[str]]]] = {}
    for department, kinds in kinds_by_department.items():
        pairs = sorted(((v, kind) for kind in kinds for v in kind), key=lambda pair: len(pair[0]), reverse=True)
        compiled[department] = [(re.compile(rf"(?<!\w){re.escape(v)}(?!\w)"), v, kind) for v, kind in pairs]
    corrupted = []
    for answer, department in zip(answers, departments, strict=True):
        # its own department's values first; then the others' (an SME's correction may quote another
        # department's document, e.g. an HR question answered from an Engineering manual)
        others = [p for name, patterns in compiled.items() if name != department for p in patterns]
        for pattern, value, kind in [*compiled.get(department, []), *others]:
            match = pattern.search(answer)
            if match is not None:
                other = rng.choice([v for v in kind if v != value])
                corrupted.append(answer[: match.start()] + other + answer[match.end() :])
                break
        else:
            raise ValueError(f"wrong_values_answers: no known {department} value in the answer {answer[:80]!r}")
    return corrupted


def demo_fact_kinds() -> dict[str, list[tuple[str, ...]]]:
    """The value sets of each demo department's fact kinds."""
    return {vocab.name: [tuple(kind.values) for kind in vocab.facts if len(kind.values) > 1] for vocab in VOCABULARIES}


# --------------------------------------------------------------------------- the report

# The systems every loop report compares, in order: JSON key -> what it is.
SYSTEMS = {
    "before": "the champion before the loop (v0)",
    "after": "the model the loop trained (its candidate)",
    "control": "the same recipe on the data from before any SME correction",
    "baseline_first_sentence": "the top retrieved document's first sentence (no model)",
    "baseline_best_sentence": "the top retrieved document's best-matching sentence and its citation (no model)",
}


@dataclass
class LoopReport:
    """What the loop found. ``as_json`` is the command's --json output, key for key.

    ``systems[name][department][metric]`` is an :class:`Interval` (mean over the gate items with its
    bootstrap interval), ``effects[department][metric]`` the correction effect (candidate − control,
    paired bootstrap). ``departments`` keeps the older ROUGE-L/F1 before-and-after view.
    """

    weak_department: str
    departments: dict[str, dict[str, float]]
    gap_before: float
    gap_after: float
    promoted: bool
    corrupted_refused: bool
    systems: dict[str, dict[str, dict[str, Interval]]] = field(default_factory=dict)
    effects: dict[str, dict[str, Interval]] = field(default_factory=dict)
    gate_items: int = 0
    gate_items_excluded_as_leaked: int = 0
    wrong_values_refused: bool = False
    seeds: list[int] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    # with --training-seeds > 1: the candidate and the control retrained with each recipe seed
    training_seeds: TrainingSeeds | None = None

    def as_json(self) -> dict[str, Any]:
        departments: dict[str, dict[str, Any]] = {}
        for name, row in self.departments.items():
            entry: dict[str, Any] = dict(row)
            for system, by_department in self.systems.items():
                figures = by_department.get(name, {})
                entry[system] = {m: figures[m].estimate for m in HEADLINE_METRICS if m in figures}
                entry[f"{system}_ci"] = {
                    m: [figures[m].ci_low, figures[m].ci_high] for m in HEADLINE_METRICS if m in figures
                }
            entry["correction_effect"] = {m: i.to_dict() for m, i in self.effects.get(name, {}).items()}
            departments[name] = entry
        return {
            "weak_department": self.weak_department,
            "departments": departments,
            "gap_before": self.gap_before,
            "gap_after": self.gap_after,
            "promoted": self.promoted,
            "corrupted_refused": self.corrupted_refused,
            "metrics": list(HEADLINE_METRICS),
            "gate_items": self.gate_items,
            "gate_items_excluded_as_leaked": self.gate_items_excluded_as_leaked,
            "wrong_values_refused": self.wrong_values_refused,
            "seeds": self.seeds,
            "auditor_ratings": self.details.get("auditor_ratings"),
            "training_seeds": self.training_seeds.as_json() if self.training_seeds else None,
        }

    @property
    def weak_rose(self) -> bool:
        weak = self.departments[self.weak_department]
        return weak["rougeL_after"] > weak["rougeL_before"] and weak["f1_after"] > weak["f1_before"]

    @property
    def gap_shrank(self) -> bool:
        return self.gap_after < self.gap_before

    def figure(self, system: str, department: str, metric: str) -> Interval | None:
        return self.systems.get(system, {}).get(department, {}).get(metric)


def department_table(before: EvaluationSummary, after: EvaluationSummary) -> dict[str, dict[str, float]]:
    """{department: rougeL/f1 before and after}, departments in name order."""
    return {
        department: {
            "rougeL_before": before.by_department[department]["rougeL"],
            "rougeL_after": after.by_department[department]["rougeL"],
            "f1_before": before.by_department[department]["f1"],
            "f1_after": after.by_department[department]["f1"],
        }
        for department in sorted(set(before.by_department) & set(after.by_department))
    }


def system_figures(summary: EvaluationSummary) -> dict[str, dict[str, Interval]]:
    """{department or "all": {metric: Interval}} from a summary's stored intervals."""
    return {
        group: {m: Interval(v["estimate"], v["ci_low"], v["ci_high"]) for m, v in by_metric.items()}
        for group, by_metric in summary.intervals.items()
    }


def correction_effects(
    candidate: EvaluationSummary, control: EvaluationSummary, *, resamples: int, seed: int
) -> dict[str, dict[str, Interval]]:
    """{department or "all": {metric: candidate − control with its paired 95% bootstrap interval}}."""
    comparison = compare(candidate, control, metrics=EFFECT_METRICS, resamples=resamples, seed=seed)
    effects = {
        dept: {m: Interval(r.mean_difference, r.ci_low, r.ci_high) for m, r in by_metric.items()}
        for dept, by_metric in comparison.department_differences.items()
    }
    effects["all"] = {
        m: Interval(r.mean_difference, r.ci_low, r.ci_high) for m, r in comparison.metric_differences.items()
    }
    return effects


def seed_averaged(summaries: Sequence[EvaluationSummary], **settings: Any) -> EvaluationSummary:
    """One system trained with several recipe seeds as one summary: each item's every metric averaged
    over the runs (all judged on the same items), so that its intervals and a paired comparison
    resample items with the training variance averaged out of each item."""
    runs = [{item.item_id: item for item in summary.scored_items()} for summary in summaries]
    shared = sorted(set.intersection(*(set(run) for run in runs)))
    if not shared:
        raise ValueError("seed_averaged: the runs were scored on no common gold item")
    averaged = []
    for item_id in shared:
        first = runs[0][item_id]
        metrics = set.intersection(*(set(run[item_id].scores) for run in runs))
        scores = {m: float(sum(run[item_id].scores[m] for run in runs) / len(runs)) for m in sorted(metrics)}
        averaged.append(dataclasses.replace(first, scores=scores))
    return summarize(averaged, signature=summaries[0].signature, **settings)


@dataclass
class TrainingSeeds:
    """The candidate's and the control's recipe trained once per recipe seed on the same two dataset
    versions with the same steps, judged on the same items: ``effects[i]`` is seed ``seeds[i]``'s
    correction effect; ``mean_*`` the seed-averaged figures (items resampled, training averaged)."""

    seeds: list[int]
    after: list[dict[str, dict[str, Interval]]]
    control: list[dict[str, dict[str, Interval]]]
    effects: list[dict[str, dict[str, Interval]]]
    mean_after: dict[str, dict[str, Interval]]
    mean_control: dict[str, dict[str, Interval]]
    mean_effects: dict[str, dict[str, Interval]]

    @classmethod
    def measure(
        cls,
        seeds: Sequence[int],
        candidates: Sequence[EvaluationSummary],
        controls: Sequence[EvaluationSummary],
        *,
        resamples: int,
        seed: int,
    ) -> TrainingSeeds:
        """From one candidate and one control summary per recipe seed (already restricted to the report's items)."""
        settings = {"resamples": resamples, "seed": seed}
        mean_candidate, mean_control = seed_averaged(candidates, **settings), seed_averaged(controls, **settings)
        return cls(
            seeds=list(seeds),
            after=[system_figures(s) for s in candidates],
            control=[system_figures(s) for s in controls],
            effects=[correction_effects(a, c, **settings) for a, c in zip(candidates, controls, strict=True)],
            mean_after=system_figures(mean_candidate),
            mean_control=system_figures(mean_control),
            mean_effects=correction_effects(mean_candidate, mean_control, **settings),
        )

    def effect_spread(self, department: str, metric: str) -> dict[str, float] | None:
        """Mean, min, max and standard deviation (n − 1) of the per-seed effects; None if not measured."""
        values = [e[department][metric].estimate for e in self.effects if metric in e.get(department, {})]
        if len(values) != len(self.seeds) or not values:
            return None
        return {**_spread(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}

    def as_json(self) -> dict[str, Any]:
        def plain(figures: Mapping[str, Mapping[str, Interval]]) -> dict[str, dict[str, dict[str, float]]]:
            return {group: {m: i.to_dict() for m, i in by_metric.items()} for group, by_metric in figures.items()}

        return {
            "seeds": self.seeds,
            "per_seed": [
                {"seed": s, "after": plain(a), "control": plain(c), "correction_effect": plain(e)}
                for s, a, c, e in zip(self.seeds, self.after, self.control, self.effects, strict=True)
            ],
            "seed_averaged": {
                "after": plain(self.mean_after),
                "control": plain(self.mean_control),
                "correction_effect": plain(self.mean_effects),
            },
        }


def render_training_seeds(report: LoopReport, *, metrics: Sequence[str] = ("fact_accuracy", "retrieval_at_1")) -> str:
    """Per department: the seed-averaged candidate and control, each seed's correction effect, and the
    seed-averaged effect with its interval (Markdown)."""
    spread = report.training_seeds
    if spread is None:
        return ""
    seeds = ", ".join(str(s) for s in spread.seeds)
    lines = [
        f"## Over {len(spread.seeds)} training seeds ({seeds})",
        "",
        "The candidate's recipe (on the corrected dataset version) and the control's (on the version from before "
        "any SME correction) trained once per recipe seed, same steps, judged on the same items: one run's "
        "interval resamples items only, and the spread of the effect across seeds shows how much of it the "
        "training's own randomness moves. The seed-averaged figures average each item over the seeds before "
        "resampling items. Only the first seed's candidate went through the worker and the gate.",
        "",
    ]
    for metric in metrics:
        lines += [
            f"{metric}:",
            "",
            "| department | candidate (seed-averaged) | control (seed-averaged) | effect per seed | "
            "effect: mean (sd) over seeds | seed-averaged effect [95% CI] |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in [*report.departments, "all"]:
            per_seed = [e.get(name, {}).get(metric) for e in spread.effects]
            stats = spread.effect_spread(name, metric)
            lines.append(
                f"| {name} | {_cell(spread.mean_after.get(name, {}).get(metric))} | "
                f"{_cell(spread.mean_control.get(name, {}).get(metric))} | "
                + ", ".join(f"{i.estimate:+.2f}" if i else "—" for i in per_seed)
                + " | "
                + (f"{stats['mean']:+.2f} ({stats['sd']:.2f})" if stats else "—")
                + f" | {_effect_cell(spread.mean_effects.get(name, {}).get(metric))} |"
            )
        lines.append("")
    return "\n".join(lines)


def _headline(summary: EvaluationSummary) -> str:
    """A summary's headline metrics for a progress line."""
    return ", ".join(f"{m} {summary.metrics[m]:.4f}" for m in HEADLINE_METRICS)


def _cell(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return f"{interval.estimate:.2f} [{interval.ci_low:.2f}, {interval.ci_high:.2f}]"


def _effect_cell(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return f"{interval.estimate:+.2f} [{interval.ci_low:+.2f}, {interval.ci_high:+.2f}]"


def render_markdown(report: LoopReport, *, metric: str = "fact_accuracy") -> str:
    """One metric per department for every system, and the correction effect, as a Markdown table."""
    labels = {
        "before": "v0 (before)",
        "after": "candidate (after)",
        "control": "control",
        "baseline_first_sentence": "first sentence",
        "baseline_best_sentence": "best sentence + citation",
    }
    systems = [s for s in SYSTEMS if s in report.systems]
    lines = [
        "| department | n | " + " | ".join(labels[s] for s in systems) + " | correction effect (after − control) |",
        "|---|---:|" + "---:|" * len(systems) + "---:|",
    ]
    counts = report.details.get("gate_counts", {})
    for name in [*report.departments, "all"]:
        label = f"**{name}** (weak)" if name == report.weak_department else ("all" if name == "all" else name)
        cells = [_cell(report.figure(s, name, metric)) for s in systems]
        effect = _effect_cell(report.effects.get(name, {}).get(metric))
        lines.append(f"| {label} | {counts.get(name, '')} | " + " | ".join(cells) + f" | {effect} |")
    return "\n".join(lines)


def render_rouge_table(report: LoopReport) -> str:
    """The older view: ROUGE-L and token F1 before and after, per department."""
    lines = [
        "| department | ROUGE-L before | ROUGE-L after | change | token F1 before | token F1 after | change |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in report.departments.items():
        label = f"**{name}** (weak)" if name == report.weak_department else name
        lines.append(
            f"| {label} | {row['rougeL_before']:.4f} | {row['rougeL_after']:.4f} | "
            f"{row['rougeL_after'] - row['rougeL_before']:+.4f} | {row['f1_before']:.4f} | {row['f1_after']:.4f} | "
            f"{row['f1_after'] - row['f1_before']:+.4f} |"
        )
    lines.append(
        f"| department gap (ROUGE-L, max − min) | {report.gap_before:.4f} | {report.gap_after:.4f} | "
        f"{report.gap_after - report.gap_before:+.4f} | | | |"
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class RealDays:
    """Days answered by the assistant itself: its answers read against the truth, and their ratings."""

    label: str  # before | after
    model: str  # the model version that answered
    answers: list[DemoAnswer]
    ratings: list[DemoRating]


def auditor_shift(before: RealDays, after: RealDays, *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean auditor accuracy rating per asker department on the real days before and after, each with
    the Quality page's interval over answers (``audit.measures.quality.clustered_interval``); the
    change after − before with a cluster bootstrap interval (answers resampled within each period);
    and the Fairness page's accuracy difference (largest − smallest department mean) in each."""
    import numpy as np

    from audit.measures.quality import clustered_interval

    def clusters(days: RealDays) -> dict[str, list[list[int]]]:
        by_answer: dict[str, list[int]] = {}
        for rating in days.ratings:
            by_answer.setdefault(rating.answer_external_id, []).append(rating.accuracy)
        grouped: dict[str, list[list[int]]] = {}
        for answer in days.answers:
            if answer.external_id in by_answer:
                grouped.setdefault(answer.department, []).append(by_answer[answer.external_id])
        return grouped

    rng = np.random.default_rng(seed)

    def resampled_means(groups: list[list[int]]) -> Any:
        sums = np.array([sum(g) for g in groups], dtype=float)
        sizes = np.array([len(g) for g in groups], dtype=float)
        picks = rng.integers(0, len(groups), size=(resamples, len(groups)))
        return sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)

    first, second = clusters(before), clusters(after)
    departments: dict[str, Any] = {}
    for name in sorted(set(first) & set(second)):
        b, a = clustered_interval(first[name]), clustered_interval(second[name])
        diff = resampled_means(second[name]) - resampled_means(first[name])
        departments[name] = {
            "answers_before": len(first[name]),
            "answers_after": len(second[name]),
            "before": list(b),
            "after": list(a),
            "shift": [
                float(a[0] - b[0]) if a[0] is not None and b[0] is not None else None,
                float(np.quantile(diff, 0.025)),
                float(np.quantile(diff, 0.975)),
            ],
        }

    def spread(which: str) -> float | None:
        means = [row[which][0] for row in departments.values() if row[which][0] is not None]
        return float(max(means) - min(means)) if means else None

    return {
        "model_before": before.model,
        "model_after": after.model,
        "days": {
            "before": len({a.created_at.date() for a in before.answers}),
            "after": len({a.created_at.date() for a in after.answers}),
        },
        "departments": departments,
        "fairness_difference_before": spread("before"),
        "fairness_difference_after": spread("after"),
    }


def render_auditor_ratings(report: LoopReport) -> list[str]:
    """The real days as the product shows them: mean auditor accuracy rating per asker department."""
    shift = report.details.get("auditor_ratings")
    if not shift or not shift.get("departments"):
        return []

    def rating(cell: Sequence[float | None]) -> str:
        mean, low, high = cell
        if mean is None:
            return "—"
        return f"{mean:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")

    days = shift["days"]
    lines = [
        "## The days answered for real: auditor accuracy ratings (1–5)",
        "",
        f"{days['before']} days answered by {shift['model_before']} before the review and {days['after']} days "
        f"answered by {shift['model_after']} (the champion after the gate), through the assistant's own path "
        "(retrieve → rerank → generate), rated by the simulated auditors from the truth (value stated? right, "
        "current document on top? another department's document on top?) with their noise and leniency. "
        "Intervals are the Quality page's, over answers; the change's is a cluster bootstrap.",
        "",
        f"| asker department | answers before / after | {shift['model_before']} (before) | "
        f"{shift['model_after']} (after) | after − before |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in shift["departments"].items():
        label = f"**{name}** (weak)" if name == report.weak_department else name
        est, low, high = row["shift"]
        lines.append(
            f"| {label} | {row['answers_before']} / {row['answers_after']} | {rating(row['before'])} | "
            f"{rating(row['after'])} | {est:+.2f} [{low:+.2f}, {high:+.2f}] |"
        )
    lines += [
        "",
        f"Accuracy difference between departments (the Fairness page): {shift['fairness_difference_before']:.2f} "
        f"before, {shift['fairness_difference_after']:.2f} after.",
        "",
    ]
    return lines


def _retrieval_verdicts(report: LoopReport) -> list[str]:
    weak = report.weak_department
    before, after, control = (report.figure(s, weak, "retrieval_at_1") for s in ("before", "after", "control"))
    effect = report.effects.get(weak, {}).get("retrieval_at_1")
    if before is None or after is None or control is None or effect is None:
        return []
    moved = "rose" if after.ci_low > before.ci_high else "did not measurably change"
    line = (
        f"{weak}'s retrieval@1 {moved} from {_cell(before)} to {_cell(after)} with the candidate's reranker; "
        f"the control's reranker (the curated pairs alone) reached {_cell(control)}, "
    )
    if effect.ci_low > 0:
        line += f"so the audit's retrieval fixes added {_effect_cell(effect)} beyond it."
    else:
        line += f"and the audit's retrieval fixes added no measurable gain beyond it ({_effect_cell(effect)})."
    return [line]


def verdicts(report: LoopReport) -> list[str]:
    """Plain sentences on what the figures support (each read off an interval)."""
    weak = report.weak_department
    lines = []
    effect = report.effects.get(weak, {}).get("fact_accuracy")
    if effect is not None:
        if effect.ci_low > 0:
            lines.append(
                f"The SME corrections raised {weak}'s fact accuracy beyond what retraining without them gave: "
                f"{_effect_cell(effect)}."
            )
        else:
            lines.append(
                f"The SME corrections did **not** measurably raise {weak}'s fact accuracy over the control "
                f"(candidate − control {_effect_cell(effect)}: the interval includes 0)."
            )
    lines += _retrieval_verdicts(report)
    shift = (report.details.get("auditor_ratings") or {}).get("departments", {}).get(weak)
    if shift is not None:
        est, low, high = shift["shift"]
        if low > 0:
            lines.append(
                f"On the days answered for real, auditors rated {weak}'s answers higher after the gate "
                f"({est:+.2f} [{low:+.2f}, {high:+.2f}] on the 1–5 accuracy scale)."
            )
        else:
            lines.append(
                f"On the days answered for real, auditors did **not** rate {weak}'s answers measurably higher "
                f"after the gate ({est:+.2f} [{low:+.2f}, {high:+.2f}])."
            )
    after = report.figure("after", weak, "fact_accuracy")
    best = report.figure("baseline_best_sentence", weak, "fact_accuracy")
    if after is not None and best is not None:
        if after.ci_low > best.ci_high:
            lines.append(
                f"On {weak}, the trained model states the right value more often than copying the best sentence."
            )
        elif after.ci_high < best.ci_low:
            lines.append(
                f"On {weak}, copying the top document's best sentence states the right value more often "
                f"({_cell(best)}) than the trained model ({_cell(after)}): the generator is not yet earning its keep."
            )
        else:
            lines.append(
                f"On {weak}, the trained model ({_cell(after)}) and the best-sentence baseline ({_cell(best)}) "
                "cannot be told apart."
            )
    lines.append(
        "The gate "
        + ("refused" if report.corrupted_refused else "did **not** refuse")
        + " the shuffled version and "
        + ("refused" if report.wrong_values_refused else "did **not** refuse")
        + " the wrong-values version."
    )
    wrong = report.details.get("corrupted", {}).get("wrong_values", {})
    own = report.details.get("candidate", {})
    singled_out = sorted(set(wrong.get("failed", [])) - set(own.get("failed", [])))
    if report.wrong_values_refused and not report.promoted and wrong.get("failed") and not singled_out:
        lines.append(
            f"The wrong-values version failed {', '.join(wrong['failed'])}; the loop's own candidate was refused "
            f"too ({', '.join(own.get('failed', [])) or 'no check named'}), so this refusal does not single out wrong "
            "values: it says every retrained model lost ground to the champion."
        )
    elif report.wrong_values_refused and singled_out:
        lines.append(
            f"The wrong-values version failed {', '.join(singled_out)}, which the loop's own candidate passed: "
            "the refusal singles out its wrong values."
        )
    return lines


def render_document(report: LoopReport, *, command: str) -> str:
    """The whole run as a Markdown page (docs/demo-loop.md is this, for the default seed)."""
    d = report.details
    weak = report.weak_department
    candidate, fixes = d.get("candidate", {}), d.get("fixes", {})
    counts = d.get("seed_counts", {})
    overrides = d.get("overrides", [])
    recipe = "training/configs/lora.yaml" + (f" with {' '.join(overrides)}" if overrides else " as it is")
    built = d.get("base_model_built_seconds")
    base_model = f"`{d.get('base_model')}`" + (
        f" (built in this run: {built} s)" if built is not None else " (cached from an earlier run)"
    )
    lines = [
        "# The audit loop, judged on facts, on the demo company",
        "",
        "```",
        command,
        "```",
        "",
        f"(`--markdown docs/demo-loop.md` writes this page.) One run on a fresh demo database (seed "
        f"{d.get('seed')}, history ending {d.get('today')}); base model {base_model}; recipe {recipe}. "
        f"The whole run took {d.get('seconds')} s on {d.get('cpus')} CPU cores.",
        "",
        f"## The gate items: {report.gate_items} clean gold questions",
        "",
        f"{report.gate_items_excluded_as_leaked} gold items were left out because their question or reference answer "
        "appears in a training example, an SME correction or an applied fix of the data trained on (most are "
        "auditor calibration items: real answers the curated data already holds). Every figure below is over the "
        "remaining items, each with its 95% percentile bootstrap interval over items; every judged answer is "
        "stored in `evaluation_items`, so each figure is a mean of stored rows.",
        "",
        "## Fact accuracy: does the answer state the gold value?",
        "",
        render_markdown(report, metric="fact_accuracy"),
        "",
        "## Wrong values: does it state another value of the fact's type instead? (lower is better)",
        "",
        'A confidently wrong answer — "reviewed every 12 months" where the document says 6 — is the failure staff '
        'complained of ("hallucinates company policy"). Judged for dates, amounts, percentages and quantities of '
        "time; a name (a system, a role) cannot be told apart from the answer's other words and never counts.",
        "",
        render_markdown(report, metric="wrong_value"),
        "",
        "## Citation accuracy: does it cite the gold document's current version?",
        "",
        render_markdown(report, metric="citation_accuracy"),
        "",
        "## Retrieval@1 (the retriever each system serves with)",
        "",
        render_markdown(report, metric="retrieval_at_1"),
        "",
        "## ROUGE-L (secondary: it scores the right sentence with a wrong value highly)",
        "",
        render_markdown(report, metric="rougeL"),
        "",
        *([render_training_seeds(report)] if report.training_seeds else []),
        *render_auditor_ratings(report),
        "## What the figures support",
        "",
        *[f"- {line}" for line in verdicts(report)],
        "",
        "## What the loop did",
        "",
        f"1. Seeded {counts.get('answers')} answers with {counts.get('ratings')} simulated ratings and "
        f"{counts.get('examples')} curated examples (dataset version 1); routing opened "
        f"{d.get('routing', {}).get('items_opened')} review items.",
        f"2. `sme.{weak.lower()}` decided the {weak} items through the review service: "
        + _counts(d.get("review", {}))
        + ". Wrong answers were confirmed with the root cause of their simulated error and the auditor's "
        "suggested correction; right answers that pulled in another department's documents as department bias.",
        f"3. Fixes: {fixes.get('proposed')} proposed ({fixes.get('refused')} refused: duplicates, gold-set "
        f"leaks, a second rebalance), {fixes.get('auto_applied')} auto-applied, {fixes.get('approved_by_lead')} "
        f"approved by `lead` (applied: {_counts(fixes.get('applied_by_kind', {}))}; of the examples added, "
        f"{fixes.get('carried_over', 0)} are corrections carried over to another document of the department) "
        f"→ dataset version {fixes.get('dataset_version')} ({_counts(fixes.get('examples_by_department', {}))} "
        "examples).",
        f"4. {_sentence(d.get('trigger', '').removeprefix('trigger: '))}.",
        f"5. The worker trained `{candidate.get('model_version')}` (LoRA), evaluated it against the champion and "
        f"the gate said **{candidate.get('gate')}**:",
        *[f"   - {check}" for check in candidate.get("checks", [])],
        f"6. The control: the same recipe and seed, {d.get('control', {}).get('steps')} steps, on dataset version "
        f"{d.get('control', {}).get('dataset_version')} (before any SME correction), judged on the same items.",
        "",
        "## The gate refuses corrupted data",
        "",
    ]
    for name, what in CORRUPTIONS.items():
        corrupted = d.get("corrupted", {}).get(name, {})
        lines += [
            f"Dataset version {corrupted.get('dataset_version')} is version {corrupted.get('from')} with {what}. "
            f"A candidate trained on it with the same recipe, `{corrupted.get('model_version')}`, was "
            f"**{corrupted.get('gate')}** (failed: {', '.join(corrupted.get('failed', [])) or 'nothing'}); the "
            f"champion stayed `{corrupted.get('champion_after')}`:",
            *[f"   - {check}" for check in corrupted.get("checks", [])],
            "",
        ]
    lines += [
        "## ROUGE-L and token F1 before and after (the older view)",
        "",
        render_rouge_table(report),
        "",
    ]
    return "\n".join(lines)


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"mean": float(sum(values) / len(values)), "min": float(min(values)), "max": float(max(values))}


def _interval_spread(intervals: Sequence[Interval]) -> dict[str, Any]:
    """Mean, min and max of the estimates, and how many of the intervals lie above 0."""
    return {
        **_spread([i.estimate for i in intervals]),
        "seeds_with_interval_above_0": sum(i.ci_low > 0 for i in intervals),
    }


def seed_summary(reports: Sequence[LoopReport]) -> dict[str, Any]:
    """Across seeds: for every department (and "all"), the mean and range of each system's figures and
    of the correction effect, and on how many seeds the effect's interval lies above 0."""
    departments = [*reports[0].departments, "all"]
    summary: dict[str, Any] = {"departments": {}}
    for name in departments:
        entry: dict[str, Any] = {}
        for system in SYSTEMS:
            figures = [r.figure(system, name, m) for r in reports for m in HEADLINE_METRICS]
            if any(f is None for f in figures):
                continue
            entry[system] = {
                m: _spread([r.figure(system, name, m).estimate for r in reports])  # type: ignore[union-attr]
                for m in HEADLINE_METRICS
            }
        effects: dict[str, Any] = {}
        for metric in EFFECT_METRICS:
            found = [r.effects.get(name, {}).get(metric) for r in reports]
            if all(f is not None for f in found):
                effects[metric] = _interval_spread([f for f in found if f is not None])
        entry["correction_effect"] = effects
        averaged = [r.training_seeds.mean_effects.get(name, {}) for r in reports if r.training_seeds]
        if averaged and len(averaged) == len(reports):
            entry["correction_effect_seed_averaged"] = {
                metric: _interval_spread([a[metric] for a in averaged])
                for metric in EFFECT_METRICS
                if all(metric in a for a in averaged)
            }
        summary["departments"][name] = entry
    summary |= {
        "promoted": sum(r.promoted for r in reports),
        "corrupted_refused": sum(r.corrupted_refused for r in reports),
        "wrong_values_refused": sum(r.wrong_values_refused for r in reports),
        "gate_items": _spread([r.gate_items for r in reports]),
        "runs": len(reports),
    }
    return summary


def render_seed_summary(reports: Sequence[LoopReport]) -> str:
    """The summary across seeds as Markdown: mean [min, max] of each figure per department."""
    summary = seed_summary(reports)
    seeds = ", ".join(str(r.seeds[0]) for r in reports)
    lines = [
        f"## Across seeds {seeds}: mean [min, max]",
        "",
        "| department | fact acc. before | fact acc. after | fact acc. control | best-sentence baseline | "
        "correction effect: fact acc. (seeds with CI > 0) | effect: citation acc. | effect: ROUGE-L |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(spread: dict[str, float] | None, sign: str = "") -> str:
        if not spread:
            return "—"
        return f"{spread['mean']:{sign}.2f} [{spread['min']:{sign}.2f}, {spread['max']:{sign}.2f}]"

    for name, entry in summary["departments"].items():
        fact = "fact_accuracy"
        effects = entry.get("correction_effect", {})
        lines.append(
            f"| {name} | {cell(entry.get('before', {}).get(fact))} | {cell(entry.get('after', {}).get(fact))} | "
            f"{cell(entry.get('control', {}).get(fact))} | {cell(entry.get('baseline_best_sentence', {}).get(fact))} | "
            f"{cell(effects.get(fact), '+')} ({effects.get(fact, {}).get('seeds_with_interval_above_0', 0)} of "
            f"{len(reports)}) | {cell(effects.get('citation_accuracy'), '+')} | {cell(effects.get('rougeL'), '+')} |"
        )
    lines += [
        "",
        "| department | retrieval@1 before | retrieval@1 after | retrieval@1 control | "
        "correction effect: retrieval@1 (seeds with CI > 0) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, entry in summary["departments"].items():
        found = "retrieval_at_1"
        effect = entry.get("correction_effect", {}).get(found)
        lines.append(
            f"| {name} | {cell(entry.get('before', {}).get(found))} | {cell(entry.get('after', {}).get(found))} | "
            f"{cell(entry.get('control', {}).get(found))} | {cell(effect, '+')} "
            f"({(effect or {}).get('seeds_with_interval_above_0', 0)} of {len(reports)}) |"
        )
    if all(r.training_seeds for r in reports):
        counts = ", ".join(str(len(r.training_seeds.seeds)) for r in reports if r.training_seeds)
        lines += [
            "",
            f"Correction effect averaged over training seeds ({counts} per world seed): mean [min, max] across "
            "world seeds (world seeds whose seed-averaged interval lies above 0)",
            "",
            "| department | fact acc. | retrieval@1 |",
            "|---|---:|---:|",
        ]
        for name, entry in summary["departments"].items():
            averaged = entry.get("correction_effect_seed_averaged", {})
            lines.append(
                f"| {name} | "
                + " | ".join(
                    f"{cell(averaged.get(m), '+')} ({averaged.get(m, {}).get('seeds_with_interval_above_0', 0)} of "
                    f"{len(reports)})"
                    for m in ("fact_accuracy", "retrieval_at_1")
                )
                + " |"
            )
    lines += [
        "",
        f"Promoted on {summary['promoted']} of {len(reports)} seeds; the shuffled version refused on "
        f"{summary['corrupted_refused']}, the wrong-values version on {summary['wrong_values_refused']}.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class LoopOptions:
    seed: int = DEFAULT_SEED
    days: int = DEFAULT_DAYS
    today: dt.date = DEMO_TODAY
    # recipe overrides (section.key=value) for both training runs, after LOOP_OVERRIDES
    overrides: tuple[str, ...] = ()
    config_path: str | None = None
    # days answered by the assistant itself, before the review (by v0) and after the gate (by the
    # champion then), rated by the simulated auditors from the truth; 0 = none
    real_days: int = 3
    # recipe seeds per training run: the candidate and the control are retrained with seeds
    # cfg.seed + 1 ... cfg.seed + n - 1 as well (judged only, never gated), to show the effect's spread
    training_seeds: int = 1


class DemoLoop:
    """One run of the loop on an empty database (migrated here if need be); see the module docstring."""

    def __init__(self, settings: Settings, engine: Engine, options: LoopOptions, *, progress: Progress) -> None:
        from training.models import tiny_spec

        # the built-in base model is pretrained on this seed's own company (cached per seed)
        if settings.base_model == BUILTIN_TINY:
            settings = dataclasses.replace(settings, base_model=tiny_spec(options.seed))
        self.settings = settings
        self.engine = engine
        self.options = options
        self.sessions = make_session_factory(engine)
        self.started = time.perf_counter()
        self._progress = progress
        self.overrides = (*LOOP_OVERRIDES, *options.overrides)
        self.details: dict[str, Any] = {
            "seed": options.seed,
            "today": options.today.isoformat(),
            "base_model": settings.base_model,
            "overrides": list(self.overrides),
            "cpus": os.cpu_count(),
        }

    def say(self, message: str) -> None:
        self._progress(f"[{time.perf_counter() - self.started:6.1f}s] {message}")

    def _in_transaction(self, work: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            try:
                result = work(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        return result

    # ------------------------------------------------------------------- run

    def run(self) -> LoopReport:
        cfg = load_config(self.options.config_path, self.overrides)  # a bad override fails before any work
        corpus = build_corpus(self.options.seed)
        self.seed_database()
        self.prepare_base_model()
        truth = self.simulated_truth(corpus)
        real_before = self.answer_real_days(corpus, "before", self.options.today)
        truth |= {a.external_id: a for a in real_before.answers}
        self._in_transaction(self.route)
        self._in_transaction(lambda s: self.sme_review(s, truth, corpus))
        before_corrections = self._in_transaction(lambda s: _current_version_id(s))
        trained_version = self._in_transaction(self.fixes_and_trigger)

        # the gate items: clean for the trained version (the worker's gate prepares the same set)
        context = self._in_transaction(lambda s: evaluate_recipe.prepare(s, cfg, trained_on=[trained_version]))
        self.say(
            f"gate items: {len(context.gold)} clean gold questions ({context.excluded_as_leaked} left out as leaked "
            f"into the training data, {context.excluded_incomplete} without key values)"
        )
        before = self.evaluate_champion(context)
        result = self.run_worker("the retraining job")
        after, promoted, candidate_steps = self._in_transaction(lambda s: self.outcome(s, result))

        control = self.train_control(cfg, before_corrections, context, steps=candidate_steps)
        replicates = self.train_replicates(cfg, trained_version, before_corrections, context, steps=candidate_steps)
        baselines = {f"baseline_{kind}": self.baseline(kind, context) for kind in BASELINES}

        refused: dict[str, bool] = {}
        for kind in CORRUPTIONS:
            corrupted_version = self._in_transaction(
                lambda s, kind=kind: self.corrupt_and_queue(s, trained_version, kind, corpus)  # type: ignore[misc]
            )
            refused[kind] = self.gate_corrupted(kind, corrupted_version)

        real_after = self.answer_real_days(
            corpus, "after", self.options.today + dt.timedelta(days=self.options.real_days)
        )
        self.details["auditor_ratings"] = auditor_shift(real_before, real_after)

        # the report's items: the gate items that leaked into neither the trained data nor the control's
        control_seen = self._in_transaction(lambda s: evaluate_recipe.training_texts(s, [before_corrections]))
        clean, leaked_for_control, _ = evaluate_recipe.clean_gate_items(context.gold, control_seen)
        kept = {g.item_id for g in clean}
        settings = {"resamples": cfg.evaluation.bootstrap_resamples, "seed": cfg.seed}
        summaries = {"before": before, "after": after, "control": control, **baselines}
        summaries = {name: restrict(summary, kept, **settings) for name, summary in summaries.items()}
        self.details["gate_counts"] = {
            **summaries["after"].department_counts,
            "all": summaries["after"].n,
        }
        training_seeds = None
        if replicates:
            training_seeds = TrainingSeeds.measure(
                [cfg.seed, *(seed for seed, _, _ in replicates)],
                [summaries["after"], *(restrict(a, kept, **settings) for _, a, _ in replicates)],
                [summaries["control"], *(restrict(c, kept, **settings) for _, _, c in replicates)],
                **settings,
            )
        self.details["seconds"] = round(time.perf_counter() - self.started, 1)
        return LoopReport(
            weak_department=WEAK_DEPARTMENT,
            departments=department_table(summaries["before"], summaries["after"]),
            gap_before=department_gap(summaries["before"].by_department, "rougeL"),
            gap_after=department_gap(summaries["after"].by_department, "rougeL"),
            promoted=promoted,
            corrupted_refused=refused["shuffled"],
            systems={name: system_figures(summary) for name, summary in summaries.items()},
            effects=correction_effects(summaries["after"], summaries["control"], **settings),
            gate_items=len(kept),
            gate_items_excluded_as_leaked=context.excluded_as_leaked + leaked_for_control,
            wrong_values_refused=refused["wrong_values"],
            seeds=[self.options.seed],
            details=self.details,
            training_seeds=training_seeds,
        )

    # ------------------------------------------------------------------- 1. seed

    def seed_database(self) -> None:
        self.say("database: applying the migrations")
        schema.upgrade(self.engine, "head")

        def seed(session: Session) -> SeedReport:
            report = seed_demo(
                session,
                actor=None,
                today=self.options.today,
                seed=self.options.seed,
                days=self.options.days,
                progress=lambda stage: self.say(f"seed: {stage}"),
            )
            # v0 is "the base model, no adapter": the configured one (the seed names the built-in)
            v0 = gate_module.champion(session)
            if v0 is not None and v0.base_model != self.settings.base_model:
                self.say(f"seed: {v0.name} is the configured base model {self.settings.base_model}")
                v0.base_model = self.settings.base_model
            return report

        try:
            report = self._in_transaction(seed)
        except ConflictError as exc:
            raise ConflictError(f"{exc}; or run `auditloop demo loop --data-dir NEW_FOLDER`") from exc
        credentials = write_credentials(self.settings.credentials_file, report.credentials, seed=self.options.seed)
        self.details["seed_counts"] = report.counts
        self.details["credentials_file"] = str(credentials)
        self.say(
            f"seed: {report.counts['answers']} answers, {report.counts['ratings']} ratings, "
            f"{report.counts['examples']} examples (dataset version {report.dataset_version}); "
            f"passwords in {credentials}"
        )

    def prepare_base_model(self) -> None:
        from training.models import ensure_base_model

        self.say(f"base model: {self.settings.base_model}")
        started = time.perf_counter()
        messages: list[str] = []

        def progress(message: str) -> None:
            messages.append(message)
            self.say(f"base model: {message}")

        model_dir = ensure_base_model(self.settings, progress=progress)
        self.details["base_model_dir"] = str(model_dir)
        # the builder reports its steps; a cached model loads without a word
        self.details["base_model_built_seconds"] = round(time.perf_counter() - started, 1) if messages else None

    def simulated_truth(self, corpus: DemoCorpus) -> dict[str, DemoAnswer]:
        """What really happened to each answer (the simulation's record): what the SME knows."""
        traffic = simulate_traffic(corpus, days=self.options.days, today=self.options.today)
        return {a.external_id: a for a in traffic.answers}

    def answer_real_days(self, corpus: DemoCorpus, label: str, first_day: dt.date) -> RealDays:
        """``real_days`` days of staff questions answered by the champion through the assistant's own
        path (``auditloop answer``: its retriever and reranker, its base model and adapter), stored as
        answers of those days, and rated by the simulated auditors from the demo's truth."""
        from training import assistant
        from training.retrieval import current_documents

        days = self.options.real_days
        asked = demo_questions(corpus, first_day=first_day, days=days, label=f"real-{label}")
        if not asked:
            return RealDays(label, "", [], [])
        by_id = {q.external_id: q for q in asked}
        questions = [assistant.Question(q.question, q.asker, q.external_id) for q in asked]

        def plan(session: Session) -> tuple[ModelVersion, list[assistant.PendingAnswer], list[Any]]:
            version = gate_module.champion(session)
            if version is None:
                raise NotFoundError("no champion to answer the demo's questions")
            pending, _ = assistant.plan_answers(session, actor=None, questions=questions, model_version=version)
            documents = current_documents(session)
            session.expunge(version)
            return version, pending, documents

        version, pending, documents = self._in_transaction(plan)
        self.say(
            f"real days ({label}): {version.name} answers {len(pending)} questions of {days} days from {first_day}"
        )
        backend = assistant.backend_for_version(self.settings, version, prefer="transformers", device="cpu")
        generated = assistant.generate_answers(
            pending, backend=backend, retriever=assistant.retriever_for_version(version, documents)
        )
        rng = random.Random(f"auditloop-demo:{corpus.seed}:real-{label}:ratings")
        judged = [
            judge_real_answer(
                rng,
                by_id[g.pending.external_id],
                answer_text=g.text,
                sources=[
                    {"document_id": h.document_id, "department": h.department, "score": h.score} for h in g.sources
                ],
                confidence=g.confidence,
                latency_ms=g.latency_ms,
            )
            for g in generated
        ]
        ratings = [r for a in judged for r in rate(rng, a)]

        def store(session: Session) -> None:
            stored = session.get(ModelVersion, version.id)
            assert stored is not None
            assistant.store_answers(
                session,
                actor=None,
                answers=generated,
                model_version=stored,
                created_at_by_id={q.external_id: q.created_at for q in asked},
            )
            ids = dict(
                session.execute(
                    select(Answer.external_id, Answer.id).where(Answer.external_id.in_([a.external_id for a in judged]))
                )
                .tuples()
                .all()
            )
            insert_ratings(session, ratings, ids)

        self._in_transaction(store)
        wrong = Counter(a.error or "right" for a in judged)
        self.say(
            f"real days ({label}): {len(judged)} answers ("
            + ", ".join(f"{n} {what}" for what, n in sorted(wrong.items()))
            + f"), {len(ratings)} ratings"
        )
        return RealDays(label, version.name, judged, ratings)

    # ------------------------------------------------------------------- 2. routing

    def route(self, session: Session) -> None:
        lead = _user(session, LEAD)
        summary = routing.route(session, actor=lead)
        self.details["routing"] = dataclasses.asdict(summary)
        self.say(f"routing: {summary.answers_checked} rated answers, {summary.items_opened} review items opened")

    # ------------------------------------------------------------------- 3. SME review

    def sme_review(self, session: Session, truth: Mapping[str, DemoAnswer], corpus: DemoCorpus) -> None:
        sme = _user(session, f"sme.{WEAK_DEPARTMENT.lower()}")
        planted_wrong = {normalise_text(e.answer) for e in corpus.examples if e.planted == "conflicting"}
        queue = review_service.review_queue(session, actor=sme, department=WEAK_DEPARTMENT, limit=100_000)
        self.say(f"review: {sme.username} works through {len(queue)} {WEAK_DEPARTMENT} review items")
        decided: dict[str, int] = {}
        for entry in queue:
            detail = review_service.review_item_detail(session, actor=sme, item_id=entry.item_id)
            answer = session.get(Answer, entry.answer_id)
            if answer is None or answer.external_id is None or answer.external_id not in truth:
                raise NotFoundError(f"review item {entry.item_id}: answer {entry.answer_id} is not a demo answer")
            real = truth[answer.external_id]
            decision = decide(real, detail, planted_wrong=planted_wrong)
            if decision.root_cause is None:
                review_service.dismiss(
                    session,
                    actor=sme,
                    item_id=entry.item_id,
                    note=decision.note,
                    expected_row_version=detail.row_version,
                )
                decided["dismissed"] = decided.get("dismissed", 0) + 1
                continue
            correct_document_id = None
            if decision.root_cause in ("retrieval_error", *fixes_service.RETRIEVAL_TEACHING_CAUSES):
                # the document that should have come first: a retrieval pair for the reranker
                found = fixes_repo.documents_by_external_id(session, [real.reference_document_id])
                correct_document_id = found[real.reference_document_id].id
            review_service.confirm(
                session,
                actor=sme,
                item_id=entry.item_id,
                root_cause=decision.root_cause,
                corrected_answer=decision.corrected_answer,
                note=decision.note,
                expected_row_version=detail.row_version,
                correct_document_id=correct_document_id,
            )
            decided[decision.root_cause] = decided.get(decision.root_cause, 0) + 1
        self.details["review"] = dict(sorted(decided.items()))
        self.say("review: " + ", ".join(f"{n} {what}" for what, n in sorted(decided.items())))

    # ------------------------------------------------------------------- 4. fixes and trigger

    def fixes_and_trigger(self, session: Session) -> int:
        """Propose, auto-apply, let the lead approve the rest, then evaluate the triggers once (so
        the job trains on the version with every fix in it). Returns the job's dataset version id."""
        lead = _user(session, LEAD)
        proposals = fixes_service.propose_fixes(session, actor=lead)
        auto = fixes_service.auto_apply(session, evaluate_triggers=False)
        waiting = [f.id for f in fixes_service.waiting_for_lead(session)]
        approved = (
            fixes_service.apply_fixes(
                session, actor=lead, fix_ids=waiting, note="approved by the lead (demo loop)", evaluate_triggers=False
            )
            if waiting
            else fixes_service.ApplyReport()
        )
        kinds: dict[str, int] = {}
        carried = 0
        for fix in fixes_service.list_fixes(session, actor=lead, status="applied"):
            kinds[fix.kind] = kinds.get(fix.kind, 0) + 1
            carried += fix.kind == "add_example" and "carried_from" in (fix.payload or {})
        version = datasets.current_version(session)
        assert version is not None  # the seed wrote version 1
        self.details["fixes"] = {
            "reviews": proposals.reviews,
            "proposed": len(proposals.proposed),
            "refused": len(proposals.refused),
            "auto_applied": len(auto.applied),
            "approved_by_lead": len(approved.applied),
            "applied_by_kind": dict(sorted(kinds.items())),
            "carried_over": carried,
            "dataset_version": version.number,
            "examples_by_department": dict(version.counts_by_department or {}),
        }
        self.say(
            f"fixes: {len(proposals.proposed)} proposed ({len(proposals.refused)} refused), {len(auto.applied)} "
            f"auto-applied, {len(approved.applied)} approved by the lead -> dataset version {version.number} "
            f"({version.example_count} examples)"
        )

        evaluation = triggers_service.evaluate(session, actor=lead, now=day_start(self.options.today))
        if evaluation.queued:
            how = f"trigger: {evaluation.message}"
        else:
            queued = triggers_service.queue_training(session, actor=lead, reason="demo loop")
            if not queued.queued:
                raise ConflictError(f"could not queue the demo loop's training job: {queued.message}")
            how = (
                f"trigger: no trigger fired ({evaluation.message}); the lead queued the job by hand "
                f"with the reason 'demo loop': {queued.message}"
            )
        self.details["trigger"] = how
        self.say(how)
        return version.id

    # ------------------------------------------------------------------- 5. champion, worker

    def evaluate_champion(self, context: evaluate_recipe.EvalContext) -> EvaluationSummary:
        """The champion's scores on the gold set, kept on its row: the worker pairs the candidate
        with them (same signature) instead of generating the champion's answers a second time."""
        import torch

        cfg = load_config(self.options.config_path, self.overrides)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        device = evaluate_recipe.resolve_device(cfg.device)
        with self.sessions() as session:
            champion = gate_module.champion(session)
            if champion is None:
                raise NotFoundError("the demo database has no champion model version")
            session.expunge(champion)
        self.say(f"evaluate: champion {champion.name} on {len(context.gold)} gold questions ({device})")
        summary = evaluate_recipe.evaluate_version(
            self.settings, champion, context, device=device, log=lambda m: self.say(m)
        )

        def keep(session: Session) -> None:
            row = session.get(ModelVersion, champion.id)
            assert row is not None
            row.evaluation = summary.to_dict()
            modelops_repo.store_evaluation_items(
                session,
                system=champion.name,
                signature=summary.signature,
                rows=item_rows(summary),
                model_version_id=champion.id,
            )
            auditlog.record(
                session,
                actor=None,
                actor_name="demo loop",
                action="model.evaluated",
                entity_type="model_version",
                entity_id=champion.name,
                details={"gold_items": summary.n, **{m: summary.metrics[m] for m in HEADLINE_METRICS}},
            )

        self._in_transaction(keep)
        self.say("evaluate: " + _headline(summary))
        return summary

    def run_worker(self, label: str) -> JobResult:
        self.say(f"worker: running {label} in-process")
        options = WorkerOptions(
            once=True, overrides=self.overrides, config_path=self.options.config_path, worker_id="demo-loop"
        )
        result = Worker(self.settings, self.engine, options, log=lambda m: self.say(m)).run_one()
        if result is None:
            raise ConflictError(f"the worker found no queued job for {label}")
        if result.status != "succeeded":
            raise AuditloopError(f"{label} did not succeed: job {result.job_id} {result.status}: {result.error}")
        return result

    def outcome(self, session: Session, result: JobResult) -> tuple[EvaluationSummary, bool, int]:
        version = gate_module.version_by_name(session, str(result.model_version))
        champion = gate_module.champion(session)
        promoted = (
            result.gate_status == gate_module.STATUS_PROMOTED and champion is not None and champion.id == version.id
        )
        self.details["candidate"] = {
            "model_version": version.name,
            "gate": result.gate_status,
            "failed": list((version.gate_result or {}).get("failed", [])),
            "checks": [c["detail"] for c in (version.gate_result or {}).get("checks", [])],
        }
        self.say(f"gate: {version.name} {result.gate_status}; champion is {champion.name if champion else 'nobody'}")
        steps = int(version.hyperparameters.get("train.total_steps", 0))
        return EvaluationSummary.from_dict(version.evaluation), promoted, steps

    # ------------------------------------------------------------------- 6. control and baselines

    def train_control(
        self, cfg: Any, version_id: int, context: evaluate_recipe.EvalContext, *, steps: int
    ) -> EvaluationSummary:
        """The same recipe, seed and number of steps on dataset version ``version_id`` (from before any
        SME correction), judged on the candidate's gate items; not a model version, never gated."""
        number = self._version_number(version_id)
        self.say(f"control: training on dataset version {number} (before any SME correction), {steps} steps")
        summary, adapter = self._train_judged(
            cfg,
            version_id,
            context,
            steps=steps,
            system=CONTROL_SYSTEM,
            run_name=f"control-d{number}-s{self.options.seed}",
        )
        self.details["control"] = {"dataset_version": number, "steps": steps, "adapter": adapter}
        self.say("control: " + _headline(summary))
        return summary

    def train_replicates(
        self,
        cfg: Any,
        trained_version: int,
        before_corrections: int,
        context: evaluate_recipe.EvalContext,
        *,
        steps: int,
    ) -> list[tuple[int, EvaluationSummary, EvaluationSummary]]:
        """(recipe seed, candidate, control) for each extra training seed: the candidate's recipe on the
        corrected version and the control's on the version before the corrections, retrained with that
        seed and the same steps, judged on the same items (stored as ``replicate:s{seed}:after|control``)."""
        runs = []
        extra = [cfg.seed + offset for offset in range(1, self.options.training_seeds)]
        versions = [
            (role, v, self._version_number(v))
            for role, v in (("after", trained_version), ("control", before_corrections))
        ]
        for done, seed in enumerate(extra):
            seeded = dataclasses.replace(cfg, seed=seed)
            pair = []
            for role, version_id, number in versions:
                self.say(
                    f"training seed {seed} ({done + 2} of {self.options.training_seeds}): {role} on dataset version "
                    f"{number}, {steps} steps"
                )
                summary, _ = self._train_judged(
                    seeded,
                    version_id,
                    context,
                    steps=steps,
                    system=f"replicate:s{seed}:{role}",
                    run_name=f"replicate-{role}-d{number}-s{self.options.seed}-t{seed}",
                )
                self.say(f"training seed {seed}: {role} " + _headline(summary))
                pair.append(summary)
            runs.append((seed, pair[0], pair[1]))
        return runs

    def _version_number(self, version_id: int) -> int:
        with self.sessions() as session:
            source = session.get(DatasetVersion, version_id)
            return source.number if source else version_id

    def _train_judged(
        self, cfg: Any, version_id: int, context: evaluate_recipe.EvalContext, *, steps: int, system: str, run_name: str
    ) -> tuple[EvaluationSummary, str]:
        """Train the recipe ``cfg`` for ``steps`` steps on dataset version ``version_id``, judge it on
        ``context``'s items and store them as ``system``: (the summary, the adapter's folder)."""
        from training.recipes import lora_finetune

        run_cfg = dataclasses.replace(
            cfg, run_name=run_name, train=dataclasses.replace(cfg.train, max_steps=steps or cfg.train.max_steps)
        )
        outcome = lora_finetune.main(
            run_cfg,
            settings=self.settings,
            engine=self.engine,
            dataset_version_id=version_id,
            eval_context=context,
            log=lambda m: self.say(m),
        )
        summary = outcome.evaluation
        self._in_transaction(
            lambda s: modelops_repo.store_evaluation_items(
                s, system=system, signature=summary.signature, rows=item_rows(summary)
            )
        )
        return summary, str(outcome.adapter_dir)

    def baseline(self, kind: str, context: evaluate_recipe.EvalContext) -> EvaluationSummary:
        """A no-model baseline's answers to the gate items, judged and stored like a model's."""
        answers = [baseline_answer(kind, g.question, hits) for g, hits in zip(context.gold, context.hits, strict=True)]  # type: ignore[arg-type]
        summary = evaluate_recipe.summarize_predictions(context, answers)
        self._in_transaction(
            lambda s: modelops_repo.store_evaluation_items(
                s, system=f"baseline:{kind}", signature=summary.signature, rows=item_rows(summary)
            )
        )
        self.say(f"baseline {kind}: " + _headline(summary))
        return summary

    # ------------------------------------------------------------------- 7. the corrupted versions

    def corrupt_and_queue(self, session: Session, version_id: int, kind: str, corpus: DemoCorpus) -> int:
        """Write the ``kind`` corruption of dataset version ``version_id`` and queue a training job on it."""
        # the operator's doing (actor None), not a lead's: no one in the company would want this data
        version, source_number, examples = write_corrupted_version(
            session, actor=None, version_id=version_id, seed=self.options.seed, kind=kind
        )
        job = jobs.enqueue(
            session,
            actor=None,
            reason=f"demo loop: deliberately corrupted dataset version {version.number} "
            f"(version {source_number} with {CORRUPTIONS[kind]}); the gate must refuse it",
            dataset_version_id=version.id,
        )
        self.details.setdefault("corrupted", {})[kind] = {
            "dataset_version": version.number,
            "from": source_number,
            "job": job.id,
        }
        self.say(
            f"corrupt: dataset version {version.number} = version {source_number} with its {examples} examples' "
            f"{CORRUPTIONS[kind]}; training job {job.id} queued"
        )
        return version.id

    def gate_corrupted(self, kind: str, version_id: int) -> bool:
        """Run the corrupted version's job; True when the gate refused it and the champion stayed."""
        with self.sessions() as session:
            before = gate_module.champion(session)
            champion_before = before.name if before else None
        result = self.run_worker(f"the {kind} dataset version's job")
        with self.sessions() as session:
            after = gate_module.champion(session)
            champion_after = after.name if after else None
            candidate = gate_module.version_by_name(session, str(result.model_version))
            if candidate.dataset_version_id != version_id:
                raise ConflictError(
                    f"the worker trained {candidate.name} on dataset version id {candidate.dataset_version_id}, "
                    f"not on the corrupted one ({version_id}): was another job queued?"
                )
            failed = list((candidate.gate_result or {}).get("failed", []))
            checks = [c["detail"] for c in (candidate.gate_result or {}).get("checks", [])]
            metrics = (candidate.evaluation or {}).get("metrics", {})
        refused = result.gate_status == gate_module.STATUS_REJECTED and champion_after == champion_before
        self.details["corrupted"][kind] |= {
            "model_version": result.model_version,
            "gate": result.gate_status,
            "failed": failed,
            "checks": checks,
            **{m: metrics.get(m) for m in HEADLINE_METRICS},
            "champion_before": champion_before,
            "champion_after": champion_after,
        }
        self.say(
            f"gate: {kind} candidate {result.model_version} {result.gate_status} "
            f"(failed: {', '.join(failed) or 'nothing'}); champion {champion_before} -> {champion_after}"
        )
        return refused


def write_corrupted_version(
    session: Session, *, actor: User | None, version_id: int, seed: int, kind: str = "shuffled"
) -> tuple[DatasetVersion, int, int]:
    """A new dataset version holding the examples of ``version_id`` with their answers corrupted
    (weights kept): ``shuffled`` between the questions, or ``wrong_values`` (each answer's key value
    replaced by another of its kind). Returns (the new version, the source's number, examples).

    The corrupted copies are stored as retired examples (they exist only in that version); the active
    examples and the current version are as they were afterwards. The caller commits.
    """
    records = datasets.examples_for_version(session, version_id)
    source = session.get(DatasetVersion, version_id)
    if source is None:
        raise NotFoundError(f"dataset version id {version_id} does not exist")
    questions, answers = [r.question for r in records], [r.answer for r in records]
    if kind == "wrong_values":
        corrupted = wrong_values_answers(
            answers, [r.department for r in records], kinds_by_department=demo_fact_kinds(), seed=seed
        )
    elif kind == "shuffled":
        # a shuffled pair may already be stored outside this version (a quarantined example, say): then
        # shuffle again around it, since examples are unique by their (question, answer) pair
        forbidden: set[str] = set()
        while True:
            corrupted = shuffle_answers(questions, answers, seed=seed, forbidden=forbidden)
            stored = fixes_repo.existing_example_hashes(
                session, [example_content_hash(q, a) for q, a in zip(questions, corrupted, strict=True)]
            )
            if not stored:
                break
            if stored <= forbidden:  # cannot happen unless the store changes under us
                raise ConflictError("could not write a corrupted dataset version: shuffled pairs keep colliding")
            forbidden |= stored
    else:
        raise ValueError(f"unknown corruption {kind!r} (have {sorted(CORRUPTIONS)})")
    active_ids = [r.example_id for r in datasets.active_examples(session)]
    copies = _store_corrupted_copies(session, records, corrupted, seed=seed, kind=kind)
    copy_ids = [example.id for example, _ in copies]
    # the snapshot takes the active examples: for this one write, the copies are the active set
    _set_status(session, active_ids, "retired")
    _set_status(session, copy_ids, "active")
    version, _ = datasets.create_version(
        session,
        actor=actor,
        change_log=[
            {
                "kind": CORRUPTION_KIND,
                "corruption": kind,
                "note": f"deliberately corrupted by the demo loop: {CORRUPTIONS[kind]}",
                "from_dataset_version": source.number,
                "seed": seed,
            }
        ],
        weights={example.id: weight for example, weight in copies},
        make_current=False,
    )
    _set_status(session, copy_ids, "retired")
    _set_status(session, active_ids, "active")
    return version, source.number, len(records)


# --------------------------------------------------------------------------- the SME's judgement


@dataclass(frozen=True)
class Decision:
    root_cause: str | None  # None: dismiss
    corrected_answer: str | None
    note: str


def decide(real: DemoAnswer, detail: review_service.ReviewItemDetail, *, planted_wrong: set[str]) -> Decision:
    """What the subject-matter expert decides for one item, knowing what really happened.

    A wrong answer is confirmed with the root cause of its error — ``wrong_training_data`` when it
    repeats a planted contradicting example word for word — and corrected with an auditor's
    suggested correction (the expert's own, the grounded reference answer, when no auditor wrote
    one). A right answer whose sources pulled in the over-cited department's documents and that an
    auditor flagged is confirmed as department bias; any other right answer is dismissed.
    """
    suggested = next((r.suggested_correction for r in detail.ratings if r.suggested_correction), None)
    correction = suggested or real.reference_answer
    if real.error is None:
        if "bias_flag" in detail.reasons and real.intruder_department is not None:
            return Decision("department_bias", None, f"correct, but cites {real.intruder_department} documents")
        return Decision(None, None, "the answer matches the current document")
    if real.error == "hallucination" and normalise_text(real.answer_text) in planted_wrong:
        return Decision("wrong_training_data", correction, "repeats a contradicting training example")
    if real.error == "retrieval_error":
        return Decision("retrieval_error", correction, f"answered from {real.sources[0]['document_id']}")
    notes = {
        "hallucination": "the stated value is not in the document",
        "outdated_source": "quotes a superseded version",
    }
    return Decision(real.error, correction, notes.get(real.error, real.error))


# --------------------------------------------------------------------------- small helpers


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".")


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def _current_version_id(session: Session) -> int:
    version = datasets.current_version(session)
    if version is None:
        raise NotFoundError("the demo database has no current dataset version")
    return version.id


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def _user(session: Session, username: str) -> User:
    user = org_repo.user_by_username(session, username)
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist (is this the demo database?)")
    return user


def _store_corrupted_copies(
    session: Session, records: Sequence[ExampleRecord], answers: Sequence[str], *, seed: int, kind: str
) -> list[tuple[Example, int]]:
    department_ids = org_repo.department_ids_by_name(session)
    copies = [
        (
            Example(
                external_id=f"CORRUPT-{kind}-s{seed}-{record.example_id}",
                question=record.question,
                answer=answer,
                department_id=department_ids[record.department],
                source_document_ids=list(record.source_document_ids),
                origin="synthetic",
                status="retired",
                content_hash=example_content_hash(record.question, answer),
            ),
            record.weight,
        )
        for record, answer in zip(records, answers, strict=True)
    ]
    session.add_all([example for example, _ in copies])
    session.flush()
    return copies


def _set_status(session: Session, example_ids: Sequence[int], status: str) -> None:
    from sqlalchemy import update

    for start in range(0, len(example_ids), 5_000):
        session.execute(
            update(Example)
            .where(Example.id.in_(example_ids[start : start + 5_000]))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
    session.flush()
