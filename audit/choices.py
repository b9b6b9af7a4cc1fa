"""The closed sets of values and the limits of the domain: roles, rating dimensions, review reasons, fix
kinds, report names. Plain constants that import nothing, so the CLI builds its option choices (and
``auditloop ... --help``) without loading SQLAlchemy or the metric stack.

Each is defined here once; the domain module that owns it imports it from here and re-exports it
(``audit.org.models.ROLES`` is this ``ROLES``). The CHECK constraints in the models and migrations
spell the same values out in SQL.
"""

from __future__ import annotations

# org: what a user may be
ROLES = ("auditor", "sme", "lead", "admin")

# ratings
DIMENSIONS = ("accuracy", "completeness", "relevance", "coherence")
SOURCES_CORRECT = ("yes", "no", "unsure")
RATING_ORIGINS = ("app", "import", "simulated")

# review
REVIEW_REASONS = ("low_score", "bias_flag", "disagreement", "gold_miss")
REVIEW_STATUSES = ("open", "claimed", "confirmed", "dismissed")
ROOT_CAUSES = ("wrong_training_data", "outdated_source", "retrieval_error", "hallucination", "department_bias")
# root causes whose fix is a better answer: the SME must write it
CONTENT_ROOT_CAUSES = ("wrong_training_data", "outdated_source", "hallucination")

# fixes
FIX_KINDS = ("add_example", "quarantine_example", "supersede_document", "retrieval_pair", "rebalance")
FIX_STATUSES = ("proposed", "applied", "rejected")

# measures
REPORT_NAMES = ("quality", "agreement", "calibration", "fairness", "funnel", "metrics-vs-humans")
MIN_SHARED_ITEMS = 20  # answers two auditors must both have rated before their kappa is reported

# sampling
MAX_SAMPLE_SIZE = 100_000

# knowledge: the formats a dataset version exports to
EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "hf")
