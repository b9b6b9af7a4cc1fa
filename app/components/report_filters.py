"""The filters every dashboard shares (days, model version, asker department), as a ReportFilters."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from app import services
from audit.measures import repository as measures_repo
from audit.measures.service import ReportFilters

DEFAULT_DAYS = 30


def report_filters(key: str, *, with_model: bool = True, with_department: bool = True) -> ReportFilters:
    with services.read_only() as session:
        models = sorted(measures_repo.model_version_names(session).values())
        departments = sorted(measures_repo.department_names(session).values())
    today = dt.datetime.now(dt.UTC).date()
    columns = st.columns([2, 1, 1] if with_model and with_department else [2, 1])
    days = columns[0].date_input(
        "Days (UTC)",
        value=(today - dt.timedelta(days=DEFAULT_DAYS - 1), today),
        key=f"report_filters.{key}.days",
        help="Ratings given on these days, both included.",
    )
    start, end = (days[0], days[-1]) if isinstance(days, tuple) and days else (None, None)
    model = department = None
    column = 1
    if with_model:
        model = columns[column].selectbox(
            "Model version", models, index=None, placeholder="all", key=f"report_filters.{key}.model"
        )
        column += 1
    if with_department:
        department = columns[column].selectbox(
            "Asker department", departments, index=None, placeholder="all", key=f"report_filters.{key}.department"
        )
    return ReportFilters(date_from=start, date_to=end, model_version=model, department=department)
