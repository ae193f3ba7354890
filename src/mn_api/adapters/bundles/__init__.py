"""Stores for uploaded bundles."""
