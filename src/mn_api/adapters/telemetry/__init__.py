"""Telemetry implementations."""
