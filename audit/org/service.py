"""User and department management, and password authentication with lockout."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, ValidationError
from audit.org import passwords
from audit.org import repository as repo
from audit.org.models import ROLES, Department, User
from audit.org.policy import load_auth_policy
from audit.permissions import require
from audit.sampling import service as sampling_service

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"role: {role!r} is not one of {', '.join(ROLES)}")


def resolve_departments(session: Session, names: Sequence[str]) -> list[Department]:
    found = []
    for name in names:
        department = repo.department_by_name(session, name)
        if department is None:
            known = ", ".join(d.name for d in repo.departments(session)) or "none yet"
            raise NotFoundError(f"department {name!r} does not exist (known: {known})")
        found.append(department)
    return found


def create_department(session: Session, *, actor: User | None, name: str) -> Department:
    require(actor, "manage_departments")
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("department name: must be 1 to 100 characters")
    if repo.department_by_name(session, name) is not None:
        raise ConflictError(f"department {name!r} already exists")
    department = Department(name=name)
    session.add(department)
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="department.create",
        entity_type="department",
        entity_id=department.id,
        details={"name": name},
    )
    return department


def create_user(
    session: Session,
    *,
    actor: User | None,
    username: str,
    role: str,
    password: str | None,
    display_name: str | None = None,
    departments: Sequence[str] = (),
    home_department: str | None = None,
    active: bool = True,
) -> User:
    """Create a user. ``password=None`` creates an account that cannot log in until reset."""
    require(actor, "manage_users")
    if not USERNAME_RE.match(username):
        raise ValidationError(f"username {username!r}: 2-64 characters, lower-case letters, digits, '.', '_' or '-'")
    _check_role(role)
    if repo.user_by_username(session, username) is not None:
        raise ConflictError(f"user {username!r} already exists")
    covered = resolve_departments(session, departments)
    home = resolve_departments(session, [home_department])[0] if home_department else None
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=passwords.hash_password(password) if password is not None else None,
        password_changed_at=utcnow() if password is not None else None,
        active=active,
        failed_logins=0,
        home_department_id=home.id if home else None,
    )
    user.departments = covered
    session.add(user)
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        details={"username": username, "role": role, "departments": list(departments)},
    )
    return user


def _get_user(session: Session, username: str) -> User:
    user = repo.user_by_username(session, username)
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist")
    return user


def set_role(
    session: Session, *, actor: User | None, username: str, role: str, departments: Sequence[str] | None = None
) -> User:
    require(actor, "manage_users")
    _check_role(role)
    user = _get_user(session, username)
    old = user.role
    user.role = role
    if departments is not None:
        user.departments = resolve_departments(session, departments)
    auditlog.record(
        session,
        actor=actor,
        action="user.set_role",
        entity_type="user",
        entity_id=user.id,
        details={"from": old, "to": role, "departments": list(departments or [])},
    )
    return user


DISPLAY_NAME_MAX = 200


def set_profile(
    session: Session, *, actor: User | None, username: str, display_name: str, home_department: str | None
) -> User:
    """Change an account's display name and home department (None: none)."""
    require(actor, "manage_users")
    user = _get_user(session, username)
    name = " ".join(display_name.split())
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise ValidationError(f"display name: must be 1 to {DISPLAY_NAME_MAX} characters")
    home = resolve_departments(session, [home_department])[0] if home_department else None
    before = {"display_name": user.display_name, "home_department_id": user.home_department_id}
    user.display_name = name
    user.home_department_id = home.id if home else None
    auditlog.record(
        session,
        actor=actor,
        action="user.set_profile",
        entity_type="user",
        entity_id=user.id,
        details={"from": before, "to": {"display_name": name, "home_department_id": user.home_department_id}},
    )
    return user


def set_active(session: Session, *, actor: User | None, username: str, active: bool) -> User:
    """Activate or deactivate an account; a deactivated auditor's pending items go to the others."""
    require(actor, "manage_users")
    user = _get_user(session, username)
    if actor is not None and actor.id == user.id and not active:
        raise ValidationError("you cannot deactivate your own account")
    user.active = active
    auditlog.record(
        session,
        actor=actor,
        action="user.activate" if active else "user.deactivate",
        entity_type="user",
        entity_id=user.id,
    )
    if not active:
        session.flush()  # the pool picks among active auditors: no longer this one
        sampling_service.return_to_pool(session, actor=actor, auditor_id=user.id)
    return user


