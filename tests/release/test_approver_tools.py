"""`tripgen-release approve` and `status` against a paused release (issue 7's approvers' tools)."""

from __future__ import annotations

import subprocess
import sys

import yaml
from click.testing import CliRunner

from delivery.cli import cli
from tests.release.conftest import release_run
from tests.mail import approval_code


def test_approve_and_status_through_the_rest_api(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    first = prefect_api.wait_for_pause(run)
    api = ["--api-url", str(prefect_api.http.base_url).rstrip("/")]
    runner = CliRunner()

    shown = runner.invoke(cli, ["status", "v1.2.0", *api])
    assert shown.exit_code == 0 and "release-v1.2.0: paused" in shown.output and "waiting for input (approval-1)" in shown.output
    assert "traffic in production (read from the cluster):" in shown.output  # TRIPGEN_KUBECONFIG of the sandbox fixture
    user_service = next(line.split() for line in shown.output.splitlines() if line.strip().startswith("user-service "))
    assert user_service[:4] == ["user-service", "blue", "canary", "0%"] and user_service[4].endswith(":v1.0.0")

    run_id = prefect_api.flow_run(run)["id"]
    lead_code = approval_code("demo-lead", run_id)
    answered = runner.invoke(cli, ["approve", "v1.2.0", "--as", "demo-lead", "--code", lead_code, "--comment", "fine", *api])
    assert answered.exit_code == 0, answered.output
    assert "answered approval-1 as demo-lead" in answered.output and "approved by demo-lead; 1 more needed" in answered.output

    prefect_api.wait_for_pause(run, after_key=first["state"]["state_details"]["pause_key"])
    again = runner.invoke(cli, ["approve", "v1.2.0", "--as", "demo-lead", "--code", lead_code, *api])
    assert "approval refused: demo-lead's code was used before: each code counts once" in again.output

    prefect_api.wait_for_pause(run, after_key="approval-2")
    link = f"http://prefect.example/runs/flow-run/{run_id}"  # the link in the code's mail
    rejected = runner.invoke(cli, ["approve", link, "--as", "demo-ops", "--code", approval_code("demo-ops", run_id), "--reject",
                                   "--comment", "not today", *api])
    assert "rejected by demo-ops: not today" in rejected.output
    assert run.join(60).is_failed()

    finished = runner.invoke(cli, ["approve", "v1.2.0", "--as", "demo-ops", "--code", "ABCD", *api])
    assert finished.exit_code == 1 and "is not waiting for approval" in finished.output


def test_status_without_a_cluster_says_how_to_read_the_traffic(prefect_api, monkeypatch, tmp_path):
    monkeypatch.delenv("TRIPGEN_KUBECONFIG", raising=False)
    api = ["--api-url", str(prefect_api.http.base_url).rstrip("/"), "--policy", "policies/demo.yaml"]
    shown = CliRunner().invoke(cli, ["status", *api])
    assert shown.exit_code == 0, shown.output
    assert "traffic: give --kubeconfig (or TRIPGEN_KUBECONFIG) to read it from the cluster" in shown.output
    unreachable = tmp_path / "kubeconfig"
    unreachable.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "users": [{"name": "gone", "user": {}}]}))
    shown = CliRunner().invoke(cli, ["status", *api, "--kubeconfig", str(unreachable)])
    assert shown.exit_code == 0 and "traffic: cannot read the cluster:" in shown.output, shown.output


def test_an_unreachable_prefect_api_is_one_line_naming_it():
    closed = "http://127.0.0.1:9/api"
    for args in (["status"], ["approve", "v1.2.0", "--as", "demo-lead", "--code", "ABCD"]):
        result = subprocess.run([sys.executable, "-m", "delivery.cli", *args, "--api-url", closed], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("tripgen-release: cannot reach http://127.0.0.1:9/api/") and "PREFECT_API_URL" in result.stderr
