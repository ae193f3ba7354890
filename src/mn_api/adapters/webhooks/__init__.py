"""Webhook adapters: stores, the HTTP notifier and the resolver."""
