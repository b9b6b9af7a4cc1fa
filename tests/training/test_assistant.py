"""The assistant end to end: questions file → retrieval → generation → stored answers (and the CLI)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cli.answer_commands import answer, base_model, retrieval
from audit.answers.models import Answer
from audit.auditlog.models import AuditLogEntry
from audit.db import make_engine, make_session_factory
from audit.errors import NotFoundError, PermissionDenied, ValidationError
from audit.ingest.answers import answer_content_hash
from audit.ingest.records import AnswerRecord, SourceRecord
from audit.modelops.models import ModelVersion
from audit.org.models import Department
from audit.sampling.models import GoldItem
from tests import factories
from training import assistant
from training.generation.transformers_backend import TransformersBackend
from training.models import load_model_dir
from training.retrieval import Retriever, current_documents

CREATED_AT = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)


def seed_knowledge(session: Session, model_dir: Path) -> ModelVersion:
    """Three departments, four current documents and one outdated one, a champion on the test model."""
    hr = factories.department(session, "HR")
    finance = factories.department(session, "Finance")
    factories.department(session, "Legal")
    old = factories.document(
        session,
        dept=hr,
        family="HR-LEAVE",
        version=1,
        title="Parental Leave Policy",
        body="Parents get 12 weeks of paid parental leave. Requests go by email.",
    )
    new = factories.document(
        session,
        dept=hr,
        family="HR-LEAVE",
        version=2,
        title="Parental Leave Policy",
        body="Parents get 16 weeks of paid parental leave. Requests go through Workday.",
    )
    old.superseded_by_id = new.id
    factories.document(
        session,
        dept=finance,
        family="FIN-EXP",
        title="Expense Approval Policy",
        body="Expenses above EUR 5,000 need CFO approval. Receipts are kept for 7 years.",
    )
    factories.document(
        session,
        dept=finance,
        family="FIN-TRAVEL",
        title="Travel Policy",
        body="Travel is booked through Navan. Parental leave does not change travel rules.",
    )
    version = ModelVersion(name="v0", base_model=str(model_dir), alias="champion")
    session.add(version)
    session.flush()
    return version


QUESTIONS = [
    {"question": "How many weeks of parental leave do parents get?", "asker_department": "HR"},
    {"question": "Who approves expenses above EUR 5,000?", "asker_department": "Finance", "external_id": "q-fin-1"},
    {"question": "How is travel booked?", "asker_department": "Legal"},
]


def write_questions(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_answer_questions_stores_answers_with_sources_and_derived_columns(
    session: Session, tiny_model_dir: Path
) -> None:
    version = seed_knowledge(session, tiny_model_dir)
    model, tokenizer = load_model_dir(tiny_model_dir)
    backend = TransformersBackend(model, tokenizer)
    questions = [
        assistant.Question(q["question"], q["asker_department"], q.get("external_id"), i + 1)
        for i, q in enumerate(QUESTIONS)
    ]
    summary = assistant.answer_questions(
        session,
        actor=None,
        questions=questions,
        model_version=version,
        backend=backend,
        retriever=Retriever(current_documents(session)),
        k=2,
        max_new_tokens=8,
        created_at=CREATED_AT,
    )
    assert (summary.inserted, summary.already_stored) == (3, 0)
    departments = {d.name: d.id for d in session.scalars(select(Department))}
    rows = {a.question: a for a in session.scalars(select(Answer).order_by(Answer.id))}
    assert len(rows) == 3

    leave = rows[QUESTIONS[0]["question"]]
    assert leave.external_id == assistant.default_external_id(QUESTIONS[0]["question"], "HR", "v0")
    assert leave.external_id.startswith("gen-")
    assert leave.model_version_id == version.id
    assert leave.asker_department_id == departments["HR"]
    assert leave.sources[0]["document_id"] == "HR-LEAVE@v2"  # the current version, never v1
    assert all(s["document_id"] != "HR-LEAVE@v1" for r in rows.values() for s in r.sources)
    assert leave.sources[0]["department"] == "HR" and leave.sources[0]["score"] > 0
    assert leave.top_source_department_id == departments["HR"]
    # the second hit for the leave question is the travel document, which mentions parental leave
    assert [s["document_id"] for s in leave.sources] == ["HR-LEAVE@v2", "FIN-TRAVEL@v1"]
    assert leave.cites_other_department is True
    assert leave.confidence is not None and leave.confidence < 0
    assert leave.latency_ms is not None and leave.latency_ms >= 0
    assert leave.created_at == CREATED_AT
    assert leave.answer_text

    finance = rows[QUESTIONS[1]["question"]]
    assert finance.external_id == "q-fin-1"
    assert finance.top_source_department_id == departments["Finance"]
    # the stored hash is the one `ingest answers` computes for the same record
    record = AnswerRecord(
        external_id=finance.external_id,
        question=finance.question,
        answer=finance.answer_text,
        asker_department="Finance",
        model_version="v0",
        created_at=CREATED_AT,
        sources=[SourceRecord(s["document_id"], s["department"], s["score"]) for s in finance.sources],
        confidence=finance.confidence,
        latency_ms=finance.latency_ms,
    )
    assert finance.content_hash == answer_content_hash(record, msgspec.json.Encoder())
    assert session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "answers.generated")).one()

    again = assistant.answer_questions(
        session,
        actor=None,
        questions=questions,
        model_version=version,
        backend=backend,
        retriever=Retriever(current_documents(session)),
        k=2,
        max_new_tokens=8,
    )
    assert (again.inserted, again.already_stored) == (0, 3)
    assert len(session.scalars(select(Answer)).all()) == 3


def test_answering_is_refused_to_roles_without_ingest(session: Session, tiny_model_dir: Path) -> None:
    version = seed_knowledge(session, tiny_model_dir)
    auditor = factories.user(session, role="auditor")
    with pytest.raises(PermissionDenied):
        assistant.plan_answers(session, actor=auditor, questions=[], model_version=version)


def test_unknown_departments_are_reported_with_their_line(session: Session, tiny_model_dir: Path) -> None:
    version = seed_knowledge(session, tiny_model_dir)
    questions = [assistant.Question("Q?", "HR", None, 1), assistant.Question("Q?", "Marketing", None, 2)]
    with pytest.raises(ValidationError, match=r"^q.jsonl:2: asker_department: unknown department 'Marketing'"):
        assistant.plan_answers(session, actor=None, questions=questions, model_version=version, source_name="q.jsonl")


def test_read_questions_reports_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "Fine?", "asker_department": "HR"}\n'
        "\n"
        "not json\n"
        '{"question": "", "asker_department": "HR"}\n'
        '{"question": "Q", "asker_department": "HR", "colour": "red"}\n'
        "[1, 2]\n"
    )
    with pytest.raises(ValidationError) as error:
        assistant.read_questions(path)
    assert str(error.value).splitlines() == [
        f"{path}:3: not valid JSON (Expecting value at column 1)",
        f"{path}:4: question: required, a non-empty string",
        f"{path}:5: colour: unknown field (expected question, asker_department, external_id)",
        f"{path}:6: expected a JSON object, got list",
    ]
    path.write_text('{"question": "Fine?", "asker_department": "HR", "external_id": "x1"}\n\n')
    assert assistant.read_questions(path) == [assistant.Question("Fine?", "HR", "x1", 1)]


def test_model_version_resolution(session: Session, tiny_model_dir: Path) -> None:
    with pytest.raises(NotFoundError, match="no champion"):
        assistant.resolve_model_version(session, None)
    version = seed_knowledge(session, tiny_model_dir)
    assert assistant.resolve_model_version(session, None) == version
    assert assistant.resolve_model_version(session, "v0") == version
    with pytest.raises(NotFoundError, match="'v9' does not exist"):
        assistant.resolve_model_version(session, "v9")


def test_a_version_with_an_adapter_generates_with_it(session: Session, tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from audit.settings import load_settings

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), local_files_only=True)
    # random (not zero) B matrices, so the adapter visibly changes the output
    lora = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    lora.save_pretrained(tmp_path / "adapter")
    version = seed_knowledge(session, tiny_model_dir)
    version.adapter_uri = (tmp_path / "adapter").as_uri()
    settings = load_settings({"AUDITLOOP_DATA_DIR": str(tmp_path)})
    with_adapter = assistant.backend_for_version(settings, version, prefer="transformers", device="cpu")
    assert isinstance(with_adapter, TransformersBackend) and isinstance(with_adapter.model, PeftModel)
    version.adapter_uri = None
    plain = assistant.backend_for_version(settings, version, prefer="transformers", device="cpu")
    prompt = ["Question: How many weeks of parental leave do parents get?\nAnswer:"]
    assert with_adapter.generate(prompt, max_new_tokens=6)[0] != plain.generate(prompt, max_new_tokens=6)[0]


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli_env(sqlite_url: str, tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        seed_knowledge(session, tiny_model_dir)
        hr = session.scalars(select(Department).where(Department.name == "HR")).one()
        session.add(
            GoldItem(
                question="How long is parental leave?",
                question_hash=factories.sha("gold-1"),
                reference_answer="16 weeks.",
                department_id=hr.id,
                reference_document_ids=["HR-LEAVE@v1"],
            )
        )
        session.commit()
    engine.dispose()
    return {"AUDITLOOP_DATABASE_URL": sqlite_url, "AUDITLOOP_DATA_DIR": str(tmp_path / "data")}


def test_cli_answer_stores_answers_and_is_idempotent(cli_env: dict[str, str], tmp_path: Path) -> None:
    questions = write_questions(tmp_path / "questions.jsonl", QUESTIONS)
    runner = CliRunner()
    args = ["--questions", str(questions), "--max-new-tokens", "6", "-k", "2", "--json"]
    result = runner.invoke(answer, args, env=cli_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["model_version"], data["inserted"], data["already_stored"]) == ("v0", 3, 0)
    assert {a["external_id"] for a in data["answers"]} >= {"q-fin-1"}
    assert all(a["sources"] and a["confidence"] < 0 for a in data["answers"] if a["asker_department"] != "Legal")

    engine = make_engine(cli_env["AUDITLOOP_DATABASE_URL"])
    with make_session_factory(engine)() as session:
        stored = session.scalars(select(Answer)).all()
        assert len(stored) == 3
        assert all(a.created_at.tzinfo is not None for a in stored)
        assert {s["document_id"] for a in stored for s in a.sources} <= {"HR-LEAVE@v2", "FIN-EXP@v1", "FIN-TRAVEL@v1"}
    engine.dispose()

    again = runner.invoke(answer, args[:-1], env=cli_env)
    assert again.exit_code == 0, again.output
    assert "0 answered and stored, 3 already stored, model v0" in again.stdout


def test_cli_answer_errors_are_one_clear_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    bad = write_questions(tmp_path / "bad.jsonl", [{"question": "Q?", "asker_department": "Marketing"}])
    result = runner.invoke(answer, ["--questions", str(bad)], env=cli_env)
    assert result.exit_code == 1
    assert f"{bad}:1: asker_department: unknown department 'Marketing'" in result.output
    good = write_questions(tmp_path / "good.jsonl", QUESTIONS[:1])
    result = runner.invoke(answer, ["--questions", str(good), "--model-version", "v7"], env=cli_env)
    assert result.exit_code == 1
    assert "model version 'v7' does not exist" in result.output
    result = runner.invoke(answer, ["--questions", str(tmp_path / "missing.jsonl")], env=cli_env)
    assert result.exit_code == 1 and "no such file" in result.output


def test_cli_retrieval_accuracy(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(retrieval, ["accuracy", "-k", "1", "--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # the gold question cites the outdated v1: it counts as found when its current version is retrieved
    assert data == {"pairs": 1, "documents": 3, "results": [{"k": 1, "accuracy": 1.0}]}


def test_cli_base_model_info_for_a_local_directory(cli_env: dict[str, str], tiny_model_dir: Path) -> None:
    env = {**cli_env, "AUDITLOOP_BASE_MODEL": str(tiny_model_dir)}
    result = CliRunner().invoke(base_model, ["info", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["built"] is True and data["directory"] == str(tiny_model_dir)
    assert data["config"]["train_steps"] == 20
