"""The job queue and the worker: atomic claims, heartbeats, reclaiming after a crash, retries, and the
all-or-nothing final step (the champion changes only when a job fully succeeded)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.base import utcnow
from audit.db import make_engine, make_session_factory
from audit.errors import ConflictError, PermissionDenied
from audit.modelops.models import ModelVersion, TrainingJob
from audit.settings import Settings
from tests import factories
from training import gate, jobs
from training.recipes import evaluate as evaluate_recipe
from training.tracking import MlflowTracker, TrackingUnavailable, resolve_tracking_uri
from training.worker import Worker, WorkerOptions, job_config, next_version_name

torch.set_num_threads(2)
REPO_ROOT = Path(__file__).resolve().parents[2]

# Stored with each test job: a few steps of the small tiny model.
FAST_JOB_CONFIG = {
    "train.max_steps": 2,
    "train.batch_size": 4,
    "train.log_every": 1,
    "lora.r": 4,
    "lora.alpha": 8,
    "dataset.max_seq_len": 256,
    "dataset.max_prompt_tokens": 192,
    "evaluation.max_new_tokens": 8,
    "evaluation.bootstrap_resamples": 200,
}


# --------------------------------------------------------------------------- the queue


def test_one_active_job_at_a_time(session: Session) -> None:
    company = factories.training_company(session, departments=("HR",), examples_per_topic=1)
    job = jobs.enqueue(session, actor=None, reason="fixes applied")
    assert (job.status, job.active, job.attempts) == ("queued", True, 0)
    assert job.dataset_version_id == company["dataset_version"].id
    with pytest.raises(ConflictError, match=f"job {job.id} is queued"):
        jobs.enqueue(session, actor=None, reason="again")
    with pytest.raises(PermissionDenied):
        jobs.enqueue(session, actor=factories.user(session, role="auditor"), reason="mine")


def test_claim_marks_running_and_counts_the_attempt(session: Session) -> None:
    factories.training_company(session, departments=("HR",), examples_per_topic=1)
    job = jobs.enqueue(session, actor=None, reason="test", config={"train.max_steps": 5})
    claimed = jobs.claim_next(session, worker_id="w1")
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1
    assert claimed.config == {"train.max_steps": 5}
    assert jobs.claim_next(session, worker_id="w2") is None  # nothing else is queued
    session.refresh(job)
    assert (job.status, job.worker_id, job.active) == ("running", "w1", True)


def test_stale_running_job_is_requeued_then_failed_when_out_of_attempts(session: Session) -> None:
    long_ago = utcnow() - dt.timedelta(minutes=10)
    job = factories.training_job(
        session, status="running", attempts=1, max_attempts=2, worker_id="dead", heartbeat_at=long_ago
    )
    assert jobs.reclaim_stale(session, timeout_seconds=60) == [(job.id, "queued")]
    session.refresh(job)
    assert (job.status, job.worker_id, job.attempts) == ("queued", None, 1)
    assert "sent no heartbeat" in job.error

    claimed = jobs.claim_next(session, worker_id="w2")
    assert claimed is not None and claimed.attempts == 2
    session.refresh(job)
    job.heartbeat_at = long_ago
    session.flush()
    assert jobs.reclaim_stale(session, timeout_seconds=60) == [(job.id, "failed")]
    session.refresh(job)
    assert (job.status, job.active) == ("failed", None) and "no attempts left" in job.error


def test_a_fresh_heartbeat_is_not_reclaimed(session: Session) -> None:
    factories.training_job(session, status="running", attempts=1, worker_id="alive", heartbeat_at=utcnow())
    assert jobs.reclaim_stale(session, timeout_seconds=60) == []


def test_failures_retry_until_attempts_run_out_and_permanent_ones_do_not(session: Session) -> None:
    job = factories.training_job(session, max_attempts=2)
    jobs.claim_next(session, worker_id="w")
    assert jobs.finish_failure(session, job_id=job.id, worker_id="w", error="MLflow down", retry=True) == "queued"
    jobs.claim_next(session, worker_id="w")
    assert jobs.finish_failure(session, job_id=job.id, worker_id="w", error="MLflow down", retry=True) == "failed"
    session.refresh(job)
    assert (job.status, job.attempts, job.active, job.error) == ("failed", 2, None, "MLflow down")

    other = factories.training_job(session, max_attempts=3)
    jobs.claim_next(session, worker_id="w")
    assert jobs.finish_failure(session, job_id=other.id, worker_id="w", error="bad config", retry=False) == "failed"


def test_a_worker_that_lost_its_job_cannot_record_a_result(session: Session) -> None:
    job = factories.training_job(session)
    jobs.claim_next(session, worker_id="w1")
    version = factories.model_version(session)
    with pytest.raises(jobs.JobLost):
        jobs.finish_success(session, job_id=job.id, worker_id="someone-else", model_version_id=version.id)
    assert jobs.finish_failure(session, job_id=job.id, worker_id="someone-else", error="x", retry=True) is None
    jobs.finish_success(session, job_id=job.id, worker_id="w1", model_version_id=version.id)
    session.refresh(job)
    assert (job.status, job.active, job.model_version_id) == ("succeeded", None, version.id)


def test_only_a_queued_job_can_be_cancelled(session: Session) -> None:
    job = factories.training_job(session)
    jobs.cancel(session, actor=None, job_id=job.id)
    assert (job.status, job.active) == ("cancelled", None)
    with pytest.raises(ConflictError, match="only a queued job"):
        jobs.cancel(session, actor=None, job_id=job.id)


def test_heartbeat_refreshes_only_the_owners_job(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        job = factories.training_job(
            session, status="running", attempts=1, worker_id="w1", heartbeat_at=utcnow() - dt.timedelta(hours=1)
        )
        session.commit()
        job_id = job.id
    with engine.connect() as connection:
        assert jobs.heartbeat(connection, job_id=job_id, worker_id="w1") is True
        assert jobs.heartbeat(connection, job_id=job_id, worker_id="w2") is False
    with make_session_factory(engine)() as session:
        assert session.get(TrainingJob, job_id).heartbeat_at > utcnow() - dt.timedelta(minutes=1)
    engine.dispose()


def _race_to_claim(url: str, workers: int) -> list[int | None]:
    engine = make_engine(url, pool_size=workers)
    with make_session_factory(engine)() as session:
        factories.training_job(session)
        session.commit()
    barrier = threading.Barrier(workers)
    results: list[int | None] = []
    lock = threading.Lock()

    def claim(worker_id: str) -> None:
        with make_session_factory(engine)() as session:
            barrier.wait()
            claimed = jobs.claim_next(session, worker_id=worker_id)
            session.commit()
        with lock:
            results.append(claimed.id if claimed else None)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    return results


@pytest.mark.postgres
def test_two_workers_cannot_claim_the_same_job_on_postgresql(migrated_postgres_url: str) -> None:
    results = _race_to_claim(migrated_postgres_url, workers=6)
    assert sum(r is not None for r in results) == 1


def test_two_workers_cannot_claim_the_same_job_on_sqlite(sqlite_url: str) -> None:
    results = _race_to_claim(sqlite_url, workers=6)
    assert sum(r is not None for r in results) == 1


def test_next_version_name_counts_past_the_largest(session: Session) -> None:
    assert next_version_name(session) == "v1"
    factories.model_version(session, "v0")
    factories.model_version(session, "v7")
    factories.model_version(session, "prod-2026-11")
    assert next_version_name(session) == "v8"


def test_job_config_layers_job_overrides_then_operator_overrides() -> None:
    job = jobs.ClaimedJob(1, "w", 1, 3, None, {"train.max_steps": 9, "lora": {"r": 4}}, "test")
    cfg = job_config(job, WorkerOptions(overrides=("train.max_steps=2",)))
    assert (cfg.train.max_steps, cfg.lora.r) == (2, 4)


def test_model_train_queue_only_and_model_jobs(sqlite_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from app.cli.main import cli

    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        factories.training_company(session, departments=("HR",), examples_per_topic=1)
        session.commit()
    engine.dispose()
    env = {"AUDITLOOP_DATABASE_URL": sqlite_url, "AUDITLOOP_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    queued = runner.invoke(
        cli, ["model", "train", "--queue-only", "--set", "train.max_steps=5", "--reason", "HR fixes", "--json"], env=env
    )
    assert queued.exit_code == 0, queued.output
    job_id = json.loads(queued.output)["job"]
    second = runner.invoke(cli, ["model", "train", "--queue-only"], env=env)
    assert second.exit_code == 1 and f"job {job_id} is queued" in second.output
    bad = runner.invoke(cli, ["model", "train", "--set", "train.max_steps=zero"], env=env)
    assert bad.exit_code == 1 and "train.max_steps: expected an integer" in bad.output
    listed = runner.invoke(cli, ["model", "jobs", "--json"], env=env)
    (job,) = json.loads(listed.output)
    assert (job["id"], job["status"], job["reason"], job["attempts"]) == (job_id, "queued", "HR fixes", "0/3")
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        assert session.get(TrainingJob, job_id).config == {"train.max_steps": 5}
    engine.dispose()


# --------------------------------------------------------------------------- the worker, in process


@pytest.fixture
def company_db(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        factories.training_company(session)
        session.commit()
    yield engine
    engine.dispose()


def _settings(tmp_path: Path, url: str, base_model: Path, mlflow_uri: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        mlflow_tracking_uri=mlflow_uri,
        base_model=str(base_model),
        demo_mode=False,
        secret_key_file=None,
    )


def _queue(engine: Engine, config: dict | None = None, max_attempts: int = 3) -> int:
    with make_session_factory(engine)() as session:
        job = jobs.enqueue(
            session, actor=None, reason="test", config=config or FAST_JOB_CONFIG, max_attempts=max_attempts
        )
        session.commit()
        return job.id


def _job(engine: Engine, job_id: int) -> TrainingJob:
    with make_session_factory(engine)() as session:
        job = session.get(TrainingJob, job_id)
        session.expunge(job)
        return job


def _champion_name(engine: Engine) -> str | None:
    with make_session_factory(engine)() as session:
        champion = gate.champion(session)
        return champion.name if champion else None


def test_mlflow_unreachable_fails_fast_and_the_job_is_retried(
    company_db: Engine, sqlite_url: str, tmp_path: Path
) -> None:
    with make_session_factory(company_db)() as session:
        factories.model_version(session, "v0", alias="champion")
        session.commit()
    job_id = _queue(company_db, max_attempts=2)
    # nothing listens on port 9 (discard): the tracking server is down
    settings = _settings(tmp_path, sqlite_url, tmp_path / "no-model", "http://127.0.0.1:9")
    worker = Worker(settings, company_db, WorkerOptions(worker_id="w1", heartbeat_seconds=5), log=lambda _m: None)
    result = worker.run_one()
    assert result is not None and result.status == "queued"
    assert "MLflow tracking server http://127.0.0.1:9 is not reachable" in result.error
    job = _job(company_db, job_id)
    assert (job.status, job.attempts, job.active) == ("queued", 1, True)
    assert worker.run_one().status == "failed"  # second and last attempt
    job = _job(company_db, job_id)
    assert (job.status, job.attempts, job.active) == ("failed", 2, None)
    assert _champion_name(company_db) == "v0"


class EndRunFails(MlflowTracker):
    """The tracking store goes away right at the end: after training, before the commit."""

    def end_run(self, status: str = "FINISHED") -> None:
        if status == "FINISHED":
            raise TrackingUnavailable("MLflow (test) failed to close the run: connection reset")
        super().end_run(status)


@pytest.mark.slow
def test_a_job_succeeds_only_as_a_whole(
    company_db: Engine, sqlite_url: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    mlflow_uri = factories.mlflow_store(tmp_path / "mlruns")
    settings = _settings(tmp_path, sqlite_url, tiny_model_dir, mlflow_uri)
    job_id = _queue(company_db)
    client = MlflowClient(tracking_uri=resolve_tracking_uri(mlflow_uri)[0])

    # ---- attempt 1: everything worked except the very last MLflow call → nothing is recorded
    failing = Worker(
        settings,
        company_db,
        WorkerOptions(worker_id="w1"),
        log=lambda _m: None,
        tracker_factory=lambda cfg: EndRunFails(mlflow_uri, cfg.tracking.experiment),
    )
    result = failing.run_one()
    assert result is not None and result.status == "queued" and "connection reset" in result.error
    assert _champion_name(company_db) is None
    with make_session_factory(company_db)() as session:
        assert session.scalars(select(ModelVersion)).all() == []
    (registered,) = client.search_registered_models()
    assert registered.aliases == {}  # the alias moved by the gate was put back

    # ---- attempt 2: the whole job → model version, champion (no champion before), registry alias
    worker = Worker(settings, company_db, WorkerOptions(worker_id="w2"), log=lambda _m: None)
    result = worker.run_one()
    assert result is not None and result.status == "succeeded", result.error
    job = _job(company_db, job_id)
    assert (job.status, job.attempts, job.active, job.worker_id) == ("succeeded", 2, None, "w2")
    with make_session_factory(company_db)() as session:
        version = session.get(ModelVersion, job.model_version_id)
        assert version.name == "v1" and version.alias == "champion"
        assert Path(version.adapter_uri, "adapter_config.json").is_file()
        assert version.dataset_version_id == job.dataset_version_id
        assert version.hyperparameters["lora.r"] == 4
        assert version.evaluation["n"] == 12 and "rougeL" in version.evaluation["metrics"]
        assert version.gate_result["status"] == "promoted"
        assert client.get_model_version_by_alias("auditloop-assistant", "champion").run_id == version.mlflow_run_id
        assert client.get_run(version.mlflow_run_id).info.status == "FINISHED"
        actions = set(session.scalars(select(AuditLogEntry.action)))
        assert {"training.claimed", "training.retry", "training.succeeded", "model.gate"} <= actions

    # ---- `auditloop model evaluate v1`: the stored evaluation is reused (same gold set and settings)
    messages: list[str] = []
    report = evaluate_recipe.main(
        job_config(jobs.ClaimedJob(job_id, "w", 1, 3, None, FAST_JOB_CONFIG, "t"), WorkerOptions()),
        candidate="v1",
        settings=settings,
        engine=company_db,
        log=messages.append,
    )
    assert any("reusing the stored evaluation of v1" in m for m in messages)
    assert report["candidate_metrics"] == version.evaluation["metrics"] and report["against"] is None


# --------------------------------------------------------------------------- a worker killed mid-job


def _worker_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "worker", "--once", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_a_killed_worker_s_job_is_reclaimed_by_another_and_the_champion_is_untouched(
    company_db: Engine, sqlite_url: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with make_session_factory(company_db)() as session:
        champion = factories.model_version(session, "v0", alias="champion")
        champion.base_model = str(tiny_model_dir)
        session.commit()
    job_id = _queue(company_db, config={**FAST_JOB_CONFIG, "gate.require_approval": True})
    env = {
        **os.environ,
        "AUDITLOOP_DATABASE_URL": sqlite_url,
        "AUDITLOOP_DATA_DIR": str(tmp_path / "data"),
        "AUDITLOOP_BASE_MODEL": str(tiny_model_dir),
        "AUDITLOOP_MLFLOW_TRACKING_URI": factories.mlflow_store(tmp_path / "mlruns"),
    }
    beats = ("--heartbeat-seconds", "0.5", "--heartbeat-timeout", "4")

    # ---- worker A: a training run far too long to finish; killed once it is training
    slow = _worker_process(env, *beats, "--set", "train.max_steps=100000")
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            job = _job(company_db, job_id)
            if job.status == "running" and job.heartbeat_at > job.claimed_at:
                break
            assert slow.poll() is None, slow.stdout.read() if slow.stdout else ""
            time.sleep(0.5)
        else:
            pytest.fail("worker A never started the job")
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=30)
    finally:
        if slow.poll() is None:
            slow.kill()
    killed = _job(company_db, job_id)
    assert (killed.status, killed.attempts) == ("running", 1)
    assert _champion_name(company_db) == "v0"

    # ---- worker B: after the timeout it takes the job over and finishes it (short run)
    time.sleep(4.5)
    fast = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "worker", "--once", *beats, "--set", "train.max_steps=2", "--json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fast.returncode == 0, fast.stderr[-3000:]
    done = _job(company_db, job_id)
    assert (done.status, done.attempts, done.active) == ("succeeded", 2, None)
    assert done.worker_id != killed.worker_id
    with make_session_factory(company_db)() as session:
        version = session.get(ModelVersion, done.model_version_id)
        # approval required: the passing or failing candidate waits as challenger; v0 stays champion
        assert version.alias == "challenger"
        reclaimed = session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "training.reclaimed")).one()
        assert reclaimed.details["lost_worker"] == killed.worker_id
    assert _champion_name(company_db) == "v0"
