"""The sync window (R-GITOPS-2): a release waits until it opens; a hotfix does not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.release.conftest import audit_records, release_run


@pytest.fixture
def window_soon():
    """A sync window (UTC) that opens 40 s after the test starts, for 20 s."""
    opens = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=40)
    schedule = f"{opens.minute} {opens.hour} * * * {opens.second}"
    return opens, {"sync_window": {"schedule": schedule, "duration": "20s", "timezone": "UTC"}}


@pytest.fixture
def policy_changes(window_soon):
    return window_soon[1]


def test_a_closed_sync_window_waits_and_a_hotfix_passes(prefect_api, window_soon, sandbox, cluster, tmp_path):
    opens, _ = window_soon
    hotfix = release_run("v1.2.0", services=["user-service"], initiator="demo-ops", hotfix=True, security_patch=True)
    assert hotfix.join(90).is_completed()
    assert datetime.now(timezone.utc) < opens, "the hotfix must have finished while the window was closed"
    assert not [a for a in prefect_api.artifacts(prefect_api.flow_run(hotfix)["id"]) if a["key"] == "sync-window"]

    run = release_run("v1.3.0", services=["location-service"], initiator="demo-dev")
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)
    assert run.join(120).is_completed()
    waited = [a for a in prefect_api.artifacts(prefect_api.flow_run(run)["id"]) if a["key"] == "sync-window"]
    assert waited and opens.isoformat() in waited[0]["data"]
    switch = next(r for r in audit_records(tmp_path) if r["event"] == "traffic_switched" and r["release"] == "v1.3.0")
    assert datetime.fromisoformat(switch["time"]) >= opens
