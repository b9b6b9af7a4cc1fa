"""Alembic environment and versions: the only way auditloop's schema is built."""
