"""The documents an answer cited: title, department, version, an outdated marker, an excerpt, and the
full text on demand (a closed ``<details>``: drawn only when opened) — all as inert text, in one HTML
block (``sources_html``) that a page can put beside other inert text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from app.components.inert import INERT_STYLE, escape_html, text_html
from audit.sampling.repository import SourceView

EXCERPT_CHARS = 280
# a longer document's full text is sent only when asked for (``full_text_chars=None``): a body may
# hold up to a million characters, and every item's page would carry them all
FULL_TEXT_CHARS = 20_000
NO_SOURCES = "The answer cited no sources."


def excerpt(body: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + " …"


def has_long_text(bodies: Mapping[int, str], full_text_chars: int = FULL_TEXT_CHARS) -> bool:
    return any(len(body) > full_text_chars for body in bodies.values())


def sources_html(
    sources: Sequence[SourceView], bodies: Mapping[int, str], *, full_text_chars: int | None = None
) -> str:
    """The sources as HTML in which everything that came from the database is escaped text; with
    ``full_text_chars``, a longer full text is cut there (and says so)."""
    if not sources:
        return f'<div class="al-caption">{NO_SOURCES}</div>'
    parts = []
    for number, source in enumerate(sources, 1):
        title = source.title or source.external_id or "unknown document"
        facts = [
            source.department or "department unknown",
            f"version {source.version}" if source.version is not None else "version unknown",
            source.external_id or "",
            f"retrieval score {source.score:.2f}" if source.score is not None else "",
        ]
        parts.append('<div class="al-box">')
        parts.append(f'<div class="al-title">[{number}] {escape_html(title)}</div>')
        parts.append(f'<div class="al-caption">{escape_html(" · ".join(f for f in facts if f))}</div>')
        if source.outdated:
            parts.append('<span class="al-badge">outdated: a newer version exists</span>')
        body = bodies.get(source.document_id) if source.document_id is not None else None
        if body:
            parts.append(text_html(excerpt(body)))
            shown = body if full_text_chars is None else body[:full_text_chars]
            cut = (
                f'<div class="al-caption">The first {len(shown):,} of {len(body):,} characters '
                "(the rest on demand).</div>"
                if len(shown) < len(body)
                else ""
            )
            parts.append(f"<details><summary>Full text</summary>{text_html(shown)}{cut}</details>")
        parts.append("</div>")
    return "".join(parts)


def show_sources(sources: Sequence[SourceView], bodies: Mapping[int, str]) -> None:
    st.html(INERT_STYLE + sources_html(sources, bodies))
