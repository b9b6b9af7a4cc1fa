"""The routing policy: which ratings open a review item for an SME.

Stored in the ``policies`` table under the name ``"routing"``; :func:`load_routing_policy` gives the
stored values over the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from audit.errors import ValidationError
from audit.policy import service as policy_service

POLICY_NAME = "routing"


@dataclass(frozen=True)
class RoutingPolicy:
    # a current rating with accuracy at or below this opens a review ("low_score")
    low_accuracy_max: int = 2
    # current ratings of one answer that differ by at least this on any dimension ("disagreement")
    disagreement_min: int = 2
    # a rating at least this far from a gold item's expected score on any dimension ("gold_miss")
    gold_miss_min: int = 2
    # any bias flag opens a review ("bias_flag")
    route_bias_flags: bool = True

    def validate(self) -> None:
        """Raise ValidationError naming the first field that is out of range."""
        for field, low, high in (
            ("low_accuracy_max", 0, 5),
            ("disagreement_min", 1, 4),
            ("gold_miss_min", 1, 4),
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValidationError(f"{field}: {value!r} is not a whole number between {low} and {high}")
        if not isinstance(self.route_bias_flags, bool):
            raise ValidationError(f"route_bias_flags: {self.route_bias_flags!r} is not true or false")


def load_routing_policy(session: Session) -> RoutingPolicy:
    """The stored routing policy over the defaults, validated."""
    policy = policy_service.load(session, POLICY_NAME, RoutingPolicy)
    policy.validate()
    return policy
