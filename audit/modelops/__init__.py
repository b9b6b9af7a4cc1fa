"""Model versions and training jobs as the audit side sees them (the training side writes them)."""
