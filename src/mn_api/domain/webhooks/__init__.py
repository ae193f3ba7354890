"""Webhooks: who is told about a job's events (`records`), where they may be sent
(`url_policy`), how the requests are signed (`signing`) and when to retry (`retries`)."""
