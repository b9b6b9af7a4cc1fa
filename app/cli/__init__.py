"""The ``auditloop`` command line."""
