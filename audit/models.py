"""Every table, re-exported so that Alembic (and readers) find the whole schema in one place."""

from audit.answers.models import Answer, AnswerReference
from audit.auditlog.models import AuditLogEntry
from audit.base import Base
from audit.fixes.models import DataFix
from audit.knowledge.models import DatasetVersion, Document, Example, RetrievalEvalPair, dataset_version_examples
from audit.modelops.models import EvaluationItem, ModelVersion, TrainingJob
from audit.org.models import Department, User, user_departments
from audit.policy.models import Policy
from audit.ratings.models import Rating
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import Assignment, GoldItem, SampleBatch, SampleItem

__all__ = [
    "Answer",
    "AnswerReference",
    "Assignment",
    "AuditLogEntry",
    "Base",
    "DataFix",
    "DatasetVersion",
    "Department",
    "Document",
    "EvaluationItem",
    "Example",
    "GoldItem",
    "ModelVersion",
    "Policy",
    "Rating",
    "RetrievalEvalPair",
    "ReviewDecision",
    "ReviewItem",
    "SampleBatch",
    "SampleItem",
    "TrainingJob",
    "User",
    "dataset_version_examples",
    "user_departments",
]
