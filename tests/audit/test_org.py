"""Users, passwords and login: argon2id, policy, lockout, the same message for every failure."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from audit.auditlog.models import AuditLogEntry
from audit.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.org import passwords
from audit.org import service as org
from audit.org.policy import AuthPolicy, load_auth_policy
from audit.policy import service as policy_service
from tests import factories as f

NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)


def test_passwords_are_argon2id_and_verify() -> None:
    digest = passwords.hash_password("a-long-enough-secret")
    assert digest.startswith("$argon2id$")
    assert passwords.verify_password(digest, "a-long-enough-secret")
    assert not passwords.verify_password(digest, "a-long-enough-secreT")


@pytest.mark.parametrize("bad", ["short", "x" * 11, " leading-space-password", "x" * 1025])
def test_password_policy_refuses(bad: str) -> None:
    with pytest.raises(ValidationError, match="password"):
        passwords.hash_password(bad)


def test_create_user_validates_and_refuses_duplicates(session) -> None:
    f.department(session, "Legal")
    user = org.create_user(
        session, actor=None, username="sme.legal", role="sme", password="correct-horse-battery", departments=["Legal"]
    )
    assert [d.name for d in user.departments] == ["Legal"]
    with pytest.raises(ConflictError):
        org.create_user(session, actor=None, username="sme.legal", role="sme", password="correct-horse-battery")
    with pytest.raises(ValidationError, match="role"):
        org.create_user(session, actor=None, username="x1", role="root", password="correct-horse-battery")
    with pytest.raises(NotFoundError, match="department 'Nope' does not exist"):
        org.create_user(
            session, actor=None, username="x2", role="sme", password="correct-horse-battery", departments=["Nope"]
        )


@pytest.mark.parametrize("role", ["auditor", "sme", "lead"])
def test_only_admins_manage_users(session, role: str) -> None:
    actor = f.user(session, role=role)
    with pytest.raises(PermissionDenied):
        org.create_user(session, actor=actor, username="newbie", role="auditor", password="correct-horse-battery")
    with pytest.raises(PermissionDenied):
        org.reset_password(session, actor=actor, username=actor.username, password="correct-horse-battery-2")


def test_login_success_resets_failures_and_is_audited(session) -> None:
    user = f.user(session, username="ann")
    result = org.authenticate(session, "ann", f.TEST_PASSWORD, now=NOW)
    assert result.ok and result.user is user and user.last_login_at == NOW
    actions = session.scalars(select(AuditLogEntry.action).where(AuditLogEntry.entity_id == str(user.id))).all()
    assert "login.success" in actions


def test_wrong_user_and_wrong_password_get_the_same_message(session) -> None:
    f.user(session, username="ann")
    assert (
        org.authenticate(session, "ann", "wrong-password-123", now=NOW).message
        == org.authenticate(session, "nobody", "wrong-password-123", now=NOW).message
        == org.GENERIC_FAILURE
    )


def test_five_failures_lock_for_fifteen_minutes(session) -> None:
    user = f.user(session, username="ann")
    for _ in range(4):
        assert org.authenticate(session, "ann", "wrong-password-123", now=NOW).message == org.GENERIC_FAILURE
    # the fifth failure locks, with the same words as every failure: an unknown name reads the same
    assert org.authenticate(session, "ann", "wrong-password-123", now=NOW).message == org.GENERIC_FAILURE
    for _ in range(6):
        assert org.authenticate(session, "nobody", "wrong-password-123", now=NOW).message == org.GENERIC_FAILURE
    assert user.locked_until == NOW + dt.timedelta(minutes=15)
    # even the right password is refused while locked
    locked = org.authenticate(session, "ann", f.TEST_PASSWORD, now=NOW + dt.timedelta(minutes=14))
    assert (locked.ok, locked.message) == (False, org.GENERIC_FAILURE)
    assert org.authenticate(session, "ann", f.TEST_PASSWORD, now=NOW + dt.timedelta(minutes=16)).ok


def test_the_lockout_threshold_and_duration_are_the_auth_policys(session) -> None:
    policy_service.save(session, actor=None, name="auth", settings=AuthPolicy(max_failed_logins=3, lockout_minutes=5))
    user = f.user(session, username="ann")
    for _ in range(2):
        org.authenticate(session, "ann", "wrong-password-123", now=NOW)
    assert (user.failed_logins, user.locked_until) == (2, None)
    org.authenticate(session, "ann", "wrong-password-123", now=NOW)  # the third locks
    assert (user.failed_logins, user.locked_until) == (0, NOW + dt.timedelta(minutes=5))
    assert not org.authenticate(session, "ann", f.TEST_PASSWORD, now=NOW + dt.timedelta(minutes=4, seconds=59)).ok
    assert org.authenticate(session, "ann", f.TEST_PASSWORD, now=NOW + dt.timedelta(minutes=5, seconds=1)).ok


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_failed_logins": 0}, "max_failed_logins must be a whole number between 1 and 20"),
        ({"max_failed_logins": 21}, "max_failed_logins must be a whole number between 1 and 20"),
        ({"max_failed_logins": 2.5}, "max_failed_logins"),
        ({"lockout_minutes": 0}, "lockout_minutes must be a whole number between 1 and 1440"),
        ({"lockout_minutes": 24 * 60 + 1}, "lockout_minutes"),
        ({"idle_timeout_minutes": 0}, "idle_timeout_minutes"),
    ],
)
def test_the_auth_policy_refuses_a_lockout_out_of_range(session, changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        policy_service.save(session, actor=None, name="auth", settings=AuthPolicy(**changes))
    assert load_auth_policy(session) == AuthPolicy()  # the documented defaults: 5 failures, 15 minutes
    assert (AuthPolicy().max_failed_logins, AuthPolicy().lockout_minutes) == (5, 15)


def test_inactive_users_cannot_log_in(session) -> None:
    f.user(session, username="gone", active=False)
    assert not org.authenticate(session, "gone", f.TEST_PASSWORD, now=NOW).ok


def test_reset_password_clears_lockout(session) -> None:
    user = f.user(session, username="ann")
    user.locked_until = NOW + dt.timedelta(minutes=10)
    org.reset_password(session, actor=None, username="ann", password="another-long-password")
    assert user.locked_until is None
    assert org.authenticate(session, "ann", "another-long-password", now=NOW).ok


# ----------------------------------------------------------------------------- single sign-on identities


def _oidc_entries(session, action: str) -> list[AuditLogEntry]:
    entries = session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == action)).all()
    return [e for e in entries if (e.details or {}).get("method") == "oidc"]


def test_an_identity_maps_to_the_user_it_names_case_insensitively(session) -> None:
    user = f.user(session, role="sme", username="dana")
    now = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    result = org.authenticate_identity(
        session, {"sub": "x", "preferred_username": " Dana "}, claim="preferred_username", now=now
    )
    assert result.user is user and user.last_login_at == now
    assert [e.actor_name for e in _oidc_entries(session, "login.success")] == ["dana"]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "x"}, "sent no 'preferred_username' claim"),
        ({"sub": "x", "preferred_username": ""}, "sent no 'preferred_username' claim"),
        ({"sub": "x", "preferred_username": ["dana"]}, "sent no 'preferred_username' claim"),
        ({"sub": "x", "preferred_username": "nobody"}, "has no active account"),
        ({"sub": "x", "preferred_username": "gone"}, "has no active account"),
    ],
)
def test_an_identity_without_an_active_account_is_refused_and_recorded(session, claims, message: str) -> None:
    f.user(session, username="dana")
    f.user(session, username="gone", active=False)
    result = org.authenticate_identity(session, claims, claim="preferred_username")
    assert result.user is None and message in result.message
    assert len(_oidc_entries(session, "login.failed")) == 1


def test_a_locked_account_is_refused_for_single_sign_on_too(session) -> None:
    user = f.user(session, username="dana")
    now = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    user.locked_until = now + dt.timedelta(minutes=5)
    result = org.authenticate_identity(session, {"email": "dana"}, claim="email", now=now)
    assert result.user is None and result.message == org.LOCKED
    assert len(_oidc_entries(session, "login.locked")) == 1


def test_an_admin_changes_a_display_name_and_home_department(session) -> None:
    admin, user = f.user(session, role="admin"), f.user(session, username="ann")
    hr = f.department(session, "HR")
    org.set_profile(session, actor=admin, username="ann", display_name="  Ann   Smith ", home_department="HR")
    assert (user.display_name, user.home_department_id) == ("Ann Smith", hr.id)
    org.set_profile(session, actor=admin, username="ann", display_name="Ann", home_department=None)
    assert (user.display_name, user.home_department_id) == ("Ann", None)
    with pytest.raises(ValidationError, match="display name"):
        org.set_profile(session, actor=admin, username="ann", display_name="  ", home_department=None)
    with pytest.raises(NotFoundError, match="department 'Nowhere' does not exist"):
        org.set_profile(session, actor=admin, username="ann", display_name="Ann", home_department="Nowhere")
