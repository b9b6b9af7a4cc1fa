"""Who did what, when: logins, ratings, review decisions, fixes, promotions, policy and account changes."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.feedback import show_errors
from app.components.guard import require_page
from audit.auditlog import repository as auditlog_repo

require_page("view_audit_log")
st.title("Audit log")

known_actions: list[str] = []
with show_errors(), services.unit_of_work() as uow:
    known_actions = auditlog_repo.actions(uow.session, actor=uow.actor)

left, middle, right, last = st.columns(4)
prefixes = sorted({a.split(".")[0] for a in known_actions})
action_prefix = left.selectbox("Action", [None, *prefixes], format_func=lambda p: p or "(all)", key="audit_log.action")
actor_name = middle.text_input("Actor (username)", key="audit_log.actor", max_chars=64).strip() or None
days = right.number_input("Last days", min_value=1, max_value=3650, value=7, key="audit_log.days")
limit = last.number_input(
    "At most", min_value=10, max_value=auditlog_repo.MAX_ENTRIES, value=500, step=100, key="audit_log.limit"
)

since = dt.datetime.now(dt.UTC) - dt.timedelta(days=int(days))
with show_errors(), services.unit_of_work() as uow:
    rows = auditlog_repo.entries(
        uow.session,
        actor=uow.actor,
        limit=int(limit),
        action_prefix=action_prefix,
        actor_name=actor_name,
        since=since,
    )
    frame = pd.DataFrame(
        [
            {
                "at": e.at,
                "actor": e.actor_name,
                "action": e.action,
                "entity": e.entity_type,
                "entity id": e.entity_id,
                "details": json.dumps(e.details, ensure_ascii=False, default=str) if e.details else "",
            }
            for e in rows
        ],
        columns=["at", "actor", "action", "entity", "entity id", "details"],
    )
    st.caption(f"{len(frame)} entries, newest first")
    csv_export.table(frame, file_name="audit-log.csv", key="audit_log")
