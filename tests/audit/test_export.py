"""Exporting a dataset version: valid chat-format JSONL, a saved HF Dataset, and all-or-nothing writes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from audit.db import make_engine, make_session_factory
from audit.errors import AuditloopError, NotFoundError, ValidationError
from audit.knowledge import datasets
from audit.knowledge import export as dataset_export
from tests import factories as f


def _cli():  # type: ignore[no-untyped-def]
    """The `auditloop` command, imported when a test needs it (it loads every command module)."""
    from app.cli.main import cli

    return cli


@pytest.fixture
def version(session: Session) -> int:
    hr, legal = f.department(session, "HR"), f.department(session, "Legal")
    f.example(session, dept=hr, question="How many leave days?", answer="28 days.", sources=["HR-LEAVE@v2"])
    f.example(session, dept=legal, question="Who signs NDAs?", answer="Legal counsel — «always».")
    created, _ = datasets.create_version(session, actor=None, change_log=[], department_weights={"HR": 2})
    return created.number


def _no_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".partial" in p.name or p.name.endswith(".old"))


def test_jsonl_holds_one_chat_record_per_example(session: Session, version: int, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    calls: list[tuple[int, int]] = []

    summary = dataset_export.export_version(
        session, number=version, out=out, progress=lambda done, total: calls.append((done, total))
    )

    lines = out.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert summary.examples == 2 and len(records) == 2
    assert summary.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert summary.bytes == out.stat().st_size
    by_question = {r["messages"][1]["content"]: r for r in records}
    leave = by_question["How many leave days?"]
    assert [m["role"] for m in leave["messages"]] == ["system", "user", "assistant"]
    assert leave["messages"][2]["content"] == "28 days."
    assert (leave["department"], leave["sources"], leave["weight"]) == ("HR", ["HR-LEAVE@v2"], 2)
    assert by_question["Who signs NDAs?"]["messages"][2]["content"] == "Legal counsel — «always»."
    assert calls[-1] == (2, 2)
    assert _no_leftovers(tmp_path) == []


def test_a_failure_mid_write_leaves_no_file(
    session: Session, version: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_export, "PROGRESS_EVERY", 1)
    out = tmp_path / "train.jsonl"

    def interrupted(done: int, total: int) -> None:
        if done == 1:  # one record written, the second not yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dataset_export.export_version(session, number=version, out=out, progress=interrupted)
    assert not out.exists()
    assert _no_leftovers(tmp_path) == []


def test_a_full_disk_keeps_the_previous_file_and_says_so(
    session: Session, version: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "train.jsonl"
    out.write_text("previous export\n")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dataset_export.os, "fsync", disk_full)
    with pytest.raises(
        AuditloopError, match="could not write the export .*No space left on device.*nothing was written"
    ):
        dataset_export.export_version(session, number=version, out=out)
    assert out.read_text() == "previous export\n"
    assert _no_leftovers(tmp_path) == []


def test_hf_format_saves_a_dataset_that_loads_back(session: Session, version: int, tmp_path: Path) -> None:
    import datasets as hf_datasets

    out = tmp_path / "train-hf"
    summary = dataset_export.export_version(session, number=version, out=out, fmt="hf")
    loaded = hf_datasets.load_from_disk(str(out))
    assert summary.examples == loaded.num_rows == 2
    expected = [datasets.sft_record(r) for r in datasets.examples_for_version(session, _version_id(session, version))]
    assert sorted(loaded.to_list(), key=lambda r: r["messages"][1]["content"]) == sorted(
        expected, key=lambda r: r["messages"][1]["content"]
    )
    # exporting again replaces the directory whole
    dataset_export.export_version(session, number=version, out=out, fmt="hf")
    assert hf_datasets.load_from_disk(str(out)).num_rows == 2
    assert _no_leftovers(tmp_path) == []


def _version_id(session: Session, number: int) -> int:
    return datasets.version_by_number(session, number).id


def test_bad_targets_are_refused(session: Session, version: int, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        dataset_export.export_version(session, number=version, out=tmp_path / "missing" / "x.jsonl")
    with pytest.raises(ValidationError, match="is a directory"):
        dataset_export.export_version(session, number=version, out=tmp_path)
    with pytest.raises(NotFoundError):
        dataset_export.export_version(session, number=version + 1, out=tmp_path / "x.jsonl")


def test_export_cli_writes_the_file_and_a_json_summary(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as s:
        f.example(s, dept=f.department(s, "HR"), question="Q?", answer="A.")
        datasets.create_version(s, actor=None, change_log=[])
    engine.dispose()
    out = tmp_path / "v1.jsonl"

    result = CliRunner().invoke(_cli(), ["export", "dataset", "current", "--out", str(out), "--json"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["version"], summary["examples"], summary["format"]) == (1, 1, "jsonl")
    assert json.loads(out.read_text())["messages"][1] == {"role": "user", "content": "Q?"}

    missing = CliRunner().invoke(_cli(), ["export", "dataset", "5", "--out", str(out)])
    assert missing.exit_code == 1 and missing.stderr.strip().startswith("Error: dataset version 5 does not exist")
    usage = CliRunner().invoke(_cli(), ["export", "dataset", "1", "--out", str(out), "--format", "csv"])
    assert usage.exit_code == 2
