"""Retraining triggers: enough applied fixes, a quality drop or a department gap queue one training job."""
