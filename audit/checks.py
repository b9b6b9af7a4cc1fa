"""Argument checks every service shares: ids and free text, refused before they reach SQL.

A service that hands a bad id or text to the database gets a driver error (OverflowError on SQLite
for an id past 2**63, DataError on PostgreSQL past 2**31 or for a NUL character, UnicodeEncodeError
for a lone surrogate) instead of the one-line message the user can act on. These checks turn each
into a :class:`ValidationError` naming the field, or tell the caller that the id cannot exist.
"""

from __future__ import annotations

from typing import Any

from audit.errors import ValidationError

#: Key columns are INTEGER: 32-bit on PostgreSQL, so no row has an id past this on either database.
MAX_ID = 2**31 - 1


def row_id(field: str, value: Any) -> int | None:
    """``value`` as a row id, or None when it cannot name a row (outside 1..MAX_ID): the caller's
    "does not exist" path then answers. Anything but a whole number is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field}: expected a whole-number id, got {type(value).__name__}")
    return value if 1 <= value <= MAX_ID else None


def unstorable(text: str) -> str | None:
    """What in ``text`` no database column can store: a NUL, or a lone UTF-16 surrogate."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    for char in text:
        if "\ud800" <= char <= "\udfff":
            return f"a lone UTF-16 surrogate (\\u{ord(char):04x})"
    return None


def text(field: str, value: Any, limit: int) -> str | None:
    """Free text as stored: stripped, None when empty; refused when not text, too long or unstorable."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field}: expected text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > limit:
        raise ValidationError(f"{field}: {len(value)} characters, at most {limit} allowed")
    problem = unstorable(value)
    if problem is not None:
        raise ValidationError(f"{field}: contains {problem}, which cannot be stored")
    return value or None
