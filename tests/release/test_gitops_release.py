"""GitOps mode (issue 11): every production change is a commit to a real (local bare) manifests repository,
awaited on the sandbox's ArgoCD Application; the restore is a revert commit; a closed ArgoCD window holds it."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from delivery.gitops.argocd import ARGOCD, app_status
from delivery.gitops.owned import application_for
from delivery.gitops.repository import new_bare_repository
from delivery.kube import connect
from tests.conftest import REPO
from tests.release.conftest import (audit_records, digest_image, fast_policy_data, live, release_run, set_fault,
                                   write_policy)
from tests.release.test_canary import approve_twice, canary_replicas
from tests.waiting import wait_until

SERVICE = "user-service"
BASE = f"acrtrpgenprod.azurecr.io/{SERVICE}:v1.0.0"
CLOSED = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)  # a Saturday noon: production's Mon-Fri 02:00 window is shut
OPEN = datetime(2026, 12, 7, 17, 30, tzinfo=timezone.utc)  # Monday 02:30 in Seoul: inside it


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def manifests(tmp_path) -> Path:
    """A bare manifests repository holding infra/k8s-manifests, as the team's would."""
    new_bare_repository(tmp_path / "k8s-manifests.git", REPO / "infra" / "k8s-manifests", "manifests")
    return tmp_path / "k8s-manifests.git"


@pytest.fixture
def policy_file(tmp_path, manifests, policy_changes, monkeypatch) -> Path:
    data = fast_policy_data()
    data["delivery"] = {"mode": "gitops", "repository": str(manifests), "sync_timeout": "60s"}
    monkeypatch.setenv("TRIPGEN_GITOPS_WORKDIR", str(tmp_path / "worker-clones"))
    return write_policy(tmp_path / "policy.yaml", data, policy_changes)


@pytest.fixture
def argocd(sandbox, manifests):
    return install_application(sandbox, manifests, "gitops")


def install_application(sandbox, manifests: Path, mode: str):
    """The shipped AppProject and Application (in `mode`'s form), pointed at the local repository, Synced and Healthy
    at its head (the sandbox ArgoCD's clock inside production's sync window); returns a reader of its status."""
    httpx.put(f"{sandbox.control}/argocd/clock", json={"at": OPEN.isoformat()}).raise_for_status()
    conn = connect(os.environ["TRIPGEN_KUBECONFIG"])
    conn.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd-system"}})
    project = yaml.safe_load((REPO / "infra" / "k8s-manifests" / "argocd" / "projects" / "tripgen.yaml").read_text())
    project["spec"]["sourceRepos"] = [str(manifests)]
    shipped = yaml.safe_load((REPO / "infra" / "k8s-manifests" / "argocd" / "applications" / "tripgen-prod.yaml").read_text())
    application = application_for(shipped, mode)
    application["spec"]["source"]["repoURL"] = str(manifests)
    conn.custom.create_namespaced_custom_object(*ARGOCD, "argocd-system", "appprojects", project)
    conn.custom.create_namespaced_custom_object(*ARGOCD, "argocd-system", "applications", application)
    head = git(manifests, "rev-parse", "main").strip()
    read = lambda: app_status(conn.custom.get_namespaced_custom_object(*ARGOCD, "argocd-system", "applications", "tripgen-prod"))  # noqa: E731
    wait_until(lambda: read().reports(head), 60, "tripgen-prod Synced and Healthy at the seed commit")
    return read


def commits(manifests: Path) -> list[str]:
    return git(manifests, "log", "--format=%s%n%b%x1e", "main").split("\x1e")


@pytest.mark.parametrize("policy_changes", [{}])
def test_a_gitops_release_is_a_commit_per_step_each_synced_by_argocd(prefect_api, sandbox, argocd, manifests, cluster,
                                                                    tmp_path, policy_changes, monkeypatch):
    run = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(240)
    assert state.is_completed(), state.message
    assert live(cluster, SERVICE) == ("green", digest_image(SERVICE, "v1.2.0"))
    messages = [c for c in commits(manifests) if c.strip().startswith("v1.2.0:")]
    subjects = [m.strip().splitlines()[0] for m in reversed(messages)]
    assert subjects == [f"v1.2.0: deploy {SERVICE}-green with {digest_image(SERVICE, 'v1.2.0')}", f"v1.2.0: switch {SERVICE} to green",
                        f"v1.2.0: scale {SERVICE}-blue to 0"], subjects
    flow_run_id = prefect_api.flow_run(run)["id"]
    assert all(flow_run_id in m for m in messages), messages  # the run's URL
    head = git(manifests, "rev-parse", "main").strip()
    assert argocd().reports(head)
    switched = next(r for r in audit_records(tmp_path) if r["event"] == "traffic_switched")
    assert switched["details"]["commit"] in git(manifests, "log", "--format=%H", "main").split()


