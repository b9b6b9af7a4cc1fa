"""Faults: the database dropping every connection mid-burst, the MLflow store going away, a full disk
while exporting. Afterwards nothing is half-written and nothing acknowledged is lost.

A worker SIGKILLed mid-training (job reclaimed, champion unchanged) is tested by the training side in
``tests/training/test_worker.py``; it is not repeated here.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from audit.db import is_transient, make_engine, make_session_factory, run_in_transaction
from audit.knowledge import datasets
from audit.knowledge import export as dataset_export
from audit.modelops.models import ModelVersion, TrainingJob
from audit.org.models import User
from audit.ratings import service as ratings_service
from audit.ratings.models import Rating
from audit.sampling import service as sampling_service
from audit.sampling.models import Assignment
from tests import factories as f
from tests.reliability.conftest import report
from tests.reliability.load_report import LoadPlan, scores_for, seed, stored_state

# ============================================================================ the database restarted


@dataclass
class Burst:
    """What the clients saw: every acknowledged submit (assignment id -> rating id), retries, errors."""

    acknowledged: dict[int, int] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def rate_everything(engine: Engine, auditor_id: int, burst: Burst, start: threading.Barrier) -> None:
    """One auditor's client: next item, submit (with a per-assignment idempotency key), retried on
    transient errors by ``run_in_transaction``; an acknowledgement is recorded only after commit."""
    factory = make_session_factory(engine)

    def on_retry(attempt: int, error: BaseException) -> None:
        with burst.lock:
            burst.retries.append(f"auditor {auditor_id} attempt {attempt}: {type(error).__name__}")

    try:
        start.wait()
        while True:
            item = run_in_transaction(
                factory,
                lambda s: sampling_service.next_item(s, actor=s.get_one(User, auditor_id)),
                retries=8,
                on_retry=on_retry,
            )
            if item is None:
                return
            assignment_id = item.assignment_id
            result = run_in_transaction(
                factory,
                lambda s, a=assignment_id: ratings_service.submit_rating(
                    s,
                    actor=s.get_one(User, auditor_id),
                    assignment_id=a,
                    idempotency_key=f"fault-{a}",
                    **scores_for(a, auditor_id),
                ),
                retries=8,
                on_retry=on_retry,
            )
            with burst.lock:
                burst.acknowledged[assignment_id] = result.rating.id
    except Exception as exc:  # surfaced to the user: the test fails on it
        with burst.lock:
            burst.errors.append(f"auditor {auditor_id}: {type(exc).__name__}: {exc}")


def terminate_backends(admin: Engine, database: str) -> int:
    """Drop every connection to ``database`` as a server restart would (the shared server stays up)."""
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        killed = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": database},
        ).scalar_one()
    return int(killed)


@pytest.mark.postgres
def test_connections_dropped_mid_burst_lose_nothing_acknowledged_and_half_write_nothing(
    migrated_postgres_url: str,
) -> None:
    plan = LoadPlan(auditors=8, per_auditor=40)
    engine = make_engine(migrated_postgres_url, pool_size=plan.auditors)
    admin = make_engine(migrated_postgres_url)
    database = make_url(migrated_postgres_url).database
    assert database is not None
    try:
        auditor_ids = seed(engine, plan)
        burst = Burst()
        start = threading.Barrier(len(auditor_ids) + 1)
        clients = [threading.Thread(target=rate_everything, args=(engine, a, burst, start)) for a in auditor_ids]
        for client in clients:
            client.start()
        start.wait()

        # three "restarts" at a quarter, half and three quarters of the burst
        terminated: list[int] = []
        for share in (0.25, 0.5, 0.75):
            deadline = time.monotonic() + 120
            while len(burst.acknowledged) < share * plan.total and time.monotonic() < deadline:
                if not any(c.is_alive() for c in clients):
                    break
                time.sleep(0.01)
            terminated.append(terminate_backends(admin, database))
        for client in clients:
            client.join(timeout=300)

        assert burst.errors == []
        assert sum(terminated) > 0, "no connection was open when the database went away"
        assert burst.retries, "the clients never saw the connection drop"

        # nothing acknowledged is lost: each acknowledged rating is stored, current, for its assignment
        with Session(engine) as session:
            rows = session.execute(
                select(Rating.assignment_id, Rating.id).where(
                    Rating.assignment_id.in_(list(burst.acknowledged)), Rating.is_current
                )
            )
            stored = {assignment_id: rating_id for assignment_id, rating_id in rows}
        assert stored == burst.acknowledged
        assert len(burst.acknowledged) == plan.total

        # nothing half-written: every rating has its assignment submitted and vice versa, exactly once
        state = stored_state(engine)
        assert state.ratings == plan.total
        assert state.duplicate_answer_auditor_pairs == 0
        assert state.assignments_not_submitted == 0
        assert state.submitted_without_one_rating == 0
        assert state.ratings_not_matching_assignment == 0
        assert state.rating_audit_entries == plan.total
        report(
            "faults",
            f"database connections dropped 3 times mid-burst ({sum(terminated)} backends terminated): "
            f"{len(burst.retries)} transactions retried, {len(burst.acknowledged)}/{plan.total} acknowledged "
            "ratings stored exactly once, 0 half-written",
        )
    finally:
        engine.dispose()
        admin.dispose()


@pytest.mark.postgres
def test_run_in_transaction_gives_up_after_its_retries_and_does_not_retry_user_errors(
    migrated_postgres_url: str,
) -> None:
    engine = make_engine(migrated_postgres_url)
    admin = make_engine(migrated_postgres_url)
    database = make_url(migrated_postgres_url).database
    assert database is not None
    factory = make_session_factory(engine)
    attempts: list[int] = []

    def dropped_every_time(session: Session) -> None:
        session.execute(text("SELECT 1"))  # the connection is checked out and in a transaction
        attempts.append(1)
        terminate_backends(admin, database)
        session.execute(text("SELECT 1"))

    try:
        with pytest.raises(OperationalError) as caught:
            run_in_transaction(factory, dropped_every_time, retries=2, backoff_s=0.001)
        assert is_transient(caught.value)
        assert len(attempts) == 3  # the first try and two retries

        def user_error(session: Session) -> None:
            attempts.append(1)
            raise ValueError("not a database problem")

        attempts.clear()
        with pytest.raises(ValueError):
            run_in_transaction(factory, user_error, retries=5)
        assert attempts == [1]
        # and after all that the engine still works: the pool replaced the dead connections
        assert run_in_transaction(factory, lambda s: s.scalar(text("SELECT 42"))) == 42
    finally:
        engine.dispose()
        admin.dispose()


def test_run_in_transaction_retries_only_transient_errors_and_rolls_each_attempt_back(sqlite_url: str) -> None:
    """A busy database (SQLite's "database is locked") is tried again in a fresh transaction whose
    earlier writes are gone; a constraint violation is the caller's problem and is not retried."""
    from sqlalchemy.exc import IntegrityError

    from audit.org.models import Department

    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    attempts: list[int] = []
    retried: list[str] = []

    def busy_once(session: Session) -> int:
        attempts.append(1)
        session.add(Department(name=f"Attempt {len(attempts)}"))
        session.flush()
        if len(attempts) == 1:
            raise OperationalError("INSERT ...", {}, Exception("database is locked"))
        return len(attempts)

    assert (
        run_in_transaction(factory, busy_once, backoff_s=0.001, on_retry=lambda n, e: retried.append(str(e.orig))) == 2
    )
    assert retried == ["database is locked"]
    with Session(engine) as session:
        assert session.scalars(select(Department.name)).all() == ["Attempt 2"]  # the first attempt left nothing

    attempts.clear()

    def duplicate(session: Session) -> None:
        attempts.append(1)
        session.add(Department(name="Attempt 2"))
        session.flush()

    with pytest.raises(IntegrityError):
        run_in_transaction(factory, duplicate, retries=5)
    assert attempts == [1]
    engine.dispose()


def test_an_acknowledged_submit_retried_after_a_lost_commit_is_stored_once(sqlite_url: str) -> None:
    """The ambiguous case: the commit happened but its acknowledgement was lost, so the client retries.
    The idempotency key (and the submitted assignment) make the retry return the stored rating."""
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        dept = f.department(session, "HR")
        auditor = f.user(session)
        assignment = f.assignment(
            session, ans=f.answer(session, dept=dept, model=f.model_version(session)), auditor=auditor
        )
        auditor_id, assignment_id = auditor.id, assignment.id
    calls: list[bool] = []

    def submit(session: Session) -> ratings_service.SubmitResult:
        result = ratings_service.submit_rating(
            session,
            actor=session.get_one(User, auditor_id),
            assignment_id=assignment_id,
            accuracy=4,
            completeness=4,
            relevance=4,
            coherence=4,
            idempotency_key="lost-ack-1",
        )
        calls.append(result.created)
        return result

    first = run_in_transaction(factory, submit)
    again = run_in_transaction(factory, submit)  # the client never saw `first`
    assert calls == [True, False]
    assert again.rating.id == first.rating.id
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Rating)) == 1
        assert session.get_one(Assignment, assignment_id).status == "submitted"
    engine.dispose()


