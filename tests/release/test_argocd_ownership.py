"""Direct mode under ArgoCD (issue 11): tripgen-prod (direct form) syncs the manifests with selfHeal while a direct
release runs; every field the release writes to an object ArgoCD manages (what the sandbox's API server saw each write
change) is covered by its ignoreDifferences, and afterwards ArgoCD has undone nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from delivery.gitops.overlay import ReleaseOverlay
from tests.conftest import REPO
from tests.release.conftest import digest_image, fast_policy_data, live, release_run, write_policy
from tests.release.test_canary import CANARY_POLICY, approve_twice
from tests.release.test_gitops_release import install_application, manifests  # noqa: F401 - the fixture
from tests.waiting import wait_until

APPLICATION = REPO / "infra" / "k8s-manifests" / "argocd" / "applications" / "tripgen-prod.yaml"
KINDS = {"services": "Service", "deployments": "Deployment", "virtualservices": "VirtualService", "destinationrules": "DestinationRule"}


def ignored() -> dict[tuple[str, str], list[str]]:
    entries = yaml.safe_load(APPLICATION.read_text())["spec"]["ignoreDifferences"]
    return {(e["kind"], e["name"]): e["jsonPointers"] for e in entries}


def managed() -> set[tuple[str, str]]:
    """(kind, name) of every production object ArgoCD syncs from git."""
    return {(o["kind"], o["metadata"]["name"]) for o in ReleaseOverlay(REPO / "infra" / "k8s-manifests", "environments/production").rendered()}


def written(sandbox) -> set[tuple[str, str, str]]:
    """(kind, name, JSON pointer) of each field the release changed in production, per the API server."""
    log = httpx.get(f"{sandbox.control}/requests").raise_for_status().json()
    assert log["dropped"] == 0
    return {(KINDS.get(r["plural"], r["plural"]), r["name"], pointer) for r in log["requests"]
            if r["namespace"] == "production" and not r["fault"] for pointer in r["changed"]}


def uncovered(fields: set[tuple[str, str, str]]) -> list[str]:
    rules, tracked = ignored(), managed()
    return sorted(f"{kind}/{name} {pointer or '(the whole object)'}" for kind, name, pointer in fields if (kind, name) in tracked
                  and not any(pointer == p or pointer.startswith(p + "/") for p in rules.get((kind, name), [])))


@pytest.fixture
def policy_file(tmp_path, policy_changes) -> Path:
    """The fast policy, with production's service shapes and readiness deadline: the numbers the manifests hold."""
    data, production = fast_policy_data(), yaml.safe_load((REPO / "policies" / "tripgen.yaml").read_text())
    data["services"] = production["services"]
    data["blue_green"]["ready_timeout"] = production["blue_green"]["ready_timeout"]
    return write_policy(tmp_path / "policy.yaml", data, policy_changes)


@pytest.mark.parametrize("strategy, policy_changes", [("blue-green", {}), ("canary", CANARY_POLICY)], ids=["blue-green", "canary"])
def test_every_field_a_direct_release_writes_is_one_argocd_ignores(prefect_api, sandbox, manifests, cluster, tmp_path,
                                                                   strategy, policy_changes):
    status = install_application(sandbox, manifests, "direct")
    httpx.delete(f"{sandbox.control}/requests").raise_for_status()
    run = release_run("v1.2.0", services=["user-service"], strategy=strategy, initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(240)
    assert state.is_completed(), state.message
    fields = written(sandbox)
    assert ("Service", "user-service", "/spec/selector/version") in fields or strategy == "canary"
    assert uncovered(fields) == [], "ArgoCD would undo these: " + "; ".join(uncovered(fields))
    released = live(cluster, "user-service")
    done = status().reconciled_at
    wait_until(lambda: status().reconciled_at > done, 30, "ArgoCD to reconcile after the release")
    assert status().sync == "Synced" and live(cluster, "user-service") == released
    assert released[1] == digest_image("user-service", "v1.2.0")