@pytest.mark.parametrize("policy_changes", [{}])
def test_a_gitops_restore_is_a_revert_commit_synced_at_once_even_behind_a_closed_window(
        prefect_api, sandbox, argocd, manifests, cluster, tmp_path, policy_changes):
    """The restore asks ArgoCD for a manual sync, which the AppProject's window (manualSync) lets through at once."""
    run = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    wait_until(lambda: any(r["event"] == "traffic_switched" for r in audit_records(tmp_path)), 120, "the switch",
               invariant=lambda: run.thread.is_alive())
    httpx.put(f"{sandbox.control}/argocd/clock", json={"at": CLOSED.isoformat()}).raise_for_status()  # the window shuts
    set_fault(sandbox, versions={f"{SERVICE}:v1.2.0": {"error_rate_percent": 60}})
    state = run.join(120)
    assert state.is_failed() and "rolled back" in state.message, state.message
    assert live(cluster, SERVICE) == ("blue", BASE)
    subjects = [c.strip().splitlines()[0] for c in commits(manifests) if c.strip()]
    assert subjects[0] == f"v1.2.0: revert: switch {SERVICE} to blue", subjects[:3]
    assert argocd().reports(git(manifests, "rev-parse", "main").strip(), healthy=False)


@pytest.mark.parametrize("policy_changes", [{}])
def test_a_gitops_release_holds_at_a_closed_argocd_window_and_goes_on_when_it_opens(prefect_api, sandbox, argocd, manifests,
                                                                                  cluster, tmp_path, policy_changes):
    httpx.put(f"{sandbox.control}/argocd/clock", json={"at": CLOSED.isoformat()}).raise_for_status()
    run = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    logs = lambda: [e["message"] for e in prefect_api.http.post("/logs/filter", json={  # noqa: E731
        "logs": {"flow_run_id": {"any_": [prefect_api.flow_run(run)["id"]]}}, "limit": 200}).json()]
    held = wait_until(lambda: [m for m in logs() if "blocked by sync window" in m], 120, "the release to wait for the window",
                      invariant=lambda: run.thread.is_alive())
    assert "allow '0 2 * * 1-5'" in held[0], held
    assert live(cluster, SERVICE)[1] == BASE  # nothing synced while the window is shut
    httpx.put(f"{sandbox.control}/argocd/clock", json={"at": (OPEN + timedelta(minutes=1)).isoformat()}).raise_for_status()
    state = run.join(240)
    assert state.is_completed(), state.message
    assert live(cluster, SERVICE) == ("green", digest_image(SERVICE, "v1.2.0"))


CANARY = {"canary": {"stages": [{"weight": 10, "observe": "2s"}, {"weight": 100, "observe": "2s"}],
                     "analysis": {"interval": "2s", "threshold": 3, "max_weight": 50, "step_weight": 10}}}


@pytest.mark.parametrize("policy_changes", [CANARY])
def test_a_gitops_canary_commits_each_weight_and_its_promotion(prefect_api, sandbox, argocd, manifests, cluster, tmp_path,
                                                                policy_changes):
    run = release_run("v1.2.0", services=[SERVICE], strategy="canary", initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(240)
    assert state.is_completed(), state.message
    subjects = [m.strip().splitlines()[0] for m in reversed(commits(manifests)) if m.strip().startswith("v1.2.0:")]
    image = digest_image(SERVICE, "v1.2.0")
    assert subjects[0] == f"v1.2.0: deploy {SERVICE}-canary with {image}", subjects
    weights = [s.removeprefix(f"v1.2.0: {SERVICE} weights ") for s in subjects if " weights " in s]
    assert weights == ["stable 100, canary 0", "stable 90, canary 10", "stable 0, canary 100", "stable 100, canary 0"]
    promoted = subjects.index(f"v1.2.0: set {SERVICE}-blue to {image}")
    assert subjects.index(f"v1.2.0: {SERVICE} weights stable 0, canary 100") < promoted  # stable takes the digest last
    assert subjects[promoted + 1:] == [f"v1.2.0: {SERVICE} weights stable 100, canary 0", f"v1.2.0: switch {SERVICE} to blue",
                                       f"v1.2.0: {SERVICE} subsets ['canary', 'stable']", f"v1.2.0: scale {SERVICE}-canary to 0"]
    deployments, routing = cluster
    assert routing.route_weights("production", SERVICE) == {"stable": 100, "canary": 0}
    assert deployments.image_of("production", f"{SERVICE}-blue") == digest_image(SERVICE, "v1.2.0")
    assert canary_replicas(cluster, SERVICE) == 0
    assert argocd().reports(git(manifests, "rev-parse", "main").strip())
