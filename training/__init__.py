"""The model side of auditloop: base models, retrieval, generation, LoRA training, evaluation, the gate."""
