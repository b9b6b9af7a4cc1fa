"""The auth policy: how long a login lasts, and how many failed password logins lock an account for
how long.

Stored in the ``policies`` table under the name ``"auth"`` (admins edit it on the Policies page,
through ``audit.policy.service.save``); :func:`load_auth_policy` gives the stored values over the
defaults. The session limits are enforced by the app (``app.session``), the lockout by
``audit.org.service.authenticate``, in the database, so every replica counts the same failures.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from audit.errors import ValidationError
from audit.policy import service as policy_service

POLICY_NAME = "auth"
MAX_FAILED_LOGINS_LIMIT = 20  # more tries than this and the lockout no longer slows a password guesser
LOCKOUT_MINUTES_LIMIT = 24 * 60


@dataclass
class AuthPolicy:
    # a session ends after this many minutes without any interaction
    idle_timeout_minutes: int = 30
    # ... and this many hours after the login, whatever happens
    session_lifetime_hours: int = 12
    # this many wrong passwords in a row lock the account (a successful login or a reset starts the count again)
    max_failed_logins: int = 5
    # for this many minutes, in which even the right password is refused (an administrator's reset lifts it)
    lockout_minutes: int = 15

    def validate(self) -> None:
        """Raise ValidationError naming the first field that is out of range."""
        _whole_between("idle_timeout_minutes", self.idle_timeout_minutes, 1, 24 * 60)
        _whole_between("session_lifetime_hours", self.session_lifetime_hours, 1, 7 * 24)
        if self.idle_timeout_minutes > self.session_lifetime_hours * 60:
            raise ValidationError("auth policy: the idle timeout cannot be longer than the session lifetime")
        _whole_between("max_failed_logins", self.max_failed_logins, 1, MAX_FAILED_LOGINS_LIMIT)
        _whole_between("lockout_minutes", self.lockout_minutes, 1, LOCKOUT_MINUTES_LIMIT)


def _whole_between(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"auth policy: {field} must be a whole number between {low} and {high}")


def load_auth_policy(session: Session) -> AuthPolicy:
    return policy_service.load(session, POLICY_NAME, AuthPolicy)
