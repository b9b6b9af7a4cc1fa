"""Policies kept in the database and editable by admins: sampling, routing, fixes, triggers."""
