"""Admin: accounts — create, change role and departments, display name and home department, deactivate
or reactivate, reset a password."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.confirm import confirmed
from app.components.feedback import flash, forget_secrets, show_errors, show_flash
from app.components.guard import require_page
from audit.org import repository as org_repo
from audit.org import service as org_service
from audit.org.models import ROLES

me = require_page("manage_users")
st.title("Users")
show_flash()

with services.read_only() as session:
    accounts = list(org_repo.users(session))
    department_names = [d.name for d in org_repo.departments(session)]
    home_names = {d.id: d.name for d in org_repo.departments(session)}

frame = pd.DataFrame(
    [
        {
            "username": u.username,
            "display name": u.display_name,
            "role": u.role,
            "departments covered": ", ".join(d.name for d in u.departments),
            "home department": home_names.get(u.home_department_id or -1, ""),
            "active": u.active,
            "locked until": u.locked_until,
            "last login": u.last_login_at,
        }
        for u in accounts
    ],
    columns=[
        "username",
        "display name",
        "role",
        "departments covered",
        "home department",
        "active",
        "locked until",
        "last login",
    ],
)
csv_export.table(frame, file_name="users.csv", key="users")

create_tab, change_tab = st.tabs(["Create an account", "Change an account"])

with create_tab, st.form("users.create", clear_on_submit=True):
    left, right = st.columns(2)
    username = left.text_input(
        "Username", key="users.new.username", max_chars=64, help="2–64 characters: a–z, 0–9, '.', '_' or '-'"
    )
    display_name = right.text_input("Display name", key="users.new.display_name", max_chars=200)
    role = left.selectbox("Role", ROLES, key="users.new.role")
    home = right.selectbox("Home department", [None, *department_names], format_func=lambda d: d or "(none)")
    covered = st.multiselect("Departments covered (SMEs)", department_names)
    password = left.text_input(
        "Initial password", key="users.new.password", type="password", help="At least 12 characters"
    )
    repeat = right.text_input("Repeat the password", key="users.new.repeat", type="password")
    if st.form_submit_button("Create account", type="primary"):
        if password != repeat:
            st.error("The two passwords differ.")
        else:
            with show_errors() as outcome, services.unit_of_work() as uow:
                org_service.create_user(
                    uow.session,
                    actor=uow.actor,
                    username=username.strip(),
                    role=role,
                    password=password,
                    display_name=display_name.strip() or None,
                    departments=covered,
                    home_department=home,
                )
            if outcome.ok:
                flash(f"Created {username.strip()} ({role}).")
                forget_secrets("users.new.password", "users.new.repeat")
                st.rerun()

with change_tab:
    target = st.selectbox(
        "Account", accounts, format_func=lambda u: f"{u.username} ({u.role})", key="users.target", index=None
    )
    if target is not None:
        with st.form("users.role"):
            new_role = st.selectbox("Role", ROLES, index=ROLES.index(target.role))
            new_departments = st.multiselect(
                "Departments covered", department_names, default=[d.name for d in target.departments]
            )
            if st.form_submit_button("Save role and departments"):
                with show_errors() as outcome, services.unit_of_work() as uow:
                    org_service.set_role(
                        uow.session,
                        actor=uow.actor,
                        username=target.username,
                        role=new_role,
                        departments=new_departments,
                    )
                if outcome.ok:
                    flash(f"{target.username} is now {new_role}.")
                    st.rerun()

        with st.form(f"users.profile.{target.id}"):
            left, right = st.columns(2)
            new_display_name = left.text_input(
                "Display name", value=target.display_name, max_chars=200, key=f"users.profile.name.{target.id}"
            )
            home_choices = [None, *department_names]
            current_home = home_names.get(target.home_department_id or -1)
            new_home = right.selectbox(
                "Home department",
                home_choices,
                index=home_choices.index(current_home) if current_home in home_choices else 0,
                format_func=lambda d: d or "(none)",
                key=f"users.profile.home.{target.id}",
                help="An auditor is not given answers asked by their home department when the sampling "
                "policy excludes it.",
            )
            if st.form_submit_button("Save name and home department"):
                with show_errors() as outcome, services.unit_of_work() as uow:
                    org_service.set_profile(
                        uow.session,
                        actor=uow.actor,
                        username=target.username,
                        display_name=new_display_name,
                        home_department=new_home,
                    )
                if outcome.ok:
                    flash(f"{target.username}: name and home department saved.")
                    st.rerun()

        with st.form("users.password", clear_on_submit=True):
            new_password = st.text_input("New password", type="password")
            new_repeat = st.text_input("Repeat the new password", type="password")
            if st.form_submit_button("Reset password (also lifts a lockout)"):
                if new_password != new_repeat:
                    st.error("The two passwords differ.")
                else:
                    with show_errors() as outcome, services.unit_of_work() as uow:
                        org_service.reset_password(
                            uow.session, actor=uow.actor, username=target.username, password=new_password
                        )
                    if outcome.ok:
                        flash(f"Password reset for {target.username}.")
                        st.rerun()

        if target.active:
            go = confirmed(
                "Deactivate",
                key=f"users.deactivate.{target.id}",
                question=f"Deactivate {target.username}? They can no longer log in; their history stays.",
            )
        else:
            go = confirmed("Reactivate", key=f"users.activate.{target.id}", question=f"Reactivate {target.username}?")
        if go:
            with show_errors() as outcome, services.unit_of_work() as uow:
                org_service.set_active(uow.session, actor=uow.actor, username=target.username, active=not target.active)
            if outcome.ok:
                flash(f"{target.username} {'deactivated' if target.active else 'reactivated'}.")
                st.rerun()
