"""Show text that came from the model, the knowledge base or a user without interpreting it.

Model output may hold Markdown images, links or HTML pointing anywhere; rendered, they would make the
auditor's browser fetch them. ``st.text`` and ``st.code`` never parse Markdown or HTML, so everything
untrusted goes through them; where Streamlit parses Markdown anyway (labels), ``escape_markdown``.
Where one page shows many pieces of text at once, ``escape_html`` turns each into HTML that can only
be text (every ``<``, ``>``, ``&`` and quote escaped), so that they can be laid out together in a
single ``st.html`` block: one element for the browser to draw instead of dozens.
"""

from __future__ import annotations

import difflib
import html
import re

import streamlit as st

# every character Markdown (and Streamlit's :directive[...] syntax) gives a meaning to
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&])")


# GitHub-flavoured Markdown (Streamlit's) also links bare URLs and e-mail addresses, and it finds them
# in the text after the escapes are resolved (mdast-util-gfm-autolink-literal: ``http(s)://``, ``www.``
# and ``name@host.tld``), so no escape stops it. A word joiner (U+2060: no width, no line break) after
# the scheme's colon, after ``www`` and after ``@`` breaks each pattern; the text reads the same.
_AUTOLINK = re.compile(r"(?i)(https?:|www(?=\.)|@)")
WORD_JOINER = "\u2060"


def escape_markdown(text: str, *, max_length: int = 120) -> str:
    """One line of literal text for a widget label: specials escaped, no autolink, newlines folded,
    length capped."""
    flat = " ".join(text.split())
    if len(flat) > max_length:
        flat = flat[: max_length - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(rf"\1{WORD_JOINER}", flat))


def escape_html(text: str) -> str:
    """Text as HTML that is only that text: no tag, entity or attribute can come out of it."""
    return html.escape(text, quote=True)


def text_html(text: str | None, *, empty: str = "(empty)") -> str:
    """A block of untrusted text for an ``st.html`` layout, wrapped, exactly as written (like ``show_text``)."""
    return f'<div class="al-text">{escape_html(text) if text else escape_html(empty)}</div>'


# Styles for the ``al-`` classes of the HTML blocks (``text_html``, ``app.components.sources``): theme
# neutral (currentColor), no fonts or images fetched.
INERT_STYLE = """<style>
.al-text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.95rem; line-height: 1.5; }
.al-caption { font-size: 0.875rem; opacity: 0.65; margin: 0.25rem 0; overflow-wrap: anywhere; }
.al-box { border: 1px solid color-mix(in srgb, currentColor 18%, transparent); border-radius: 0.5rem;
  padding: 0.75rem 1rem; margin: 0.25rem 0 0.75rem 0; }
.al-heading { font-size: 1.25rem; font-weight: 600; margin: 0.75rem 0 0.25rem 0; }
.al-title { font-weight: 600; overflow-wrap: anywhere; }
.al-badge { display: inline-block; font-size: 0.8rem; padding: 0.05rem 0.5rem; border-radius: 0.5rem;
  color: #b45309; background: rgba(255, 164, 33, 0.15); margin: 0.1rem 0 0.35rem 0; }
.al-text + details, .al-box details { margin-top: 0.4rem; }
.al-box summary { cursor: pointer; font-size: 0.875rem; }
</style>"""


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
