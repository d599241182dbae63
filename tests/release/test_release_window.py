"""The sync window (R-GITOPS-2): a release waits until it opens; a hotfix does not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from tests.release.conftest import audit_records, release_run

HOTFIX_WINDOW_DELAY = timedelta(hours=1)  # closed for the whole hotfix, however slow the machine
RELEASE_WINDOW_DELAY = timedelta(seconds=40)  # the release reaches the window in ~10 s: closed when it gets there


def sync_window(opens: datetime) -> dict:
    """A daily sync window (UTC) that next opens at `opens`, for 20 s."""
    return {"schedule": f"{opens.minute} {opens.hour} * * * {opens.second}", "duration": "20s", "timezone": "UTC"}


def soon(delay: timedelta) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + delay


@pytest.fixture
def hotfix_window_opens() -> datetime:
    return soon(HOTFIX_WINDOW_DELAY)


@pytest.fixture
def policy_changes(hotfix_window_opens):
    return {"sync_window": sync_window(hotfix_window_opens)}


def policy_with_window(policy_file: Path, opens: datetime) -> Path:
    """A copy of the test policy whose sync window next opens at `opens`."""
    data = yaml.safe_load(policy_file.read_text())
    data["sync_window"] = sync_window(opens)
    path = policy_file.with_name("policy-window-soon.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_closed_sync_window_waits_and_a_hotfix_passes(prefect_api, hotfix_window_opens, sandbox, cluster, tmp_path,
                                                        policy_file, monkeypatch):
    hotfix = release_run("v1.2.0", services=["user-service"], initiator="demo-ops", hotfix=True, security_patch=True)
    assert hotfix.join(90).is_completed()
    assert datetime.now(timezone.utc) < hotfix_window_opens, "the hotfix must have finished while the window was closed"
    assert not [a for a in prefect_api.artifacts(prefect_api.flow_run(hotfix)["id"]) if a["key"] == "sync-window"]

    # the next release runs with a window that opens soon (a run reads the policy its TRIPGEN_POLICY names when it starts)
    opens = soon(RELEASE_WINDOW_DELAY)
    monkeypatch.setenv("TRIPGEN_POLICY", str(policy_with_window(policy_file, opens)))
    run = release_run("v1.3.0", services=["location-service"], initiator="demo-dev")
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)
    assert run.join(120).is_completed()
    waited = [a for a in prefect_api.artifacts(prefect_api.flow_run(run)["id"]) if a["key"] == "sync-window"]
    assert waited and opens.isoformat() in waited[0]["data"]
    switch = next(r for r in audit_records(tmp_path) if r["event"] == "traffic_switched" and r["release"] == "v1.3.0")
    assert datetime.fromisoformat(switch["time"]) >= opens
