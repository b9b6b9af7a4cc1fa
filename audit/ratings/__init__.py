"""Auditors' ratings: append-only, one current rating per (answer, auditor), blind to others."""
