"""Prefect tasks: one step a person would name each, retries set here."""
