"""infra/k8s-manifests renders with kubectl, validates against the Kubernetes and CRD schemas, passes
checkov and the weight rule; and each checker reports a broken copy's exact problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.gitops.checkers import (MANIFESTS, checkov_failures, core_problems, crd_problems, kustomize,
                                   weight_problems)

SERVICES = ("user-service", "trip-service", "ai-service", "location-service")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: kustomize(MANIFESTS / path) for name, path in
            (("production", "environments/production"), ("staging", "environments/staging"), ("argocd", "argocd"))}


def names(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_production_renders_the_blue_green_units(rendered):
    per_service = {(kind, f"{svc}{suffix}") for svc in SERVICES for kind, suffix in (
        ("Deployment", "-blue"), ("Deployment", "-green"), ("Service", ""), ("Service", "-preview"),
        ("PodDisruptionBudget", ""), ("VirtualService", ""), ("DestinationRule", ""), ("Canary", ""))}
    assert names(rendered["production"]) == per_service | {
        ("Namespace", "production"), ("Ingress", "tripgen"), ("Ingress", "tripgen-validation")}
    replicas = {o["metadata"]["name"]: o["spec"]["replicas"] for o in rendered["production"] if o["kind"] == "Deployment"}
    assert replicas == {f"{svc}-{color}": 3 if color == "blue" else 0 for svc in SERVICES for color in ("blue", "green")}
    assert {o["metadata"]["namespace"] for o in rendered["production"] if o["kind"] != "Namespace"} == {"production"}


def test_staging_renders_one_rolling_deployment_per_service(rendered):
    assert names(rendered["staging"]) == {(kind, svc) for svc in SERVICES for kind in (
        "Deployment", "Service", "PodDisruptionBudget")} | {("Namespace", "staging"), ("Ingress", "tripgen")}
    for obj in rendered["staging"]:
        if obj["kind"] == "Deployment":
            app = {"app": obj["metadata"]["name"]}
            assert obj["spec"]["selector"] == {"matchLabels": app} and obj["spec"]["template"]["metadata"]["labels"] == app
            assert obj["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        if obj["kind"] == "Service":
            assert obj["spec"]["selector"] == {"app": obj["metadata"]["name"]}


def test_argocd_renders_the_project_and_both_applications(rendered):
    assert names(rendered["argocd"]) == {("AppProject", "tripgen"), ("Application", "tripgen-prod"),
                                         ("Application", "tripgen-staging")}


@pytest.mark.parametrize("tree", ["production", "staging", "argocd"])
def test_every_object_validates_against_its_schema(rendered, tree):
    assert core_problems(rendered[tree]) == []
    assert crd_problems(rendered[tree]) == []


def test_every_split_route_weighs_0_to_100_adding_up_to_100(rendered):
    assert weight_problems(rendered["production"]) == []


def test_checkov_finds_nothing_unsuppressed(rendered, tmp_path):
    assert checkov_failures([o for tree in rendered.values() for o in tree], tmp_path) == set()


# --- broken copies: each checker reports exactly what was broken ---------------------------


def broken_production(tmp_path: Path, file: str, change: Callable[[dict], None]) -> list[dict]:
    """The production overlay rendered from a copy of the tree whose `file` (under base/) got `change`."""
    tree = tmp_path / "k8s-manifests"
    shutil.copytree(MANIFESTS, tree)
    path = tree / "base" / file
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))
    return kustomize(tree / "environments" / "production")


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_a_misspelled_core_field_fails_kubernetes_validate(tmp_path):
    def misspell(deployment: dict) -> None:
        deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    objects = broken_production(tmp_path, "trip-service/deployment-blue.yaml", misspell)
    assert core_problems(objects) == [
        "Deployment production/trip-service-blue: spec: Additional properties are not allowed ('replica' was unexpected)"]


def test_a_misspelled_custom_field_fails_the_crd_schema(tmp_path):
    def misspell(rule: dict) -> None:
        rule["spec"]["subset"] = rule["spec"].pop("subsets")
    objects = broken_production(tmp_path, "ai-service/destinationrule.yaml", misspell)
    assert crd_problems(objects) == [
        "DestinationRule production/ai-service: spec: Additional properties are not allowed ('subset' was unexpected)"]


def test_a_container_without_limits_fails_checkov(tmp_path):
    objects = broken_production(tmp_path, "user-service/deployment-green.yaml",
                                lambda deployment: container(deployment)["resources"].pop("limits"))
    assert core_problems(objects) == []
    assert checkov_failures(objects, tmp_path / "scan") == {
        ("CKV_K8S_11", "Deployment.production.user-service-green"),  # CPU limits should be set
        ("CKV_K8S_13", "Deployment.production.user-service-green")}  # memory limits should be set


def test_a_privileged_container_fails_checkov(tmp_path):
    def privileged(deployment: dict) -> None:  # the API refuses privileged without privilege escalation
        container(deployment)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    objects = broken_production(tmp_path, "location-service/deployment-blue.yaml", privileged)
    assert core_problems(objects) == []
    assert checkov_failures(objects, tmp_path / "scan") == {
        ("CKV_K8S_16", "Deployment.production.location-service-blue"),  # container should not be privileged
        ("CKV_K8S_20", "Deployment.production.location-service-blue")}  # nor allowed to escalate privileges


def test_a_weight_over_100_fails_the_weight_rule_though_the_crd_schema_allows_it(tmp_path):
    def overweight(vs: dict) -> None:
        vs["spec"]["http"][1]["route"][0]["weight"] = 150
    objects = broken_production(tmp_path, "trip-service/virtualservice.yaml", overweight)
    assert crd_problems(objects) == []  # Istio's schema bounds no weight
    assert weight_problems(objects) == [
        "VirtualService production/trip-service http[1] (primary): weight 150 to subset stable is outside 0-100",
        "VirtualService production/trip-service http[1] (primary): weights add up to 150, not 100"]
