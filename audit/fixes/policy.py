"""The "fixes" policy: which kinds of data fix apply on their own, and the similarity thresholds
that decide conflicts and evaluation-set leaks."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.errors import ValidationError
from audit.fixes.models import FIX_KINDS

POLICY_NAME = "fixes"


@dataclass
class FixesPolicy:
    # Kinds applied without a lead: they only add data or mark what is already known outdated.
    # Quarantining an example and re-weighting departments remove or skew data: a lead decides.
    auto_apply_kinds: list[str] = field(default_factory=lambda: ["add_example", "retrieval_pair", "supersede_document"])
    # TF-IDF cosine similarity of two questions at or above which they ask the same thing: an
    # active example with such a question and a different answer conflicts with a correction.
    conflict_similarity: float = 0.8
    # The same measure against held-out gold questions: at or above it a new example would leak
    # the evaluation set.
    gold_similarity: float = 0.8
    # "uniform" (every department the same share) or {department name: share}, shares summing to 1.
    rebalance_target: str | dict[str, float] = "uniform"
    # A current document family with fewer examples citing it than this is under-covered.
    min_examples_per_topic: int = 2
    # How many times an applied SME correction counts in the dataset versions the fixes write (times
    # its department's rebalance weight): a correction answers a question production really asked,
    # in the words staff used, where the model was wrong; among a thousand curated examples, counted
    # once, the few corrections of a phrasing the curated data lacks are seen once per epoch. 1 = no
    # up-weighting. Set before the demo loop measured it (see the README's loop section).
    correction_weight: int = 3
    # How many other documents of the department an SME correction is carried over to (0 = none): where
    # the question names the cited document's title and the correction quotes one of its sentences,
    # the same question about another current document that states the same sentence with its own
    # value becomes an example too, answered with that sentence (origin "synthetic", the review's id
    # kept). A correction of a phrasing the curated data lacks then teaches the phrasing, not one
    # document's answer. Carried examples pass the same guards as corrections (a held-out gold
    # question or reference answer is never written) and count their department's weight only.
    carry_over: int = 3

    def validate(self) -> None:
        unknown = sorted(set(self.auto_apply_kinds) - set(FIX_KINDS))
        if unknown:
            raise ValidationError(
                f"fixes policy: auto_apply_kinds: unknown kind(s) {unknown}; known: {list(FIX_KINDS)}"
            )
        for name in ("conflict_similarity", "gold_similarity"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 < float(value) <= 1.0:
                raise ValidationError(f"fixes policy: {name}: expected a number in (0, 1], got {value!r}")
        if isinstance(self.rebalance_target, str):
            if self.rebalance_target != "uniform":
                raise ValidationError(
                    f"fixes policy: rebalance_target: expected 'uniform' or {{department: share}}, "
                    f"got {self.rebalance_target!r}"
                )
        elif isinstance(self.rebalance_target, dict):
            if not self.rebalance_target:
                raise ValidationError("fixes policy: rebalance_target: no departments given")
            if any(not isinstance(v, int | float) or v < 0 for v in self.rebalance_target.values()):
                raise ValidationError("fixes policy: rebalance_target: shares must be non-negative numbers")
            total = sum(float(v) for v in self.rebalance_target.values())
            if abs(total - 1.0) > 1e-6:
                raise ValidationError(f"fixes policy: rebalance_target: shares sum to {total:g}, expected 1")
        else:
            raise ValidationError("fixes policy: rebalance_target: expected 'uniform' or {department: share}")
        if (
            isinstance(self.correction_weight, bool)
            or not isinstance(self.correction_weight, int)
            or not (1 <= self.correction_weight <= 100)
        ):
            raise ValidationError(
                f"fixes policy: correction_weight: expected an integer from 1 to 100, got {self.correction_weight!r}"
            )
        if isinstance(self.carry_over, bool) or not isinstance(self.carry_over, int) or not 0 <= self.carry_over <= 20:
            raise ValidationError(
                f"fixes policy: carry_over: expected an integer from 0 to 20, got {self.carry_over!r}"
            )
        if not isinstance(self.min_examples_per_topic, int) or self.min_examples_per_topic < 1:
            raise ValidationError(
                f"fixes policy: min_examples_per_topic: expected an integer >= 1, got {self.min_examples_per_topic!r}"
            )
