"""Idempotency-Key stores: SQLite on local disk, or Redis shared by replicas."""
