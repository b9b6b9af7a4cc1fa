"""`python -m training.models.probe`: a base model's answers to its company's gold questions, judged."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from audit.demo.corpus import build_corpus
from tests.training.conftest import SMALL_TINY_CONFIG
from training.models import probe
from training.retrieval import Retriever

FAST = dataclasses.replace(SMALL_TINY_CONFIG, train_steps=3)


def test_probe_judges_every_gold_question_and_the_baseline_cites_the_top_document(tmp_path: Path) -> None:
    result = probe.probe(7, FAST, tmp_path)
    corpus = build_corpus(7)
    assert (
        result["all"]["model"]["n"]
        == len(corpus.gold)
        == sum(systems["model"]["n"] for department, systems in result.items() if department != "all")
    )
    assert sorted(d for d in result if d != "all") == sorted({g.department for g in corpus.gold})
    for systems in result.values():
        for figures in systems.values():
            for metric in probe.PROBE_METRICS:
                v = figures[metric]
                assert 0.0 <= v["ci_low"] <= v["estimate"] <= v["ci_high"] <= 1.0
    # the best-sentence baseline cites the top retrieved document: its citation accuracy is retrieval@1
    retriever = Retriever.from_documents(corpus.documents)
    top = [retriever.search(g.question, 3)[0].document_id in g.reference_document_ids for g in corpus.gold]
    assert result["all"]["best_sentence"]["citation_accuracy"]["estimate"] == pytest.approx(sum(top) / len(top))
    assert (tmp_path / "models").is_dir()  # the build is cached like the app's


def test_probe_command_line_prints_a_table_and_refuses_bad_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        probe,
        "probe",
        lambda *a, **k: {
            "all": {
                s: {"n": 1, **{m: {"estimate": 0.5, "ci_low": 0.0, "ci_high": 1.0} for m in probe.PROBE_METRICS}}
                for s in ("model", "best_sentence")
            }
        },
    )
    assert probe.main(["--seed", "11", "--steps", "5", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "seed 11, 5 steps" in out and "| all | 1 | 0.500 [0.00, 1.00]" in out
    with pytest.raises(SystemExit):
        probe.main(["--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
