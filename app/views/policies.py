"""Admin: the sampling, routing, fix, trigger and login (session and lockout) policies, each a validated form.

Each policy is a dataclass owned by its domain (``audit/<domain>/policy.py``); saving goes through
``audit.policy.service.save``, which validates it and writes the before/after to the audit log.
"""

from __future__ import annotations

import dataclasses
import importlib

import streamlit as st

from app import services
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from app.components.policy_form import policy_form
from audit.org.policy import AuthPolicy
from audit.policy import service as policy_service

# policy name -> (tab title, module holding its dataclass, what it governs)
POLICY_MODULES = {
    "sampling": ("Sampling", "audit.sampling.policy", "How the daily sample is drawn and how long items stay locked."),
    "routing": ("Routing", "audit.review.policy", "Which ratings open a review item for an SME."),
    "fixes": ("Fixes", "audit.fixes.policy", "Which data fixes apply on their own; conflict and leak thresholds."),
    "triggers": ("Triggers", "audit.triggers.policy", "When a retraining job is queued."),
    "auth": (
        "Logins",
        "audit.org.policy",
        "How long a login lasts, and how many wrong passwords lock an account for how long.",
    ),
}


def policy_class(module_name: str) -> type | None:
    """The module's policy dataclass (the one with ``validate``), or None if this build lacks it."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and dataclasses.is_dataclass(value)
            and value.__module__ == module.__name__
            and callable(getattr(value, "validate", None))
        ):
            return value
    return None


require_page("manage_policies")
st.title("Policies")
show_flash()

tabs = st.tabs([title for title, _, _ in POLICY_MODULES.values()])
for tab, (name, (title, module_name, purpose)) in zip(tabs, POLICY_MODULES.items(), strict=True):
    with tab:
        st.caption(purpose)
        cls = policy_class(module_name)
        if cls is None:
            st.info(f"The {title.lower()} policy is not part of this build.")
            continue
        with services.read_only() as session:
            current = policy_service.load(session, name, cls)
        with show_errors():
            updated = policy_form(key=name, cls=cls, current=current)
            if updated is not None:
                with services.unit_of_work() as uow:
                    policy_service.save(uow.session, actor=uow.actor, name=name, settings=updated)
                flash(f"{title} policy saved.")
                st.rerun()
        if name == "auth":
            defaults = AuthPolicy()
            st.caption(
                "New session limits apply to sessions started after the change; the lockout applies at once. "
                f"Defaults: {defaults.idle_timeout_minutes} minutes idle, {defaults.session_lifetime_hours} hours "
                f"in all; {defaults.max_failed_logins} wrong passwords in a row lock an account for "
                f"{defaults.lockout_minutes} minutes."
            )
