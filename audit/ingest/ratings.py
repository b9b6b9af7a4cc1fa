"""``ingest ratings``: past audits migrated from spreadsheets, stored as ``origin='import'`` ratings.

Each imported rating has an idempotency key derived from (answer, auditor, created_at), so importing
the same sheet twice stores nothing new. A changed row, or a rating of an answer the auditor has
already rated, supersedes the current one only with ``--update``; the key then moves to the new row
(the old one keeps its history, loses ``is_current`` and its key).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import msgspec

from audit.ingest import bulk
from audit.ingest import repository as repo
from audit.ingest.lines import Problem, RawLine, check_fields, contains_nul, decode_object, known_names
from audit.ingest.records import RatingRecord, limits_checker
from audit.ingest.run import IngestRun
from audit.org import repository as org_repo
from audit.org import service as org_service
from audit.ratings.models import DIMENSIONS
from audit.ratings.rubric import RUBRIC_VERSION

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)
IDEMPOTENCY_PREFIX = "import:"
# ratings.idempotency_key is 64 characters: the prefix and the first 57 hex digits (228 bits) of the sha256
_KEY_DIGITS = 64 - len(IDEMPOTENCY_PREFIX)


def import_key(answer_external_id: str, auditor: str, created_at: dt.datetime) -> str:
    """``import:`` + sha256 of (answer external id, auditor, created_at in UTC ISO 8601), cut to 64 characters."""
    canonical = "\x1f".join((answer_external_id, auditor, created_at.astimezone(dt.UTC).isoformat()))
    return IDEMPOTENCY_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_KEY_DIGITS]


def _retire(rating_id: int, pending: dict[int, list[Any]], stored: list[int], column: int, value: Any) -> None:
    """Set ``column`` of a rating to ``value``: in its row when this chunk has yet to store it, else
    by an UPDATE (its id goes to ``stored``) before the chunk's rows are inserted."""
    row = pending.get(rating_id)
    if row is not None:
        row[column] = value
    else:
        stored.append(rating_id)