# ============================================================================ disk full while exporting


def _cli() -> Any:
    from app.cli.main import cli

    return cli


@pytest.fixture
def export_database(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A database with dataset version 1 of 300 examples (about 60 kB of JSONL); the CLI points at it."""
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as session:
        hr = f.department(session, "HR")
        for i in range(300):
            f.example(session, dept=hr, question=f"How many leave days in year {i}?", answer=f"{i % 30} days. " * 8)
        version, _ = datasets.create_version(session, actor=None, change_log=[])
        number = version.number
    engine.dispose()
    return number


class FillsUp:
    """A file that takes ``capacity`` bytes and then fails the way a full disk does (a short write,
    then ENOSPC)."""

    def __init__(self, inner: Any, capacity: int) -> None:
        self.inner = inner
        self.room = capacity

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.inner.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> FillsUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def test_disk_full_midway_through_an_export_leaves_no_file_and_exits_1(
    export_database: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_export, "PROGRESS_EVERY", 50)  # several writes, so it fails midway
    real_fdopen = os.fdopen
    monkeypatch.setattr(dataset_export.os, "fdopen", lambda fd, *a, **k: FillsUp(real_fdopen(fd, *a, **k), 20_000))
    out = tmp_path / "exports" / "train.jsonl"
    out.parent.mkdir()

    result = CliRunner().invoke(_cli(), ["export", "dataset", "current", "--out", str(out)])

    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error_lines == [f"Error: {out}: could not write the export (No space left on device); nothing was written"]
    assert not out.exists()
    assert leftovers(out.parent) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 32 kB tmpfs (needs root and CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    mountpoint = tmp_path / "tiny-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mountpoint)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip() or 'mount failed'}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_really_full_filesystem_keeps_the_previous_export(export_database: int, tiny_disk: Path) -> None:
    out = tiny_disk / "train.jsonl"
    out.write_text("previous export\n")

    result = CliRunner().invoke(_cli(), ["export", "dataset", "1", "--out", str(out)])

    assert result.exit_code == 1
    assert f"Error: {out}: could not write the export (No space left on device); nothing was written" in result.stderr
    assert out.read_text() == "previous export\n"
    assert leftovers(tiny_disk) == []
    report("faults", "disk full while exporting (injected ENOSPC and a real full tmpfs): exit 1, no partial file")


# ============================================================================ MLflow unavailable


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def training_database(sqlite_url: str) -> Iterator[Engine]:
    """The small training company (dataset version 1), a champion v0, and one queued job."""
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as session:
        company = f.training_company(session)
        f.model_version(session, "v0", alias="champion")
        f.training_job(session, dataset_version_id=company["dataset_version"].id, max_attempts=2)
    yield engine
    engine.dispose()


def job_and_versions(engine: Engine) -> tuple[TrainingJob, list[tuple[str, str | None]]]:
    with Session(engine) as session:
        job = session.scalars(select(TrainingJob)).one()
        versions = [
            tuple(r) for r in session.execute(select(ModelVersion.name, ModelVersion.alias).order_by(ModelVersion.id))
        ]
        session.expunge(job)
    return job, versions  # type: ignore[return-value]


def test_an_unreachable_tracking_server_fails_the_attempt_clearly_and_requeues_the_job(
    training_database: Engine, tmp_path: Path
) -> None:
    from audit.settings import Settings
    from training.worker import Worker, WorkerOptions

    dead = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=str(training_database.url),
        mlflow_tracking_uri=dead,
        base_model="builtin:tiny",
        demo_mode=False,
        secret_key_file=None,
    )
    log: list[str] = []
    worker = Worker(settings, training_database, WorkerOptions(worker_id="w-test", once=True), log=log.append)

    first = worker.run_one()
    assert first is not None and first.status == "queued"  # retried later
    assert first.error is not None and f"MLflow tracking server {dead} is not reachable" in first.error
    job, versions = job_and_versions(training_database)
    assert (job.status, job.attempts, job.active) == ("queued", 1, True)
    assert versions == [("v0", "champion")]  # no partial model version, champion unchanged

    second = worker.run_one()  # the last allowed attempt
    assert second is not None and second.status == "failed"
    job, versions = job_and_versions(training_database)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error is not None and "is not reachable" in job.error
    assert versions == [("v0", "champion")]
    report(
        "faults",
        "MLflow tracking server unreachable: attempt failed with a clear error, job requeued, then failed at max_attempts; champion unchanged",
    )


# The LoRA recipe's fastest settings (as tests/training/test_recipe.py): mechanics, not quality.
FAST_TRAINING = (
    "train.max_steps=2",
    "train.batch_size=4",
    "train.warmup_ratio=0.0",
    "lora.r=4",
    "lora.alpha=8",
    "dataset.max_seq_len=256",
    "dataset.max_prompt_tokens=192",
    "evaluation.max_new_tokens=8",
    "evaluation.bootstrap_resamples=100",
)


@pytest.fixture(scope="module")
def small_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small variant of the built-in tiny model the training tests use (seconds to build)."""
    from tests.training.conftest import SMALL_TINY_CONFIG
    from training.models.tiny import build_tiny_model, pretraining_texts

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny-model") / "model",
        seed=7,
        corpus_texts=pretraining_texts(7),
        config=SMALL_TINY_CONFIG,
    )


