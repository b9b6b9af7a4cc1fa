"""The knowledge base and the training data: documents, curated examples, dataset versions."""
