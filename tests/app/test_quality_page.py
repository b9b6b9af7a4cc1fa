"""The Quality page in AppTest: intervals over answers, and a day with too few answers for one says so
instead of showing an interval (issue 20: a t-interval of −1.84 to 8.50 at n = 3)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from app import session as login_session
from audit.db import make_engine
from audit.measures.quality import MIN_INTERVAL_ANSWERS
from tests import factories as f

PAGE = Path(__file__).resolve().parents[2] / "app" / "views" / "quality.py"


@pytest.fixture
def lead_id(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Yesterday: three answers rated 1, 4 and 5 (too few for an interval); the day before: six."""
    engine = make_engine(sqlite_url)
    yesterday = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    with Session(engine) as session:
        hr, model = f.department(session, "HR"), f.model_version(session, "v1")
        auditor = f.user(session)
        for day, scores in ((yesterday, [1, 4, 5]), (yesterday - dt.timedelta(days=1), [2, 3, 4, 4, 5, 3])):
            for score in scores:
                ans = f.answer(session, dept=hr, model=model, created_at=day)
                f.rating(session, ans=ans, auditor=auditor, accuracy=score, created_at=day)
        lead = f.user(session, role="lead", username="lead")
        session.commit()
        lead_id = lead.id
    engine.dispose()
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    return lead_id


def test_a_day_with_too_few_answers_shows_no_interval_and_says_so(lead_id: int) -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    login_session.start(at.session_state, user_id=lead_id, policy=login_session.AuthPolicy())
    at.run()
    assert not at.exception
    cells = at.dataframe[0].value
    accuracy = cells[cells["dimension"] == "accuracy"].sort_values("day")
    few, enough = accuracy.iloc[1], accuracy.iloc[0]
    assert (few["n"], few["answers"]) == (3, 3)
    assert few["interval"] == f"too few answers (< {MIN_INTERVAL_ANSWERS})"
    assert few["ci_low"] != few["ci_low"]  # NaN: no band is drawn
    low, high = (float(x) for x in enough["interval"].split(" – "))
    assert 1 <= low < enough["mean"] < high <= 5
    captions = " ".join(c.value for c in at.caption)
    assert f"fewer than {MIN_INTERVAL_ANSWERS} rated answers shows no band" in captions
    assert f"1 of 2 cells have too few answers (< {MIN_INTERVAL_ANSWERS}) for an interval" in captions
