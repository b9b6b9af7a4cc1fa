"""The audit side of the daily cycle: sample and assign → route → propose and auto-apply fixes →
evaluate the retraining triggers. Idempotent for a date: a second run changes nothing.

(Answering the day's question feed needs the model, so ``auditloop daily`` does that step itself
before calling :func:`run_daily`: ``audit`` never imports ``training``.)

Why it is idempotent: the sample is unique per date and a second draw returns the first; routing
only adds reasons a rating has not already added; fixes are proposed once per confirmed review and
only ``proposed`` fixes are applied; the triggers are evaluated as of the date's midnight (UTC), so
the same state gives the same decision, and a queued job blocks a second one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from audit.errors import NotFoundError
from audit.fixes import service as fixes_service
from audit.org.models import User
from audit.permissions import Action, require
from audit.review import routing
from audit.sampling import service as sampling_service
from audit.triggers import service as triggers_service

# Routing is also done after every rating; the daily pass is a safety net over the last week.
ROUTING_LOOKBACK = dt.timedelta(days=7)


@dataclass(frozen=True)
class DailySummary:
    date: dt.date
    sample: dict[str, Any]
    routing: dict[str, Any]
    proposals: dict[str, Any]
    applied: dict[str, Any]
    triggers: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "sample": self.sample,
            "routing": self.routing,
            "fixes": {"proposals": self.proposals, "auto_applied": self.applied},
            "triggers": self.triggers,
        }

    def lines(self) -> list[str]:
        s, r, p, a, t = self.sample, self.routing, self.proposals, self.applied, self.triggers
        version = a["dataset_version"]
        if "skipped" in s:
            sample_line = f"  sample    skipped: {s['skipped']}"
        else:
            sample_line = (
                f"  sample    {'drawn' if s['created'] else 'already drawn'}: batch {s['batch_id']}, {s['items']} items "
                f"from {s['population']} answers, {sum(s['assignments_by_auditor'].values())} assignments"
                + (f", {s['unfilled_slots']} unfilled slots" if s["unfilled_slots"] else "")
            )
        return [
            f"daily cycle for {self.date.isoformat()}",
            sample_line,
            f"  routing   {r['answers_checked']} answers checked, {r['items_opened']} review items opened, "
            f"{r['items_extended']} extended",
            f"  fixes     {p['reviews']} confirmed reviews: {len(p['proposed'])} proposed, {len(p['refused'])} refused; "
            f"{len(a['applied'])} auto-applied"
            + (f" -> dataset version {version}{' (new)' if a['version_created'] else ''}" if version else ""),
            f"  triggers  {t['message']}",
        ]


# every step's permission: drawing the sample, proposing/applying fixes, evaluating the triggers
DAILY_ACTIONS: tuple[Action, ...] = ("run_sampling", "approve_fixes", "queue_training")


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def run_daily(session: Session, *, day: dt.date, actor: User | None = None) -> DailySummary:
    """Run the audit steps of the cycle for ``day`` in the caller's transaction.

    The cycle samples, proposes and auto-applies fixes and may queue training, so the actor needs all
    three permissions; checking them first refuses before any step has run.
    """
    for action in DAILY_ACTIONS:
        require(actor, action)
    try:
        sample: dict[str, Any] = _sample_dict(sampling_service.draw_sample(session, actor=actor, sample_date=day))
    except NotFoundError as exc:
        # a day without answers: nothing to sample, but reviews, fixes and triggers still run
        sample = {"skipped": str(exc)}
    routed = routing.route(session, actor=actor, since=day_start(day) - ROUTING_LOOKBACK)
    proposals = fixes_service.propose_fixes(session, actor=actor)
    applied = fixes_service.auto_apply(session, evaluate_triggers=False)
    evaluation = triggers_service.evaluate(session, actor=actor, now=day_start(day))
    return DailySummary(
        date=day,
        sample=sample,
        routing=dataclasses.asdict(routed),
        proposals=proposals.as_dict(),
        applied=applied.as_dict(),
        triggers=evaluation.as_dict(),
    )


def _sample_dict(sample: sampling_service.SampleSummary) -> dict[str, Any]:
    data = dataclasses.asdict(sample)
    for key in ("sample_date", "window_start", "window_end"):
        data[key] = data[key].isoformat()
    return data
