"""Metrics: the Prometheus HTTP API and the policy's query templates."""