def reset_password(session: Session, *, actor: User | None, username: str, password: str) -> User:
    require(actor, "manage_users")
    user = _get_user(session, username)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    auditlog.record(session, actor=actor, action="user.reset_password", entity_type="user", entity_id=user.id)
    return user


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    message: str  # the same words for an unknown user and a wrong password

    @property
    def ok(self) -> bool:
        return self.user is not None


# One message for every refused password login: an unknown name, a wrong password and a locked account
# read alike, so that the login form does not tell which usernames exist.
GENERIC_FAILURE = "Wrong username or password. After five failed attempts an account stays locked for 15 minutes."
# single sign-on only: the provider has already said who it is
LOCKED = "Too many failed attempts: this account is locked for 15 minutes."


def no_account(identity: str) -> str:
    return f"Single sign-on said you are {identity!r}, but auditloop has no active account of that name. Ask an administrator."


def _record_login(session: Session, action: str, *, user: User | None = None, name: str = "", **details: Any) -> None:
    """The audit entry of a login attempt: by the user when known, else by the name that was tried."""
    auditlog.record(
        session,
        actor=user,
        actor_name=None if user is not None else name[:64],
        action=action,
        entity_type="user",
        entity_id=user.id if user is not None else None,
        details=details or None,
    )


def authenticate_identity(
    session: Session, claims: Mapping[str, Any], *, claim: str, now: dt.datetime | None = None
) -> LoginResult:
    """Map an identity the OIDC provider vouched for (the ID token's claims) to an active database
    user: ``claims[claim]`` is the username, compared case-insensitively. Users are never created here
    (an administrator adds them, with their role); a locked account stays locked.

    The caller commits, so that a refused identity is recorded too."""
    now = now or utcnow()
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        name = str(claims.get("sub") or "unknown")
        _record_login(session, "login.failed", name=name, method="oidc", reason=f"no {claim} claim")
        return LoginResult(None, f"Single sign-on sent no {claim!r} claim to name your auditloop account.")
    identity = value.strip()
    user = repo.user_by_username(session, identity.lower())
    if user is None or not user.active:
        _record_login(session, "login.failed", name=identity, method="oidc", reason="unknown or inactive")
        return LoginResult(None, no_account(identity))
    if user.locked_until is not None and user.locked_until > now:
        _record_login(session, "login.locked", user=user, method="oidc")
        return LoginResult(None, LOCKED)
    user.last_login_at = now
    _record_login(session, "login.success", user=user, method="oidc")
    return LoginResult(user, "Welcome.")


def authenticate(session: Session, username: str, password: str, *, now: dt.datetime | None = None) -> LoginResult:
    """Check a password; count failures in the database and lock the account after the auth policy's
    ``max_failed_logins`` in a row for its ``lockout_minutes`` (five, and fifteen minutes, by default).
    Every refusal has the same message and the same cost (one argon2 check), known name or not.

    The caller commits, so that failed attempts are recorded even when the login is refused.
    """
    now = now or utcnow()
    user = repo.user_by_username(session, username.strip().lower())
    if user is None or not user.active:
        passwords.verify_password(None, password)  # same cost as a real check
        _record_login(session, "login.failed", name=username, reason="unknown or inactive")
        return LoginResult(None, GENERIC_FAILURE)
    if user.locked_until is not None and user.locked_until > now:
        passwords.verify_password(user.password_hash, password)  # same cost: a quick refusal would tell
        _record_login(session, "login.locked", user=user)
        return LoginResult(None, GENERIC_FAILURE)
    if not passwords.verify_password(user.password_hash, password):
        user.failed_logins += 1
        policy = load_auth_policy(session)
        if user.failed_logins >= policy.max_failed_logins:
            user.locked_until = now + dt.timedelta(minutes=policy.lockout_minutes)
            user.failed_logins = 0
        _record_login(session, "login.failed", user=user)
        return LoginResult(None, GENERIC_FAILURE)
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.rehash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    _record_login(session, "login.success", user=user)
    return LoginResult(user, "Welcome.")
