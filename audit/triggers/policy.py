"""The "triggers" policy: when the evidence is strong enough to queue a retraining job."""

from __future__ import annotations

from dataclasses import dataclass

from audit.errors import ValidationError

POLICY_NAME = "triggers"


@dataclass
class TriggersPolicy:
    enabled: bool = True
    # applied data fixes since the last training job that justify retraining on their own
    min_applied_fixes: int = 20
    # quality is compared over windows of this many days (the last one against the one before)
    window_days: int = 7
    # production-weighted mean accuracy (1-5) below which the model is retrained
    accuracy_floor: float = 3.0
    # ... or a fall of at least this much against the previous window
    accuracy_drop: float = 0.3
    # a window with fewer accuracy ratings than this says nothing about quality
    min_ratings_in_window: int = 30
    # highest minus lowest department mean accuracy over the last window above which to retrain
    department_gap: float = 0.5
    # ... counting only departments with at least this many ratings (both ends of the gap)
    min_ratings_per_department: int = 30
    # quality and gap triggers stay quiet this many days after a job was queued, so that a slow
    # recovery does not queue a job every day (the fix count restarts at each job anyway)
    cooldown_days: int = 7

    def validate(self) -> None:
        def need(ok: bool, field: str, expected: str) -> None:
            if not ok:
                raise ValidationError(f"triggers policy: {field}: expected {expected}, got {getattr(self, field)!r}")

        need(isinstance(self.enabled, bool), "enabled", "true or false")
        for name in ("min_applied_fixes", "window_days", "min_ratings_in_window", "min_ratings_per_department"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "an integer >= 1")
        need(
            isinstance(self.cooldown_days, int)
            and not isinstance(self.cooldown_days, bool)
            and self.cooldown_days >= 0,
            "cooldown_days",
            "an integer >= 0",
        )
        need(
            isinstance(self.accuracy_floor, int | float) and 1 <= self.accuracy_floor <= 5,
            "accuracy_floor",
            "a number from 1 to 5",
        )
        for name in ("accuracy_drop", "department_gap"):
            value = getattr(self, name)
            need(isinstance(value, int | float) and 0 < value <= 4, name, "a number in (0, 4]")
