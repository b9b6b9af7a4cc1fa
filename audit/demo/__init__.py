"""The demo company: a seeded, realistic knowledge base, traffic and audit history (``auditloop demo``)."""