@pytest.mark.slow
def test_the_tracking_server_going_away_after_training_promotes_nothing_and_the_retry_succeeds(
    training_database: Engine, small_tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training ran and the gate decided; then MLflow stops answering before the verdict is logged.
    The attempt fails with the MLflow error, nothing is promoted or recorded, the adapter is removed;
    the next attempt, with MLflow back, succeeds."""
    import torch

    from audit.settings import Settings
    from training.tracking import MlflowTracker
    from training.worker import Worker, WorkerOptions

    torch.set_num_threads(2)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once instead of backing off for minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with make_session_factory(training_database).begin() as session:  # the champion is the base model itself
        session.scalars(select(ModelVersion).where(ModelVersion.name == "v0")).one().base_model = str(small_tiny_model)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=str(training_database.url),
        mlflow_tracking_uri=f.mlflow_store(tmp_path / "mlruns"),
        base_model=str(small_tiny_model),
        demo_mode=False,
        secret_key_file=None,
    )
    dead = f"http://127.0.0.1:{closed_port()}"
    trackers: list[MlflowTracker] = []

    def tracker_factory(cfg: Any) -> MlflowTracker:
        trackers.append(MlflowTracker(settings.mlflow_tracking_uri, cfg.tracking.experiment))
        return trackers[-1]

    def log(message: str) -> None:
        if message.startswith("gate:") and outage:
            # the gate has decided: from here on the tracking server is gone
            from mlflow.tracking import MlflowClient

            trackers[-1]._client = MlflowClient(tracking_uri=dead)

    outage = True
    options = WorkerOptions(worker_id="w-mlflow", once=True, overrides=FAST_TRAINING)
    worker = Worker(settings, training_database, options, log=log, tracker_factory=tracker_factory)

    failed = worker.run_one()
    assert failed is not None and failed.status == "queued"
    assert failed.error is not None and failed.error.startswith("TrackingUnavailable: MLflow (")
    assert "failed to log metrics" in failed.error and "Connection refused" in failed.error
    job, versions = job_and_versions(training_database)
    assert (job.status, job.attempts) == ("queued", 1)
    assert versions == [("v0", "champion")]  # no model version, no promotion
    adapters = settings.data_dir / "adapters"
    assert not adapters.exists() or list(adapters.iterdir()) == []  # the orphan adapter was removed

    outage = False
    retried = worker.run_one()
    assert retried is not None and retried.status == "succeeded", retried
    job, versions = job_and_versions(training_database)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert [name for name, _ in versions] == ["v0", retried.model_version]
    report(
        "faults",
        "MLflow lost after training, before the verdict was logged: attempt failed, nothing promoted, adapter "
        f"removed; the retry succeeded ({retried.gate_status})",
    )
