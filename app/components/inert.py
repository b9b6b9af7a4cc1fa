"""Show text that came from the model, the knowledge base or a user without interpreting it.

Model output may hold Markdown images, links or HTML pointing anywhere; rendered, they would make the
auditor's browser fetch them. ``st.text`` and ``st.code`` never parse Markdown or HTML, so everything
untrusted goes through them; where Streamlit parses Markdown anyway (labels), ``escape_markdown``.
"""

from __future__ import annotations

import difflib
import re

import streamlit as st

# every character Markdown (and Streamlit's :directive[...] syntax) gives a meaning to
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&])")


def escape_markdown(text: str, *, max_length: int = 120) -> str:
    """One line of literal text for a widget label: specials escaped, newlines folded, length capped."""
    flat = " ".join(text.split())
    if len(flat) > max_length:
        flat = flat[: max_length - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def show_text(text: str | None, *, caption: str | None = None, empty: str = "(empty)") -> None:
    """A block of untrusted text, wrapped, exactly as written."""
    if caption:
        st.caption(caption)
    st.text(text if text else empty, width="stretch")


def diff_text(before: str, after: str) -> str:
    """A line diff of two texts (words on separate lines when both are one paragraph)."""
    a_lines, b_lines = before.splitlines(), after.splitlines()
    if len(a_lines) <= 1 and len(b_lines) <= 1:
        # one-paragraph answers: a line diff would be one '-' and one '+'; diff sentence by sentence
        a_lines = re.split(r"(?<=[.!?])\s+", before.strip())
        b_lines = re.split(r"(?<=[.!?])\s+", after.strip())
    return "\n".join(difflib.unified_diff(a_lines, b_lines, "answer", "correction", lineterm="", n=2))


def show_diff(before: str, after: str) -> None:
    """The diff as a code block (no Markdown, no HTML): '-' lines from the answer, '+' from the correction."""
    diff = diff_text(before, after)
    st.code(diff or "(no difference)", language="diff", wrap_lines=True)
