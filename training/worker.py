"""The training worker: claims queued jobs, trains, evaluates, applies the gate, records the outcome.

    auditloop worker [--once] [--poll-seconds N] [--heartbeat-seconds N] [--heartbeat-timeout N]

One job at a time: reclaim jobs whose worker went silent → claim → train (the LoRA recipe) →
evaluate the champion on the same gold set → gate → one final transaction that marks the job
succeeded, writes the ``model_versions`` row and moves the champion alias (the registry alias
moves inside that transaction, before the commit). Anything failing before the commit rolls all
of it back: the champion changes only when a job fully succeeded.

While a job runs, a heartbeat thread with its own database connection refreshes
``training_jobs.heartbeat_at``. A worker killed mid-job stops beating; once its heartbeat is older
than the timeout another worker requeues the job (attempts counted, capped by ``max_attempts``).
A stalled worker that finds its job reclaimed stops training and records nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.db import make_session_factory
from audit.errors import AuditloopError, ConfigurationError, NotFoundError, PermissionDenied, ValidationError
from audit.modelops import repository as modelops_repo
from audit.modelops.models import ModelVersion
from audit.settings import Settings
from training import gate as gate_module
from training import jobs
from training.config import RecipeConfig, load_config, merge, parse_overrides
from training.evaluation import item_rows
from training.grounding import dataset_grounding
from training.recipes import evaluate as evaluate_recipe
from training.recipes import lora_finetune
from training.tracking import MlflowRegistry, MlflowTracker, Tracker

Log = Callable[[str], None]
# Errors that another attempt cannot fix: a bad config, a missing dataset, gold leakage.
PERMANENT_ERRORS = (ValidationError, ConfigurationError, NotFoundError, PermissionDenied)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerOptions:
    worker_id: str = field(default_factory=default_worker_id)
    poll_seconds: float = 10.0
    heartbeat_seconds: float = 30.0
    heartbeat_timeout_seconds: float = 300.0
    once: bool = False
    config_path: str | None = None
    overrides: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.poll_seconds <= 0 or self.heartbeat_seconds <= 0:
            raise ValidationError("--poll-seconds and --heartbeat-seconds must be positive")
        if self.heartbeat_timeout_seconds <= self.heartbeat_seconds * 2:
            raise ValidationError(
                f"--heartbeat-timeout ({self.heartbeat_timeout_seconds:g} s) must exceed twice "
                f"--heartbeat-seconds ({self.heartbeat_seconds:g} s), or live workers lose their jobs"
            )


@dataclass(frozen=True)
class JobResult:
    job_id: int
    status: str  # succeeded | queued (will be retried) | failed | lost
    model_version: str | None = None
    gate_status: str | None = None
    error: str | None = None


class Heartbeat(threading.Thread):
    """Refreshes the job's heartbeat every ``interval`` seconds on its own connection; sets
    ``lost`` when the job is no longer this worker's."""

    def __init__(self, engine: Engine, *, job_id: int, worker_id: str, interval: float, log: Log) -> None:
        super().__init__(name=f"heartbeat-job-{job_id}", daemon=True)
        self.engine = engine
        self.job_id = job_id
        self.worker_id = worker_id
        self.interval = interval
        self.log = log
        self.lost = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as connection:
            while not self._stop_event.wait(self.interval):
                try:
                    alive = jobs.heartbeat(connection, job_id=self.job_id, worker_id=self.worker_id)
                except Exception as exc:  # a database hiccup: try again next beat, the timeout is generous
                    with contextlib.suppress(Exception):
                        connection.rollback()
                    self.log(f"worker: heartbeat for job {self.job_id} failed ({exc}); retrying")
                    continue
                if not alive:
                    self.log(f"worker: job {self.job_id} was reclaimed by another worker; stopping it here")
                    self.lost.set()
                    return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def next_version_name(session: Session) -> str:
    """``v<N+1>`` for the largest N among names of the form vN (v0 is the demo's first champion)."""
    numbers = [
        int(m.group(1)) for name in session.scalars(select(ModelVersion.name)) if (m := re.fullmatch(r"v(\d+)", name))
    ]
    return f"v{max(numbers, default=0) + 1}"


def job_config(job: jobs.ClaimedJob, options: WorkerOptions) -> RecipeConfig:
    """The default recipe config, then the job's stored overrides, then the worker's own."""
    stored = merge({}, job.config) if job.config else {}
    operator = parse_overrides(options.overrides)
    combined = merge(stored, operator)
    return load_config(options.config_path, combined, override_source=f"training job {job.id} config")


