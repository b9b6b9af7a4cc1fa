"""`auditloop bench`: measures auditloop at scale, on SQLite and PostgreSQL, against raw-driver floors."""
