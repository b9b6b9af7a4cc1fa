"""The sampling policy: how the daily sample is drawn and how long an opened item stays locked.

Stored in the ``policies`` table under the name ``"sampling"`` (admins edit it through
``audit.policy.service.save``); :func:`load_sampling_policy` gives the stored values over the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy.orm import Session

from audit.choices import MAX_SAMPLE_SIZE
from audit.errors import ValidationError
from audit.policy import service as policy_service

POLICY_NAME = "sampling"


@dataclass(frozen=True)
class SamplingPolicy:
    # items drawn per day, gold items included
    sample_size: int = 200
    # every asker department with answers gets at least this many (or all it has)
    per_department_min: int = 10
    # target share of the production items that are low-confidence answers (oversampling)
    low_confidence_share: float = 0.25
    # "low confidence" = confidence below this quantile of the day's population ...
    low_confidence_quantile: float = 0.2
    # ... unless a fixed threshold is set (confidence is a mean token log-prob, so usually negative)
    low_confidence_threshold: float | None = None
    # share of the sample made of gold items (answers with known expected scores)
    gold_share: float = 0.05
    # share of the production items rated by ``overlap_k`` auditors (for agreement)
    overlap_share: float = 0.2
    overlap_k: int = 2
    # an opened item not finished within this many minutes may be handed to someone else
    lock_minutes: int = 30
    # the population is the answers of the ``window_days`` days before the sample date
    window_days: int = 1
    # never give auditors answers asked by their own (home) department
    exclude_own_department: bool = False

    def validate(self) -> None:
        """Raise ValidationError naming the first field that is out of range."""
        _int_between("sample_size", self.sample_size, 1, MAX_SAMPLE_SIZE)
        _int_between("per_department_min", self.per_department_min, 0, MAX_SAMPLE_SIZE)
        _share("low_confidence_share", self.low_confidence_share)
        _share("low_confidence_quantile", self.low_confidence_quantile)
        if self.low_confidence_threshold is not None and (
            isinstance(self.low_confidence_threshold, bool)
            or not isinstance(self.low_confidence_threshold, int | float)
        ):
            raise ValidationError(
                f"low_confidence_threshold: {self.low_confidence_threshold!r} is not a number (or empty)"
            )
        _share("gold_share", self.gold_share)
        _share("overlap_share", self.overlap_share)
        _int_between("overlap_k", self.overlap_k, 2, 10)
        _int_between("lock_minutes", self.lock_minutes, 1, 24 * 60)
        _int_between("window_days", self.window_days, 1, 90)
        if not isinstance(self.exclude_own_department, bool):
            raise ValidationError(f"exclude_own_department: {self.exclude_own_department!r} is not true or false")


def _int_between(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{field}: {value!r} is not a whole number between {low} and {high}")


def _share(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValidationError(f"{field}: {value!r} is not a share between 0 and 1")


def load_sampling_policy(session: Session) -> SamplingPolicy:
    """The stored sampling policy over the defaults, validated."""
    policy = policy_service.load(session, POLICY_NAME, SamplingPolicy)
    policy.validate()
    return policy


def sampling_policy_from(settings: Mapping[str, Any] | None) -> SamplingPolicy:
    """The policy from stored settings read by the caller (None: nothing stored), as
    :func:`load_sampling_policy` gives it: over the defaults, unknown keys ignored, validated."""
    known = {f.name for f in fields(SamplingPolicy)}
    policy = SamplingPolicy(**{k: v for k, v in (settings or {}).items() if k in known})
    policy.validate()
    return policy
