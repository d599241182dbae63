"""`tripgen-release demo --mode gitops`: the manifests repository (a local bare one), the sandbox's ArgoCD
Application following it, and afterwards the commits, the Application's report and the cluster beside the repo."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import click
import httpx
import yaml

from delivery.gitops.argocd import ARGOCD, app_status
from delivery.gitops.overlay import ReleaseOverlay
from delivery.gitops.repository import new_bare_repository
from delivery.gitops.owned import application_for
from delivery.kube import connect
from delivery.sandbox.endpoints import Endpoints

MANIFESTS = Path(__file__).resolve().parent.parent / "infra" / "k8s-manifests"
INSIDE_THE_WINDOW = datetime(2026, 12, 7, 17, 30, tzinfo=timezone.utc)  # a Monday 02:30 in Seoul


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise click.ClickException(f"git {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def manifests_repository(state: Path) -> Path:
    """A fresh bare repository holding infra/k8s-manifests, as the team's manifests repository would."""
    bare = state / "k8s-manifests.git"
    new_bare_repository(bare, MANIFESTS, "manifests")
    return bare


def gitops_policy(policy: Path, repository: Path, state: Path) -> Path:
    """The demo policy with `delivery: {mode: gitops}` on `repository`."""
    data = yaml.safe_load(policy.read_text())
    data["delivery"] = {"mode": "gitops", "repository": str(repository), "sync_timeout": "2m"}
    path = state / "policy-gitops.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def install_argocd_application(endpoints: Endpoints, kubeconfig: Path, repository: Path) -> None:
    """The shipped AppProject and Application (the gitops form) on the sandbox; its ArgoCD clock inside the window."""
    httpx.put(f"{endpoints.control}/argocd/clock", json={"at": INSIDE_THE_WINDOW.isoformat()}).raise_for_status()
    click.echo(f"sandbox ArgoCD's clock set to {INSIDE_THE_WINDOW.isoformat()} (inside tripgen-prod's sync window)")
    conn = connect(str(kubeconfig))
    conn.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd-system"}})
    project = yaml.safe_load((MANIFESTS / "argocd" / "projects" / "tripgen.yaml").read_text())
    project["spec"]["sourceRepos"] = [str(repository)]
    application = application_for(yaml.safe_load((MANIFESTS / "argocd" / "applications" / "tripgen-prod.yaml").read_text()), "gitops")
    application["spec"]["source"]["repoURL"] = str(repository)
    conn.custom.create_namespaced_custom_object(*ARGOCD, "argocd-system", "appprojects", project)
    conn.custom.create_namespaced_custom_object(*ARGOCD, "argocd-system", "applications", application)
    click.echo(f"ArgoCD application argocd-system/tripgen-prod follows {repository} (main, environments/production)")


def print_gitops(state: Path, kubeconfig: Path, repository: Path) -> None:
    """The repository's commits, the Application's report of the last one, and the cluster against the render."""
    click.echo(f"\nmanifests repository {repository}: git log")
    for line in git(repository, "log", "--format=  %h %s%n      %b", "main").splitlines():
        if line.strip():
            click.echo(line)
    conn = connect(str(kubeconfig))
    status = app_status(conn.custom.get_namespaced_custom_object(*ARGOCD, "argocd-system", "applications", "tripgen-prod"))
    head = git(repository, "rev-parse", "main").strip()
    click.echo(f"\nargocd-system/tripgen-prod: {status.line()} (repository head {head[:12]})")
    checkout = state / "k8s-manifests-check"
    shutil.rmtree(checkout, ignore_errors=True)
    git(state, "clone", "--quiet", str(repository), str(checkout))
    mismatches = 0
    for wanted in ReleaseOverlay(checkout, "environments/production").rendered():
        if wanted["kind"] == "Service" and not wanted["metadata"]["name"].endswith("-preview"):
            live = conn.core.read_namespaced_service(wanted["metadata"]["name"], "production").spec.selector
            mismatches += _compare(wanted["metadata"]["name"], "selector", wanted["spec"]["selector"], live)
        elif wanted["kind"] == "Deployment":
            live = conn.apps.read_namespaced_deployment(wanted["metadata"]["name"], "production")
            mismatches += _compare(wanted["metadata"]["name"], "image", wanted["spec"]["template"]["spec"]["containers"][0]["image"],
                                   live.spec.template.spec.containers[0].image)
            mismatches += _compare(wanted["metadata"]["name"], "replicas", wanted["spec"]["replicas"], live.spec.replicas)
    click.echo(f"cluster {'matches' if not mismatches else 'DIFFERS FROM'} the repository's render "
               f"(kubectl --kubeconfig {kubeconfig} get svc,deploy -n production -o wide)")


def _compare(name: str, field: str, wanted: object, live: object) -> int:
    if wanted == live:
        return 0
    click.echo(f"  {name} {field}: repository {wanted}, cluster {live}")
    return 1
