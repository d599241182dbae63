"""Prefect flows: the release runbooks as DAGs of tasks."""
