"""Observability: structured logs with request/batch/generation ids, Prometheus metrics, request ids."""
