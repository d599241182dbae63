"""The manifests say what the production policy and the release code say: the shape `colored_deployment`
writes, R-CAN-3's analysis, hosts and the canary header, the sync window, and exactly the fields a
direct release owns as the Applications' ignoreDifferences."""

from __future__ import annotations

import pytest
import yaml

from delivery.gitops.owned import PRODUCTION, STAGING
from delivery.kube.manifests import colored_deployment
from delivery.policy.loader import load_policy
from delivery.sandbox.scenario import image_of, load_scenario
from delivery.units import parse_duration
from tests.conftest import REPO
from tests.gitops.checkers import MANIFESTS, contains, kustomize

POLICY = load_policy(REPO / "policies" / "tripgen.yaml")
SERVICES = [svc.name for svc in POLICY.services]


@pytest.fixture(scope="module")
def production() -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in kustomize(MANIFESTS / "environments" / "production")}


@pytest.fixture(scope="module")
def staging() -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in kustomize(MANIFESTS / "environments" / "staging")}


def argocd(kind: str, name: str) -> dict:
    folder = "projects" if kind == "AppProject" else "applications"
    obj = yaml.safe_load((MANIFESTS / "argocd" / folder / f"{name}.yaml").read_text())
    assert (obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]) == (kind, name, "argocd-system")
    return obj


@pytest.mark.parametrize("color", ["blue", "green"])
def test_colored_deployments_hold_what_the_release_writes(production, color):
    deadline = int(POLICY.blue_green.ready_timeout.total_seconds())
    for svc in POLICY.services:
        expected = colored_deployment(svc, "production", color, image_of(POLICY, svc.name, "v1.0.0"), deadline,
                                      replicas=svc.replicas if color == "blue" else 0)
        assert contains(production[("Deployment", f"{svc.name}-{color}")], expected) == []


def test_services_select_the_live_color_and_previews_the_idle_one(production):
    for svc in POLICY.services:
        assert production[("Service", svc.name)]["spec"]["selector"] == {"app": svc.name, "version": "blue"}
        assert production[("Service", f"{svc.name}-preview")]["spec"]["selector"] == {"app": svc.name, "version": "green"}
        assert production[("Service", svc.name)]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": svc.port}]


def test_ingress_hosts_and_paths_are_the_policys_and_scenarios(production, staging):
    hosts, public = load_scenario().hosts, {svc.public_path: svc.name for svc in POLICY.services}
    for ingress, host, suffix in ((production[("Ingress", "tripgen")], hosts.production, ""),
                                  (production[("Ingress", "tripgen-validation")], POLICY.blue_green.validation_host, "-preview"),
                                  (staging[("Ingress", "tripgen")], hosts.staging, "")):
        [rule] = ingress["spec"]["rules"]
        assert rule["host"] == host
        assert {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]} == {
            path: name + suffix for path, name in public.items()}


def test_the_canary_header_is_the_policys(production):
    canary = POLICY.canary
    for name in SERVICES:
        header_route = production[("VirtualService", name)]["spec"]["http"][0]
        assert header_route["match"] == [{"headers": {canary.header_name: {"exact": canary.header_value}}}]


def test_flagger_canaries_carry_the_policys_analysis(production):
    analysis = POLICY.canary.analysis
    for name in SERVICES:
        spec = production[("Canary", name)]["spec"]
        assert spec["suspend"] is True and spec["targetRef"]["name"] == f"{name}-blue"
        assert spec["progressDeadlineSeconds"] == analysis.progress_deadline.total_seconds()
        got = spec["analysis"]
        assert (parse_duration(got["interval"]), got["threshold"], got["maxWeight"], got["stepWeight"]) == (
            analysis.interval, analysis.threshold, analysis.max_weight, analysis.step_weight)
        assert [(m["name"], parse_duration(m["interval"]), m["thresholdRange"]) for m in got["metrics"]] == [
            (m.template, m.interval, {k: v for k, v in (("min", m.min), ("max", m.max)) if v is not None})
            for m in analysis.metrics]


def test_the_projects_sync_window_is_the_policys():
    window, policy = argocd("AppProject", "tripgen")["spec"]["syncWindows"], POLICY.sync_window
    assert [(w["kind"], w["schedule"], parse_duration(w["duration"]), w["timeZone"], w["applications"]) for w in window] == [
        (policy.kind, policy.schedule, policy.duration, policy.timezone, policy.applications)]


def test_tripgen_prod_syncs_production_automatically():
    spec = argocd("Application", "tripgen-prod")["spec"]
    assert spec["project"] == "tripgen" and spec["source"]["path"] == "environments/production"
    assert spec["destination"]["namespace"] == POLICY.environments["production"].namespace
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]


@pytest.mark.parametrize("app, environment, owned", [("tripgen-prod", "production", PRODUCTION),
                                                    ("tripgen-staging", "staging", STAGING)])
def test_ignore_differences_are_exactly_what_a_direct_release_owns(app, environment, owned):
    entries = argocd("Application", app)["spec"]["ignoreDifferences"]
    assert {e["namespace"] for e in entries} == {POLICY.environments[environment].namespace}
    listed = {(e["group"], e["kind"], e["name"], pointer) for e in entries for pointer in e["jsonPointers"]}
    assert listed == set().union(*(field.expand(SERVICES) for field in owned))


def resolve(obj: dict, pointer: str) -> object:
    for part in pointer.strip("/").split("/"):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@pytest.mark.parametrize("environment, owned", [("production", PRODUCTION), ("staging", STAGING)])
def test_every_owned_pointer_names_a_field_of_the_rendered_objects(production, staging, environment, owned):
    objects = production if environment == "production" else staging
    for _, kind, name, pointer in set().union(*(field.expand(SERVICES) for field in owned)):
        resolve(objects[(kind, name)], pointer)


def test_the_owned_weights_are_those_of_the_route_the_release_splits(production):
    for name in SERVICES:
        http = production[("VirtualService", name)]["spec"]["http"]
        split = next(i for i, route in enumerate(http) if not route.get("match"))  # Routing's weighted route
        weights = {f.pointer for f in PRODUCTION if f.kind == "VirtualService"}
        assert weights == {f"/spec/http/{split}/route/{i}/weight" for i in range(len(http[split]["route"]))}
