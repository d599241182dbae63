"""The shipped policies are valid and carry SPEC.md's numbers."""

import subprocess
import sys

import pytest

from delivery.policy.loader import load_policy
from tests.conftest import REPO

TRIPGEN = REPO / "policies" / "tripgen.yaml"
DEMO = REPO / "policies" / "demo.yaml"


def _check(path):
    return subprocess.run(
        [sys.executable, "-m", "delivery.cli", "policy", "check", str(path)], capture_output=True, text=True
    )


def test_production_policy_summary_shows_the_spec_numbers():
    result = _check(TRIPGEN)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "coverage >= 80%" in out
    assert "production: 2 of tech-leads, devops-team" in out
    assert "stages 5% (10m) -> 25% (15m) -> 50% (20m) -> 100% (30m)" in out
    assert "roll back when error rate > 0.5% or response time > 10s" in out
    assert "Mon-Fri 02:00-04:00 Asia/Seoul" in out
    assert "database migrations (expand) -> user-service, location-service -> trip-service -> ai-service; max 2 concurrent" in out


def test_production_policy_equals_the_built_in_defaults():
    """Every field defaults to its SPEC value, so the explicit production file and the defaults agree;
    only the AKS cluster and the approvers' channels are the file's own (SPEC names no subscription, no address)."""
    from delivery.policy.models import Approvals, Policy

    production = load_policy(TRIPGEN)
    channels = production.approvals.approver_channels
    assert production == Policy(cluster=production.cluster, approvals=Approvals(approver_channels=channels))
    azure = production.cluster.azure
    assert (azure.resource_group, azure.name) == ("rg-tripgen-prod", "aks-tripgen-prod")
    assert "cluster        AKS cluster 'aks-tripgen-prod' (resource group 'rg-tripgen-prod'" in _check(TRIPGEN).stdout


def test_demo_policy_uses_the_kubeconfig_not_azure():
    assert load_policy(DEMO).cluster.azure is None
    assert "TRIPGEN_KUBECONFIG, else the in-cluster service account" in _check(DEMO).stdout


def test_demo_policy_has_the_same_shape_in_seconds():
    demo, production = load_policy(DEMO), load_policy(TRIPGEN)
    assert [s.name for s in demo.services] == [s.name for s in production.services]
    assert demo.environments["production"].watch.total_seconds() < 60
    assert all(stage.observe.total_seconds() < 60 for stage in demo.canary.stages)
    assert [s.weight for s in demo.canary.stages] == [5, 25, 50, 100]
    assert "always open" in _check(DEMO).stdout


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_cli_help_and_version(flag):
    result = subprocess.run([sys.executable, "-m", "delivery.cli", flag], capture_output=True, text=True)
    assert result.returncode == 0
    assert "tripgen-release" in result.stdout or "Release TripGen" in result.stdout


@pytest.mark.parametrize("path", [TRIPGEN, DEMO], ids=["tripgen", "demo"])
def test_every_approver_of_the_shipped_policies_has_a_channel_for_codes(path):
    approvals = load_policy(path).approvals
    members = {name for group in approvals.groups.values() for name in group}
    assert set(approvals.approver_channels) == members
    assert not approvals.commit_author_may_approve


def test_the_demo_mails_its_approvers_at_tripgen_local():
    channels = load_policy(DEMO).approvals.approver_channels
    assert channels["demo-lead"].email == "demo-lead@tripgen.local"
    assert all(c.email and c.email.endswith("@tripgen.local") and c.slack is None for c in channels.values())
