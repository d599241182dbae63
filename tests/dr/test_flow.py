"""The `dr-drill` flow on a Prefect server: the numbers as a markdown artifact and a dr_drill_completed audit event."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from delivery.audit import AuditLog, verify
from flows.dr_drill import DrillOutsideLimits, dr_drill
from tests.conftest import REPO
from tests.postgres import server_state_dir

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)


@pytest.fixture(scope="module", autouse=True)
def prefect_server(prefect_api):
    """The test process's Prefect server (tests/conftest.py) for this module's flow runs."""
    return prefect_api


def artifacts(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        return [a.data for a in found if a.type == "markdown"]


def run_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Path, regions: bool = True):
    monkeypatch.setenv("TRIPGEN_POLICY", str(policy))
    monkeypatch.setenv("TRIPGEN_AUDIT_LOG", str(tmp_path / "audit" / "audit.jsonl"))
    with server_state_dir() as work:
        return dr_drill(work_dir=str(work), initiator="ops.lee", regions=regions, return_state=True)


def test_the_flow_publishes_the_numbers_and_audits_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = run_flow(tmp_path, monkeypatch, REPO / "policies" / "tripgen.yaml")

    assert state.is_completed(), state.message
    [markdown] = artifacts(state.state_details.flow_run_id)
    assert markdown.startswith("# DR drill") and "| database failover |" in markdown and "| RPO |" in markdown
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    [record] = log.records()
    assert (record["event"], record["actor"], record["release"]) == ("dr_drill_completed", "ops.lee", "dr-drill")
    details = record["details"]
    assert details["within_limits"] is True and details["failover_seconds"] < details["limits"]["database_failover"]
    assert details["traffic"]["served_by"] == "korea-south" and details["rto_scope"] == "traffic switched to korea-south"
    assert details["flow_run_id"] == str(state.state_details.flow_run_id)
    assert verify(log.path).intact and "postgresql://" not in log.path.read_text()


def test_numbers_outside_the_policy_fail_the_run_after_publishing_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text("disaster_recovery: {database_failover: 1ms}\n")
    state = run_flow(tmp_path, monkeypatch, strict, regions=False)  # the database's failover is what is too slow

    assert state.is_failed()
    with pytest.raises(DrillOutsideLimits, match="database failover"):
        state.result()
    assert "**NO**" in artifacts(state.state_details.flow_run_id)[0]
    [record] = AuditLog(tmp_path / "audit" / "audit.jsonl").records()
    assert record["details"]["within_limits"] is False
