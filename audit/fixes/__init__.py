"""Automatic data fixes: proposals from confirmed reviews, applied into new dataset versions."""
