"""Admin: accounts — create, change role and departments, display name and home department, deactivate
or reactivate, reset a password."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.confirm import confirmed
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from app.components.inert import escape_markdown
from audit.errors import AuditloopError
from audit.org import repository as org_repo
from audit.org import service as org_service
from audit.org.models import ROLES

# the create form's fields and what each is once emptied
NEW_ACCOUNT = {
    "username": "",
    "display_name": "",
    "role": ROLES[0],
    "home": None,
    "covered": [],
    "password": "",
    "repeat": "",
}
CREATE_REFUSED = "users.new.refused"  # why the last "Create account" was refused, shown once under the form


def _new(field: str) -> str:
    return f"users.new.{field}"


def _create_account() -> None:
    """The create form's submit (a callback, so that it may set the fields). Created: every field is
    emptied. Refused (the two passwords differ, or the service says no): what was typed stays for the
    admin to correct, except the two passwords, which are typed again."""
    state = st.session_state
    typed = {field: state.get(_new(field), empty) for field, empty in NEW_ACCOUNT.items()}
    state[_new("password")] = state[_new("repeat")] = ""  # never kept in the session, whatever happens
    if typed["password"] != typed["repeat"]:
        state[CREATE_REFUSED] = "The two passwords differ: type them again."
        return
    username = str(typed["username"]).strip()
    try:
        with services.unit_of_work() as uow:
            org_service.create_user(
                uow.session,
                actor=uow.actor,
                username=username,
                role=typed["role"],
                password=typed["password"],
                display_name=str(typed["display_name"]).strip() or None,
                departments=list(typed["covered"]),
                home_department=typed["home"],
            )
    except AuditloopError as exc:
        state[CREATE_REFUSED] = str(exc)
        return
    for field, empty in NEW_ACCOUNT.items():
        state[_new(field)] = list(empty) if isinstance(empty, list) else empty
    flash(f"Created {username} ({typed['role']}).")


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

with create_tab:
    with st.form("users.create"):
        left, right = st.columns(2)
        left.text_input(
            "Username", key=_new("username"), max_chars=64, help="2–64 characters: a–z, 0–9, '.', '_' or '-'"
        )
        right.text_input("Display name", key=_new("display_name"), max_chars=200)
        left.selectbox("Role", ROLES, key=_new("role"))
        right.selectbox(
            "Home department", [None, *department_names], format_func=lambda d: d or "(none)", key=_new("home")
        )
        st.multiselect("Departments covered (SMEs)", department_names, key=_new("covered"))
        left.text_input("Initial password", key=_new("password"), type="password", help="At least 12 characters")
        right.text_input("Repeat the password", key=_new("repeat"), type="password")
        st.form_submit_button("Create account", type="primary", on_click=_create_account)
    refused = st.session_state.pop(CREATE_REFUSED, None)
    if refused:
        st.error(escape_markdown(refused, max_length=1000), icon=":material/error:")

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
