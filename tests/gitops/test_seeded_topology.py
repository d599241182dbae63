"""The sandbox seeds the rendered overlays: the Python renderer prints what `kubectl kustomize` does, the
seeded objects are the overlays (with the policy's numbers where the release writes them), the sandbox
stores every one, and the validation host reaches the idle color through the seeded preview Ingress."""

from __future__ import annotations

import copy
import random

import pytest

from delivery.gitops.kustomize import render
from delivery.policy.loader import load_policy
from delivery.sandbox.scenario import load_scenario, topology
from delivery.sandbox.server import Sandbox
from delivery.sandbox.traffic import NamespaceObjects, resolve_target, route_request
from tests.conftest import REPO
from tests.gitops.checkers import MANIFESTS, contains, kustomize

TREES = ("environments/staging", "environments/production", "argocd")
PRODUCTION_POLICY = load_policy(REPO / "policies" / "tripgen.yaml")
DEMO_POLICY = load_policy(REPO / "policies" / "demo.yaml")


def keyed(objects: list[dict]) -> dict[tuple[str, str, str], dict]:
    keys = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects]
    assert len(set(keys)) == len(keys), "an object is rendered twice"
    return dict(zip(keys, objects))


def overlays() -> dict[tuple[str, str, str], dict]:
    return keyed(kustomize(MANIFESTS / TREES[0]) + kustomize(MANIFESTS / TREES[1]))


@pytest.mark.parametrize("tree", TREES)
def test_the_python_renderer_prints_what_kubectl_kustomize_does(tree):
    assert keyed(render(MANIFESTS / tree)) == keyed(kustomize(MANIFESTS / tree))


def test_with_the_production_policy_the_seed_is_the_rendered_overlays():
    seeded = topology(PRODUCTION_POLICY, load_scenario())
    assert keyed(seeded) == overlays()
    assert [o["kind"] for o in seeded[:2]] == ["Namespace", "Namespace"]


def without_policy_fields(obj: dict) -> dict:
    """The object less the fields `topology` takes from the policy."""
    obj = copy.deepcopy(obj)
    if obj["kind"] == "Deployment":
        for key in ("replicas", "progressDeadlineSeconds"):
            obj["spec"].pop(key)
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for key in ("image", "env", "resources"):
                container.pop(key)
    return obj


def test_another_policy_changes_only_the_fields_the_release_takes_from_it():
    seeded, rendered = keyed(topology(DEMO_POLICY, load_scenario())), overlays()
    assert seeded.keys() == rendered.keys()
    assert {k: without_policy_fields(o) for k, o in seeded.items()} == {k: without_policy_fields(o) for k, o in rendered.items()}
    for (kind, namespace, name), obj in seeded.items():
        if kind == "Deployment":
            svc = DEMO_POLICY.service(obj["metadata"]["labels"]["app"])
            assert obj["spec"]["replicas"] == (0 if name.endswith("-green") else svc.replicas)
            [container] = obj["spec"]["template"]["spec"]["containers"]
            assert container["resources"] == svc.resources.model_dump()
            assert container["image"] == f"{DEMO_POLICY.registry}/{svc.repository}:v1.0.0"


def test_a_policy_whose_namespaces_are_not_the_overlays_is_refused():
    data = DEMO_POLICY.model_dump(mode="json")
    data["environments"]["production"]["namespace"] = "prod"
    with pytest.raises(ValueError, match=r"namespaces \['staging', 'prod'\]"):
        topology(type(DEMO_POLICY).model_validate(data), load_scenario())


def test_the_sandbox_stores_every_seeded_object(tmp_path):
    sandbox = Sandbox(DEMO_POLICY, load_scenario(), tmp_path)
    for (kind, namespace, name), obj in keyed(topology(DEMO_POLICY, load_scenario())).items():
        [stored] = [o for o in sandbox.store.list_objects(sandbox._plural(obj), namespace or None)
                    if o["metadata"]["name"] == name]
        assert contains(stored, obj) == [], (kind, namespace, name)


def pod(service: str, color: str) -> dict:
    return {"metadata": {"name": f"{service}-{color}-0", "labels": {"app": service, "version": color}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def test_the_validation_host_reaches_what_the_preview_service_selects():
    seeded = topology(DEMO_POLICY, load_scenario())
    ingresses = [o for o in seeded if o["kind"] == "Ingress"]
    production = [o for o in seeded if o["metadata"].get("namespace") == "production"]
    services = [o for o in production if o["kind"] == "Service"]
    objects = NamespaceObjects(services=services, pods=[pod("trip-service", c) for c in ("blue", "green")],
                               virtualservices=[o for o in production if o["kind"] == "VirtualService"],
                               destinationrules=[o for o in production if o["kind"] == "DestinationRule"])

    def reached(host: str) -> tuple[str, str]:
        target = resolve_target(host, "/api/trips/health", ingresses)
        upstream = route_request(target, {}, objects, random.Random(0))
        return target.service, upstream.pod["metadata"]["labels"]["version"]

    selector = lambda name: next(s for s in services if s["metadata"]["name"] == name)["spec"]["selector"]  # noqa: E731
    assert reached("api.tripgen.com") == ("trip-service", "blue")
    assert reached("validation.tripgen.com") == ("trip-service-preview", "green")
    selector("trip-service")["version"] = "green"  # switched: the preview still selects green until a release moves it
    assert reached("api.tripgen.com") == ("trip-service", "green")
    assert reached("validation.tripgen.com") == ("trip-service-preview", "green")
    selector("trip-service-preview")["version"] = "blue"  # the next release deploys blue and points the preview at it
    assert reached("validation.tripgen.com") == ("trip-service-preview", "blue")
