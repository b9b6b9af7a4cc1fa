"""A form for any policy dataclass: one widget per field, chosen from the field's type.

The policy's own ``validate()`` (called by ``audit.policy.service.save``) decides what is valid; the
form only turns text into the field's type and shows the comment written above each field as help.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from typing import Any

import streamlit as st

from audit.errors import ValidationError

_FIELD_LINE = re.compile(r"^\s{4}(\w+)\s*:")
_COMMENT_LINE = re.compile(r"^\s{4}#\s?(.*)$")


def field_help(cls: type) -> dict[str, str]:
    """The ``# comment`` lines written directly above each field in the class source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    helps: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        comment = _COMMENT_LINE.match(line)
        if comment:
            pending.append(comment.group(1))
            continue
        field = _FIELD_LINE.match(line)
        if field and pending:
            helps[field.group(1)] = " ".join(pending)
        pending = []
    return helps


def _kinds(annotation: Any) -> tuple[set[type], bool]:
    """The plain types an annotation allows, and whether None is one of them."""
    origin = typing.get_origin(annotation)
    members = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    allowed: set[type] = set()
    optional = False
    for member in members:
        if member is type(None):
            optional = True
        else:
            allowed.add(typing.get_origin(member) or member)
    return allowed, optional


def parse_value(name: str, raw: str, annotation: Any) -> Any:
    """Turn the text typed for a field into the field's type (ValidationError naming the field if not)."""
    allowed, optional = _kinds(annotation)
    text = raw.strip()
    if not text:
        if optional:
            return None
        if str in allowed:
            return ""
        raise ValidationError(f"{name}: a value is required")
    if allowed & {list, dict}:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if str in allowed:
                return text
            raise ValidationError(f"{name}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if str in allowed and isinstance(value, str):
            return value
        if not any(isinstance(value, kind) for kind in allowed):
            expected = " or ".join(sorted(k.__name__ for k in allowed))
            raise ValidationError(f"{name}: expected {expected}, got {type(value).__name__}")
        return value
    if float in allowed or int in allowed:
        try:
            number = float(text)
        except ValueError as exc:
            raise ValidationError(f"{name}: {text!r} is not a number") from exc
        return int(number) if int in allowed and float not in allowed and number.is_integer() else number
    return text


def policy_form(*, key: str, cls: type, current: Any) -> Any | None:
    """Draw the form; on submit return a new ``cls`` instance (not yet validated), otherwise None."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    values: dict[str, Any] = {}
    raw_texts: dict[str, str] = {}
    with st.form(f"policy_form.{key}"):
        for field in dataclasses.fields(cls):
            annotation = hints[field.name]
            allowed, optional = _kinds(annotation)
            label = field.name.replace("_", " ")
            value = getattr(current, field.name)
            widget_key = f"policy_form.{key}.{field.name}"
            help_text = helps.get(field.name)
            if allowed == {bool} and not optional:
                values[field.name] = st.checkbox(label, value=bool(value), key=widget_key, help=help_text)
            elif allowed == {int} and not optional:
                values[field.name] = int(
                    st.number_input(label, value=int(value), step=1, key=widget_key, help=help_text)
                )
            elif allowed == {float} and not optional:
                values[field.name] = float(
                    st.number_input(label, value=float(value), step=0.01, format="%.4f", key=widget_key, help=help_text)
                )
            else:
                shown = "" if value is None else value if isinstance(value, str) else json.dumps(value)
                note = "Leave empty for none. " if optional else ""
                raw_texts[field.name] = st.text_input(
                    label, value=shown, key=widget_key, help=(note + (help_text or "")) or None
                )
        submitted = st.form_submit_button("Save policy", type="primary")
    if not submitted:
        return None
    for name, raw in raw_texts.items():
        values[name] = parse_value(name, raw, hints[name])
    return cls(**values)
