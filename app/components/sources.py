"""The documents an answer cited: title, department, version, an outdated marker, an excerpt, and the
full text in an expander — all shown as inert text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from app.components.inert import escape_markdown, show_text
from audit.sampling.repository import SourceView

EXCERPT_CHARS = 280


def excerpt(body: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + " …"


def show_sources(sources: Sequence[SourceView], bodies: Mapping[int, str]) -> None:
    if not sources:
        st.caption("The answer cited no sources.")
        return
    for number, source in enumerate(sources, 1):
        with st.container(border=True):
            title = source.title or source.external_id or "unknown document"
            st.text(f"[{number}] {title}")
            facts = [
                source.department or "department unknown",
                f"version {source.version}" if source.version is not None else "version unknown",
                source.external_id or "",
                f"retrieval score {source.score:.2f}" if source.score is not None else "",
            ]
            st.caption(escape_markdown(" · ".join(f for f in facts if f), max_length=300))
            if source.outdated:
                st.badge("outdated: a newer version exists", icon=":material/history:", color="orange")
            body = bodies.get(source.document_id) if source.document_id is not None else None
            if body:
                show_text(excerpt(body))
                with st.expander("Full text"):
                    show_text(body)
