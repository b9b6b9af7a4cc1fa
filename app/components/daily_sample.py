"""Today's sample for a lead or an administrator: whether it is drawn, how many items wait for an
auditor, and the buttons that draw it or hand out open slots (what ``auditloop sample`` does)."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from app import services
from app.components.feedback import flash, show_errors
from audit.sampling import service as sampling_service


def daily_sample_panel() -> None:
    """Draw it where the lead or admin looks after the loop; the services check ``run_sampling``."""
    today = dt.datetime.now(dt.UTC).date()
    summary: sampling_service.SampleSummary | None = None
    with show_errors() as loaded, services.reading() as uow:
        summary = sampling_service.batch_summary(uow.session, actor=uow.actor, sample_date=today)
    if not loaded.ok:
        return
    if summary is None:
        st.info(f"No sample has been drawn for today ({today:%Y-%m-%d}): auditors have nothing to rate.")
        if st.button("Draw and assign today's sample", type="primary", key="daily_sample.draw"):
            with show_errors() as outcome, services.unit_of_work() as uow:
                drawn = sampling_service.draw_sample(uow.session, actor=uow.actor, sample_date=today)
            if outcome.ok:
                open_slots = f"; {drawn.unfilled_slots} slots found no auditor" if drawn.unfilled_slots else ""
                flash(
                    f"Today's sample: {drawn.items} items, assigned to {len(drawn.assignments_by_auditor)} auditors{open_slots}."
                )
                st.rerun()
        return
    open_slots = f", {summary.unfilled_slots} slots without an auditor" if summary.unfilled_slots else ""
    st.caption(
        f"Today's sample ({today:%Y-%m-%d}): {summary.items} items for {len(summary.assignments_by_auditor)} auditors"
        + open_slots
    )
    if summary.unfilled_slots and st.button("Assign the open slots", key="daily_sample.assign"):
        with show_errors() as outcome, services.unit_of_work() as uow:
            assigned = sampling_service.assign_batch(uow.session, actor=uow.actor, batch_id=summary.batch_id)
        if outcome.ok:
            flash(f"Assigned {assigned.created} items; {assigned.unfilled_slots} slots still without an auditor.")
            st.rerun()
