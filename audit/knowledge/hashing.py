"""Content hashes for examples: the same question/answer pair, however it is spaced or cased, hashes alike.

Ingest, the data-fix pipeline and the demo seeder all use these, so a pair can never be stored twice.
"""

from __future__ import annotations

import hashlib

# Unit separator: cannot appear in normalised text by accident, so "a b" + "c" != "a" + "b c".
_FIELD_SEPARATOR = "\x1f"


def normalise_text(text: str) -> str:
    """Collapse every run of whitespace to one space, strip the ends, casefold."""
    return " ".join(text.split()).casefold()


def question_hash(question: str) -> str:
    """sha256 hex of the normalised question: the key of gold items and retrieval pairs."""
    return hashlib.sha256(normalise_text(question).encode("utf-8")).hexdigest()


def example_content_hash(question: str, answer: str) -> str:
    """sha256 hex of ``normalise(question) + "\\x1f" + normalise(answer)``."""
    canonical = normalise_text(question) + _FIELD_SEPARATOR + normalise_text(answer)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
