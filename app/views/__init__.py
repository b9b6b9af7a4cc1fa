"""The app's pages and the permission that opens each: the entrypoint shows a user only their pages.

``st.navigation`` is given only the pages ``pages_for(user)`` returns, so a typed URL of any other page
is "page not found"; each page also re-checks its permission (``app.components.guard.require_page``)
and the services refuse on their own. Paths are relative to ``app/`` (the entrypoint's folder).
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.org.models import User
from audit.permissions import Action, can


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    url_path: str
    section: str
    action: Action


PAGES: tuple[PageSpec, ...] = (
    PageSpec("views/rate.py", "Rate answers", ":material/rate_review:", "rate", "Audit", "rate"),
    PageSpec("views/my_ratings.py", "My ratings", ":material/history:", "my-ratings", "Audit", "rate"),
    PageSpec("views/review.py", "Review queue", ":material/fact_check:", "review", "Review", "view_reviews"),
    PageSpec("views/quality.py", "Quality", ":material/monitoring:", "quality", "Dashboards", "view_dashboards"),
    PageSpec("views/fairness.py", "Fairness", ":material/balance:", "fairness", "Dashboards", "view_dashboards"),
    PageSpec("views/agreement.py", "Agreement", ":material/groups:", "agreement", "Dashboards", "view_dashboards"),
    PageSpec("views/pipeline.py", "Fix pipeline", ":material/build:", "pipeline", "Dashboards", "view_dashboards"),
    PageSpec("views/models.py", "Models", ":material/model_training:", "models", "Dashboards", "view_dashboards"),
    PageSpec("views/users.py", "Users", ":material/person:", "users", "Admin", "manage_users"),
    PageSpec("views/departments.py", "Departments", ":material/domain:", "departments", "Admin", "manage_departments"),
    PageSpec("views/policies.py", "Policies", ":material/tune:", "policies", "Admin", "manage_policies"),
    PageSpec("views/audit_log.py", "Audit log", ":material/receipt_long:", "audit-log", "Admin", "view_audit_log"),
)


def pages_for(user: User | None) -> list[PageSpec]:
    """The pages ``user`` may open, in menu order. Nobody logged in (``None``) gets none."""
    if user is None:
        return []
    return [page for page in PAGES if can(user, page.action)]


def page_by_url(url_path: str) -> PageSpec:
    for page in PAGES:
        if page.url_path == url_path:
            return page
    raise KeyError(url_path)
