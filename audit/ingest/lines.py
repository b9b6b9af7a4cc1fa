"""Reading JSONL input in chunks, and explaining in words what is wrong with a line that failed.

The fast path decodes a line straight into a typed struct; only a line that fails comes here to be
taken apart field by field, so every problem on it is reported as ``FILE:LINE: field: problem``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from audit import checks
from audit.ingest.records import InputRecord, violates_limits

MAX_LINE_BYTES = 16 * 1024 * 1024
DEFAULT_CHUNK_LINES = 10_000
_SHOWN_VALUE_CHARS = 60

# (line number, the bytes of the line; None when the line is longer than MAX_LINE_BYTES)
RawLine = tuple[int, bytes | None]
Problem = tuple[str, str]  # (field path, what is wrong)


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    problem: str

    def format(self, file: str) -> str:
        return f"{file}:{self.line}: {self.field}: {self.problem}"


def read_chunks_at(
    path: Path, *, chunk_lines: int, max_line_bytes: int
) -> Iterator[tuple[list[tuple[int, bytes | None, int]], int]]:
    """The non-blank lines of ``path`` in chunks, numbered from 1, each with its byte offset (the
    ingest worker reads a rejected line back by it): yields ``([(number, raw or None, offset), ...],
    bytes read since the previous chunk)``; the last yield may hold no lines (a blank tail's bytes).
    ``raw`` is None for a line longer than ``max_line_bytes``, which is skipped without being held."""
    chunk: list[tuple[int, bytes | None, int]] = []
    offset = 0
    reported = 0
    with path.open("rb", buffering=1 << 20) as fh:
        readline = fh.readline
        number = 0
        while True:
            line = readline(max_line_bytes + 1)
            if not line:
                break
            number += 1
            start = offset
            offset += len(line)
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                while True:  # too long to hold: skip to the end of this line without keeping it
                    rest = readline(1 << 20)
                    offset += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                chunk.append((number, None, start))
            elif line.isspace():
                continue
            else:
                chunk.append((number, line, start))
            if len(chunk) >= chunk_lines:
                yield chunk, offset - reported
                reported = offset
                chunk = []
    yield chunk, offset - reported


def read_chunks(
    path: Path, *, chunk_lines: int = DEFAULT_CHUNK_LINES, on_bytes: Callable[[int], None] | None = None
) -> Iterator[list[RawLine]]:
    """Yield the non-blank lines of ``path`` in chunks, numbered from 1; report bytes read as it goes."""
    for chunk, bytes_read in read_chunks_at(path, chunk_lines=chunk_lines, max_line_bytes=MAX_LINE_BYTES):
        if chunk:
            yield [(number, raw) for number, raw, _ in chunk]
        if on_bytes is not None and bytes_read:
            on_bytes(bytes_read)


_KNOWN_SHOWN = 12


def known_names(names: dict[str, Any] | set[str], what: str) -> str:
    """``known: A, B, C`` (the first few, sorted) for an unknown-name message."""
    listed = sorted(names)
    if not listed:
        return f"no {what} exist yet"
    more = f", ... ({len(listed)} in all)" if len(listed) > _KNOWN_SHOWN else ""
    return "known: " + ", ".join(listed[:_KNOWN_SHOWN]) + more


def raw_text(raw: bytes | None) -> str:
    """The line as text for the rejected-lines file (undecodable bytes shown as \\xNN)."""
    if raw is None:
        return ""
    return raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")


def describe(value: Any) -> str:
    """A short rendering of a JSON value for an error message."""
    if isinstance(value, str) and len(value) > _SHOWN_VALUE_CHARS:
        return f"a string of {len(value):,} characters"
    if isinstance(value, list | dict) and len(value) > 5:
        kind = "a list" if isinstance(value, list) else "an object"
        return f"{kind} of {len(value):,} items"
    # a lone surrogate inside would make the message unprintable: show it escaped
    shown = json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")
    return shown if len(shown) <= _SHOWN_VALUE_CHARS else shown[: _SHOWN_VALUE_CHARS - 3] + "..."


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def contains_nul(value: Any) -> bool:
    """True if any string inside a decoded value holds U+0000 (PostgreSQL text cannot store it).
    The fast path's check: msgspec itself refuses lone surrogates."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, msgspec.Struct):
        return contains_nul(msgspec.structs.astuple(value))
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    return False


def _unstorable(value: Any) -> str | None:
    """What in a decoded JSON value cannot be stored as text: NUL, or a lone UTF-16 surrogate."""
    if isinstance(value, str):
        return checks.unstorable(value)
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = _unstorable(item)
        if found is not None:
            return found
    return None


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return number


def decode_object(raw: bytes | None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Decode a line as a JSON object, or say why it is not one.

    A line msgspec refuses is judged again without it, so the message does not depend on how one
    msgspec release words or types its error: invalid UTF-8 (msgspec 0.18 raises UnicodeDecodeError
    counting from the start of the string it was reading, 0.23 a DecodeError without a position) is
    found by the codec, with its byte in the line; the rest is parsed with ``json``, which tells
    malformed JSON (with its column) from a well-formed line whose fields hold unstorable text (msgspec
    refuses lone UTF-16 surrogates with a confusing message, "truncated"; the standard library
    accepts them).
    """
    if raw is None:
        return None, [("json", f"line is longer than {MAX_LINE_BYTES:,} bytes")]
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as utf8_exc:
            return None, [("json", f"not valid UTF-8 (byte {utf8_exc.start + 1} of the line)")]
        try:
            value = json.loads(raw.strip(), parse_constant=_reject_constant, parse_float=_finite_float)
        except json.JSONDecodeError as json_exc:
            return None, [("json", f"malformed JSON: {json_exc.msg} at column {json_exc.colno}")]
        except ValueError as value_exc:
            return None, [("json", f"malformed JSON: {value_exc}")]
        if isinstance(value, dict) and _unstorable(value) is None:
            return None, [("json", f"malformed JSON: {str(exc).removeprefix('JSON is malformed: ')}")]
    if not isinstance(value, dict):
        return None, [("json", f"expected a JSON object, got {json_kind(value)}")]
    return value, []


def _field_problem(expected: str, value: Any, exc: msgspec.ValidationError) -> str:
    if "timezone component" in str(exc):
        return f"{describe(value)} has no time zone: add Z or an offset such as +01:00"
    return f"expected {expected}, got {describe(value)}"


def check_fields(
    struct_type: type[InputRecord], obj: dict[str, Any], prefix: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """Convert each field of ``obj`` on its own; return the fields that converted and a problem per
    field that did not (missing, unknown, wrong type, out of range, too long, NUL characters)."""
    expected = struct_type.EXPECTED
    nested = struct_type.NESTED
    fields = msgspec.structs.fields(struct_type)
    known = {f.encode_name for f in fields}
    problems: list[Problem] = [
        (f"{prefix}{name}", f"unknown field (expected: {', '.join(sorted(known))})")
        for name in obj
        if name not in known
    ]
    converted: dict[str, Any] = {}
    for field in fields:
        path = f"{prefix}{field.encode_name}"
        if field.encode_name not in obj:
            if field.required:
                problems.append((path, "required field is missing"))
            continue
        value = obj[field.encode_name]
        try:
            converted[field.name] = msgspec.convert(value, field.type)
        except msgspec.ValidationError as exc:
            element_problems = []
            if field.name in nested and isinstance(value, list):
                for index, element in enumerate(value):
                    if not isinstance(element, dict):
                        element_problems.append((f"{path}[{index}]", f"expected an object, got {json_kind(element)}"))
                        continue
                    element_problems += check_fields(nested[field.name], element, f"{path}[{index}].")[1]
            problems += element_problems or [(path, _field_problem(expected.get(field.name, "?"), value, exc))]
            continue
        if violates_limits(struct_type, field.name, value):
            problems.append((path, f"expected {expected.get(field.name, '?')}, got {describe(value)}"))
            del converted[field.name]
        elif (unstorable := _unstorable(value)) is not None:
            problems.append((path, f"contains {unstorable}, which cannot be stored"))
            del converted[field.name]
    return converted, problems
