"""Training data grounded in its own sources: the data check behind the gate's ``ungrounded_training_data``."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from audit.errors import NotFoundError
from audit.knowledge import datasets
from tests import factories
from training.grounding import dataset_grounding


def test_answers_stating_values_their_sources_do_not_are_counted(session: Session) -> None:
    hr = factories.department(session, "HR")
    old = factories.document(session, dept=hr, family="HR-001", version=1, body="Leave requests take 10 days.")
    new = factories.document(session, dept=hr, family="HR-001", version=2, body="Leave requests take 5 days.")
    other = factories.document(session, dept=hr, family="HR-002", body="Records are kept for 6 years.")
    grounded = factories.example(
        session, dept=hr, answer="They take 5 days (source: HR-001@v2).", sources=[new.external_id]
    )
    from_old = factories.example(
        session, dept=hr, answer="They took 10 days (source: HR-001@v1).", sources=[old.external_id]
    )
    wrong = factories.example(
        session, dept=hr, answer="Records are kept for 7 years (source: HR-002@v1).", sources=[other.external_id]
    )
    unsourced = factories.example(session, dept=hr, answer="About 3 days.", sources=[])
    factories.example(session, dept=hr, answer="Ask the HR team.", sources=[other.external_id])  # states no value
    version, _ = datasets.create_version(session, actor=None, change_log=[])

    result = dataset_grounding(session, version.id)
    assert (result.stating, result.ungrounded) == (4, 2)
    assert result.share == pytest.approx(0.5)
    assert dict(result.examples) == {wrong.id: ["7 year"], unsourced.id: ["3 day"]}
    assert {grounded.id, from_old.id}.isdisjoint(dict(result.examples))  # an old version's own value is grounded
    assert result.to_dict()["dataset_version"] == version.number


def test_an_unknown_dataset_version_is_refused(session: Session) -> None:
    with pytest.raises(NotFoundError):
        dataset_grounding(session, 987654)
