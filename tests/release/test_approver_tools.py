"""`tripgen-release approve` and `status` against a paused release (issue 7's approvers' tools)."""

from __future__ import annotations

from click.testing import CliRunner

from delivery.cli import cli
from tests.release.conftest import release_run


def test_approve_and_status_through_the_rest_api(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    first = prefect_api.wait_for_pause(run)
    api = ["--api-url", str(prefect_api.http.base_url).rstrip("/")]
    runner = CliRunner()

    shown = runner.invoke(cli, ["status", "v1.2.0", *api])
    assert shown.exit_code == 0 and "release-v1.2.0: paused" in shown.output and "waiting for input (approval-1)" in shown.output

    answered = runner.invoke(cli, ["approve", "v1.2.0", "--as", "demo-lead", "--comment", "fine", *api])
    assert answered.exit_code == 0, answered.output
    assert "answered approval-1 as demo-lead" in answered.output and "approved by demo-lead; 1 more needed" in answered.output

    prefect_api.wait_for_pause(run, after_key=first["state"]["state_details"]["pause_key"])
    again = runner.invoke(cli, ["approve", "v1.2.0", "--as", "demo-lead", *api])
    assert "demo-lead has already approved" in again.output

    prefect_api.wait_for_pause(run, after_key="approval-2")
    rejected = runner.invoke(cli, ["approve", prefect_api.flow_run(run)["id"], "--as", "demo-ops", "--reject", "--comment", "not today", *api])
    assert "rejected by demo-ops: not today" in rejected.output
    assert run.join(60).is_failed()

    finished = runner.invoke(cli, ["approve", "v1.2.0", "--as", "demo-ops", *api])
    assert finished.exit_code == 1 and "is not waiting for approval" in finished.output
