"""Admin: the departments answers, documents, SMEs and fairness reports are grouped by."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from audit.org import repository as org_repo
from audit.org import service as org_service

require_page("manage_departments")
st.title("Departments")
show_flash()

with services.read_only() as session:
    departments = org_repo.departments(session)

frame = pd.DataFrame(
    [{"department": d.name, "created": d.created_at} for d in departments], columns=["department", "created"]
)
csv_export.table(frame, file_name="departments.csv", key="departments")

with st.form("departments.create", clear_on_submit=True):
    name = st.text_input("New department", max_chars=100)
    if st.form_submit_button("Add department", type="primary"):
        with show_errors() as outcome, services.unit_of_work() as uow:
            org_service.create_department(uow.session, actor=uow.actor, name=name)
        if outcome.ok:
            flash(f"Added {name.strip()}.")
            st.rerun()
