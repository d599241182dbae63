"""Audit events and the artifacts people read in the Prefect UI."""

from __future__ import annotations

import re
import time

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from delivery.release.describe import release_summary
from delivery.release.retrying import LOCAL_STEP
from delivery.release.runtime import region_details, runtime
from delivery.release.state import ReleaseSummary


@task(name="audit", task_run_name="audit {event}", **LOCAL_STEP)
def audit(event: str, actor: str, release: str, details: dict) -> str:
    """Append one event to the hash-chained audit log, with the flow run it came from; the release metrics
    follow it (they are computed from the log). Returns the record's hash."""
    rt = runtime()
    record = rt.audit.append(event, actor, release, flow_run_id=str(flow_run.id), **details, **region_details())
    if rt.metrics:
        rt.metrics.after_audit(record, rt.audit.records())
    return record["sha256"]


@task(name="publish summary", **LOCAL_STEP)
def publish_summary(tag: str, outcome: str, detail: str, services: list[dict], started: float) -> ReleaseSummary:
    """The release summary as a markdown artifact and a table; returns it with the duration (for the KPIs)."""
    seconds = time.time() - started
    key = artifact_key(f"release-{tag}")
    create_markdown_artifact(release_summary(tag, outcome, detail, services, seconds), key=key, description="Release summary")
    create_table_artifact(services, key=f"{key}-services", description="Per service: digest, switch, watch, verdict")
    return ReleaseSummary(tag=tag, outcome=outcome, detail=detail, services=services, seconds=seconds)


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