class Worker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        options: WorkerOptions,
        *,
        log: Log = _stderr,
        tracker_factory: Callable[[RecipeConfig], Tracker] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.options = options
        self.log = log
        self.sessions = make_session_factory(engine)
        self.stopping = threading.Event()
        self.tracker_factory = tracker_factory or (
            lambda cfg: MlflowTracker(
                cfg.tracking.tracking_uri or settings.mlflow_tracking_uri, cfg.tracking.experiment
            )
        )

    # ----------------------------------------------------------------------- the loop

    def run(self) -> list[JobResult]:
        """Work until stopped (or, with ``once``, until one job was handled or none was waiting)."""
        results: list[JobResult] = []
        self.log(f"worker {self.options.worker_id}: polling every {self.options.poll_seconds:g} s")
        while not self.stopping.is_set():
            result = self.run_one()
            if result is not None:
                results.append(result)
            if self.options.once:
                break
            if result is None:
                self.stopping.wait(self.options.poll_seconds)
        return results

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish gracefully — the running job stops at the next step and is requeued."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            self.log(f"worker: signal {signum}, stopping after this step")
            self.stopping.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def reclaim(self) -> list[tuple[int, str]]:
        with self.sessions() as session:
            changed = jobs.reclaim_stale(session, timeout_seconds=self.options.heartbeat_timeout_seconds)
            session.commit()
        for job_id, status in changed:
            self.log(
                f"worker: job {job_id} had no heartbeat for {self.options.heartbeat_timeout_seconds:g} s → {status}"
            )
        return changed

    def claim(self) -> jobs.ClaimedJob | None:
        with self.sessions() as session:
            job = jobs.claim_next(session, worker_id=self.options.worker_id)
            session.commit()
        return job

    def run_one(self) -> JobResult | None:
        self.reclaim()
        job = self.claim()
        if job is None:
            return None
        self.log(f"worker: claimed job {job.id} (attempt {job.attempts} of {job.max_attempts}): {job.trigger_reason}")
        return self.run_job(job)

    # ----------------------------------------------------------------------- one job

    def run_job(self, job: jobs.ClaimedJob) -> JobResult:
        heartbeat = Heartbeat(
            self.engine,
            job_id=job.id,
            worker_id=self.options.worker_id,
            interval=self.options.heartbeat_seconds,
            log=self.log,
        )
        heartbeat.start()
        tracker: Tracker | None = None
        outcome: lora_finetune.TrainingOutcome | None = None
        try:
            cfg = job_config(job, self.options)
            tracker = self.tracker_factory(cfg)
            outcome = lora_finetune.main(
                cfg,
                settings=self.settings,
                engine=self.engine,
                tracker=tracker,
                dataset_version_id=job.dataset_version_id,
                should_stop=lambda: heartbeat.lost.is_set() or self.stopping.is_set(),
                end_run=False,
                log=self.log,
            )
            if heartbeat.lost.is_set():
                raise jobs.JobLost(f"training job {job.id} was reclaimed while it ran")
            result = self._evaluate_gate_and_record(job, cfg, outcome, tracker)
            self.log(f"worker: job {job.id} succeeded → model version {result.model_version} ({result.gate_status})")
            return result
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return self._record_failure(job, exc, tracker, outcome, lost=heartbeat.lost.is_set())
        finally:
            heartbeat.stop()

    def _evaluate_gate_and_record(
        self, job: jobs.ClaimedJob, cfg: RecipeConfig, outcome: lora_finetune.TrainingOutcome, tracker: Tracker
    ) -> JobResult:
        context = outcome.eval_context
        # ---- the champion on the same gold set (its stored evaluation is reused when it matches)
        with self.sessions() as session:
            champion = gate_module.champion(session)
            grounding = dataset_grounding(session, outcome.dataset_version_id)
            session.expunge_all()
        champion_summary = None
        if champion is not None:
            champion_summary = evaluate_recipe.evaluate_version(
                self.settings, champion, context, device=outcome.device, log=self.log
            )
        comparison = None
        if champion_summary is not None:
            comparison = gate_module.compare_for_gate(outcome.evaluation, champion_summary, cfg)
        decision = gate_module.decide(
            candidate=outcome.evaluation,
            champion=champion_summary,
            comparison=comparison,
            margins=gate_module.margins_from(cfg),
            grounding=grounding,
        )
        self.log(f"gate: {'pass' if decision.passed else 'fail'} " + "; ".join(c.detail for c in decision.checks))

        # ---- the run records the verdict before anything is committed (MLflow down → retry, no promotion)
        if comparison is not None:
            tracker.log_metrics(
                {
                    f"vs_champion_{metric}_{key}": getattr(result, key)
                    for metric, result in comparison.metric_differences.items()
                    for key in ("mean_difference", "ci_low", "ci_high")
                }
            )
        tracker.log_dict(
            {
                "decision": decision.to_dict(),
                "comparison": comparison.to_dict() if comparison else None,
                "champion": champion.name if champion else None,
                "training_data_grounding": grounding.to_dict(),
            },
            "gate.json",
        )

        # ---- one transaction: job succeeded + model version + gate verdict + alias move
        registry = MlflowRegistry(
            cfg.tracking.tracking_uri or self.settings.mlflow_tracking_uri, cfg.tracking.registered_model_name
        )
        alias_moved = False
        with self.sessions() as session:
            try:
                version = ModelVersion(
                    name=next_version_name(session),
                    base_model=outcome.base_model,
                    adapter_uri=str(outcome.adapter_dir),
                    dataset_version_id=outcome.dataset_version_id,
                    hyperparameters=outcome.hyperparameters,
                    mlflow_run_id=outcome.run_id,
                    evaluation={
                        **outcome.evaluation.to_dict(),
                        "gate_items": len(context.gold),
                        "gate_items_excluded_as_leaked": context.excluded_as_leaked,
                        "compared_with": champion.name if champion else None,
                        "comparison": comparison.to_dict() if comparison else None,
                        "training": outcome.metrics,
                    },
                    gate_result={},
                )
                session.add(version)
                session.flush()
                # every judged item, the candidate's and the champion's, as rows a reader can recompute
                modelops_repo.store_evaluation_items(
                    session,
                    system=version.name,
                    signature=context.signature,
                    rows=item_rows(outcome.evaluation),
                    model_version_id=version.id,
                )
                if champion is not None and champion_summary is not None:
                    modelops_repo.store_evaluation_items(
                        session,
                        system=champion.name,
                        signature=context.signature,
                        rows=item_rows(champion_summary),
                        model_version_id=champion.id,
                    )
                jobs.finish_success(
                    session, job_id=job.id, worker_id=self.options.worker_id, model_version_id=version.id
                )
                gate_status = gate_module.apply_decision(
                    session,
                    candidate=version,
                    decision=decision,
                    require_approval=cfg.gate.require_approval,
                    registry=registry,
                )
                alias_moved = gate_status == gate_module.STATUS_PROMOTED
                tracker.end_run("FINISHED")
                session.commit()
            except BaseException:
                session.rollback()
                if alias_moved:  # the registry moved but the database did not: point the alias back
                    with contextlib.suppress(Exception):
                        registry.set_champion(champion.mlflow_run_id if champion else None)
                raise
        return JobResult(job.id, "succeeded", version.name, gate_status)

    def _record_failure(
        self,
        job: jobs.ClaimedJob,
        exc: BaseException,
        tracker: Tracker | None,
        outcome: lora_finetune.TrainingOutcome | None,
        *,
        lost: bool,
    ) -> JobResult:
        message = f"{type(exc).__name__}: {exc}"
        if tracker is not None and tracker.run_id is not None:
            try:
                tracker.end_run("FAILED")
            except Exception as end_error:  # MLflow may be the reason we are here
                self.log(f"worker: could not mark the MLflow run failed ({end_error})")
        if outcome is not None:
            # no model version will point at this adapter: don't leave it behind
            shutil.rmtree(outcome.adapter_dir, ignore_errors=True)
        if lost or isinstance(exc, jobs.JobLost):
            # another worker owns the job now: record nothing
            self.log(f"worker: job {job.id} abandoned: {message}")
            return JobResult(job.id, "lost", error=message)
        retry = not isinstance(exc, PERMANENT_ERRORS)
        if not isinstance(exc, AuditloopError):  # unexpected: the operator wants the traceback in the log
            self.log("".join(traceback.format_exception(exc)).rstrip())
        with self.sessions() as session:
            status = jobs.finish_failure(
                session, job_id=job.id, worker_id=self.options.worker_id, error=message, retry=retry
            )
            session.commit()
        status = status or "lost"
        self.log(f"worker: job {job.id} attempt {job.attempts} failed ({message}) → {status}")
        return JobResult(job.id, status, error=message)


def run_worker(
    settings: Settings,
    engine: Engine,
    options: WorkerOptions,
    *,
    log: Log = _stderr,
    handle_signals: bool = True,
) -> list[JobResult]:
    """The ``auditloop worker`` entry point."""
    options.validate()
    worker = Worker(settings, engine, options, log=log)
    if handle_signals:
        worker.install_signal_handlers()
    return worker.run()


def describe(results: Iterable[JobResult]) -> list[dict[str, Any]]:
    return [
        {
            "job": r.job_id,
            "status": r.status,
            "model_version": r.model_version,
            "gate": r.gate_status,
            "error": r.error,
        }
        for r in results
    ]