class RatingIngester:
    """Check and store imported ratings chunk by chunk, a chunk in a few statements (bulk.insert_ratings)."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run
        session = run.session
        self.departments = org_repo.department_ids_by_name(session)
        self.users = repo.user_ids_by_username(session)
        self.decoder = msgspec.json.Decoder(RatingRecord)
        self.within_limits = limits_checker(RatingRecord)
        self.first_new_id = repo.max_rating_id(session) + 1  # ratings from here on were stored by this file

    def _decode(self, raw: bytes | None) -> RatingRecord | None:
        if raw is None:
            return None
        try:
            record = self.decoder.decode(raw)
        except _DECODE_ERRORS:
            return None
        if not self.within_limits(record) or (b"\\u0000" in raw and contains_nul(record)):
            return None
        return record

    def _reference_problems(self, values: dict[str, Any], answers: dict[str, int]) -> list[Problem]:
        """Names that must resolve, and the rules that tie fields together."""
        problems: list[Problem] = []
        answer_id = values.get("answer_external_id")
        if answer_id is not None and answer_id not in answers:
            problems.append(
                ("answer_external_id", f"no answer with external_id {answer_id!r} (ingest the answers first)")
            )
        auditor = values.get("auditor")
        if auditor is not None and auditor not in self.users:
            if not self.run.options.create_auditors:
                problems.append(
                    ("auditor", f"unknown user {auditor!r} (use --create-auditors to create inactive auditor accounts)")
                )
            elif not org_service.USERNAME_RE.match(auditor):
                problems.append(
                    ("auditor", f"{auditor!r} cannot be a username: 2-64 lower-case letters, digits, '.', '_' or '-'")
                )
        for name in ("favoured_department", "disfavoured_department"):
            department = values.get(name)
            if department is not None and department not in self.departments:
                known = known_names(self.departments, "departments")
                problems.append((name, f"unknown department {department!r} ({known})"))
        named = values.get("favoured_department") is not None or values.get("disfavoured_department") is not None
        if values.get("bias_flag") is True and not named:
            problems.append(("bias_flag", "true needs favoured_department or disfavoured_department"))
        if values.get("bias_flag") is False and named:
            problems.append(("bias_flag", "false, but a favoured or disfavoured department is given"))
        favoured = values.get("favoured_department")
        if favoured is not None and favoured == values.get("disfavoured_department"):
            problems.append(("disfavoured_department", f"{favoured!r} is also the favoured department"))
        fields = (*DIMENSIONS, "sources_correct", "bias_flag")
        if all(name in values for name in fields) and not any(values[name] for name in fields):
            problems.append(("accuracy", "nothing is rated: every score, sources_correct and bias_flag are empty"))
        return problems

    def _plainly_valid(self, record: RatingRecord, answers: dict[str, int]) -> bool:
        """The common case, checked without building a dict: a known answer and auditor, no bias
        flag, no departments named, something rated. Anything else goes to :meth:`_reference_problems`."""
        return (
            record.answer_external_id in answers
            and record.auditor in self.users
            and not record.bias_flag
            and record.favoured_department is None
            and record.disfavoured_department is None
            and (
                record.accuracy is not None
                or record.completeness is not None
                or record.relevance is not None
                or record.coherence is not None
                or record.sources_correct is not None
            )
        )

    def ingest_chunk(self, lines: list[RawLine]) -> None:
        run = self.run
        decoded = [(number, raw, self._decode(raw)) for number, raw in lines]
        slow: dict[int, tuple[dict[str, Any], list[Problem]]] = {}  # line: (values, problems) of failed lines
        for number, raw, record in decoded:
            if record is None:
                obj, problems = decode_object(raw)
                slow[number] = check_fields(RatingRecord, obj) if obj is not None else ({}, problems)
        wanted = {r.answer_external_id for _, _, r in decoded if r is not None}
        wanted |= {v["answer_external_id"] for v, _ in slow.values() if "answer_external_id" in v}
        answers = bulk.answer_ids_by_external_id(run.session.connection(), wanted)

        valid: list[tuple[int, bytes, RatingRecord]] = []
        for number, raw, record in decoded:
            if record is None or raw is None:
                values, problems = slow[number]
                problems = problems + self._reference_problems(values, answers)
                run.reject(number, problems or [("json", "refused by the fast check but no problem found")], raw)
                continue
            if self._plainly_valid(record, answers):
                valid.append((number, raw, record))
                continue
            problems = self._reference_problems(msgspec.structs.asdict(record), answers)
            if problems:
                run.reject(number, problems, raw)
            else:
                valid.append((number, raw, record))
        self._store(valid, answers)

    def _content(self, record: RatingRecord) -> tuple[Any, ...]:
        """A record's values of the columns ``bulk.imported_ratings`` compares (accuracy ... comment)."""
        return (
            record.accuracy,
            record.completeness,
            record.relevance,
            record.coherence,
            record.sources_correct,
            record.bias_flag,
            self.departments.get(record.favoured_department or ""),
            self.departments.get(record.disfavoured_department or ""),
            record.comment,
        )

    def _store(self, valid: list[tuple[int, bytes, RatingRecord]], answers: dict[str, int]) -> None:
        """Decide each line in file order against what is stored and what earlier lines stored, then
        write the chunk in three statements: retire the ratings the new ones supersede, and insert
        the new ones in one ``executemany`` (SQLite) or ``COPY`` (PostgreSQL). Ids are reserved
        first, so a line can supersede a rating an earlier line of the same chunk stores."""
        run = self.run
        session = run.session
        connection = session.connection()
        keys = {number: import_key(r.answer_external_id, r.auditor, r.created_at) for number, _, r in valid}
        by_key = bulk.imported_ratings(connection, list(set(keys.values())))
        current = bulk.current_ratings(connection, list({answers[r.answer_external_id] for _, _, r in valid}))
        new_ids: list[int] = []  # reserved when the first line needs one, for the rest of the chunk
        stamp = bulk.storage_timestamp(connection)
        pending: dict[int, list[Any]] = {}  # rating id: its row (bulk.RATING_COLUMNS), stored at the end
        superseded: list[int] = []
        key_moved: list[int] = []
        for index, (number, raw, record) in enumerate(valid):
            key = keys[number]
            answer_id = answers[record.answer_external_id]
            auditor_id = self.users.get(record.auditor)
            content = self._content(record)
            imported = by_key.get(key)
            current_id = current.get((answer_id, auditor_id)) if auditor_id is not None else None
            if imported is not None and imported[1] == content:
                run.counts.unchanged += 1
                continue
            if imported is not None and imported[0] >= self.first_new_id:
                message = "the same answer, auditor and created_at appear earlier in this file with other content"
                run.reject(number, [("created_at", message)], raw)
                continue
            if not run.options.update and (imported is not None or current_id is not None):
                if imported is not None:
                    message = "this rating was imported before with other content (use --update to replace it)"
                    run.reject(number, [("created_at", message)], raw)
                else:
                    message = (
                        f"{record.auditor!r} already has a current rating of answer {record.answer_external_id!r} "
                        "(use --update to supersede it)"
                    )
                    run.reject(number, [("auditor", message)], raw)
                continue
            if auditor_id is None:
                auditor_id = self._create_auditor(record.auditor)
            if imported is not None:  # the key moves to the row that replaces this one
                _retire(imported[0], pending, key_moved, bulk.RATING_KEY, None)
            if current_id is not None:
                _retire(current_id, pending, superseded, bulk.RATING_IS_CURRENT, False)
            if not new_ids:  # a repeated file stores nothing and reserves nothing
                new_ids = bulk.reserve_rating_ids(connection, len(valid) - index)[::-1]
            new_id = new_ids.pop()
            pending[new_id] = [
                new_id,
                answer_id,
                auditor_id,
                *content[:8],
                record.comment,
                RUBRIC_VERSION,
                "import",
                True,
                current_id,
                key,
                stamp(record.created_at),
            ]
            by_key[key] = (new_id, content)
            current[(answer_id, auditor_id)] = new_id
            if current_id is None:
                run.counts.inserted += 1
            else:
                run.counts.updated += 1
        session.flush()  # auditors created above, before rows that name them
        bulk.retire_ratings(connection, superseded=superseded, key_moved=key_moved)
        bulk.insert_ratings(connection, list(pending.values()))

    def _create_auditor(self, username: str) -> int:
        """``--create-auditors``: an inactive auditor account without a password (an admin activates it)."""
        user = org_service.create_user(
            self.run.session, actor=self.run.actor, username=username, role="auditor", password=None, active=False
        )
        self.users[username] = user.id
        self.run.counts.created_auditors += 1
        return user.id

    def finish(self) -> None:
        """Ratings are stored chunk by chunk; nothing is left to do at the end."""
