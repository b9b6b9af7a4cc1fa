"""The daily sample: batches, sampled items with inclusion weights, auditor assignments, gold items."""
