"""Measures and reports: pure metric functions over data frames, SQL aggregates, report assembly."""
