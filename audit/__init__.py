"""auditloop's domain: tables, queries, decisions and metrics for the human-in-the-loop audit."""
