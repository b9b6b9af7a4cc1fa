"""Errors the services raise; the CLI and the pages turn them into one-line messages."""

from __future__ import annotations


class AuditloopError(Exception):
    """Base for every error a user can act on (CLI exit code 1)."""


class ValidationError(AuditloopError):
    """Input was malformed or out of range."""


class NotFoundError(AuditloopError):
    """A referenced entity does not exist."""


class PermissionDenied(AuditloopError):
    """The acting user's role does not allow the action."""


class ConflictError(AuditloopError):
    """Someone else changed the entity first (lost-update protection), or a uniqueness rule."""


class ConfigurationError(AuditloopError):
    """A setting has a bad value."""
