"""Ingest of JSONL files (documents, examples, answers, past ratings): validated, idempotent, fast.

Entry point: :func:`audit.ingest.service.ingest_file`; the bulk answers path for other loaders is
:mod:`audit.ingest.bulk`.
"""
