"""The shipped scenario loads, and the seeded topology follows the policy."""

import pytest

from delivery.policy.loader import load_policy
from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.scenario import load_scenario, topology
from tests.conftest import REPO


@pytest.fixture(scope="module")
def seeded():
    policy = load_policy(REPO / "policies" / "demo.yaml")
    return policy, {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in topology(policy, load_scenario())}


def test_production_runs_blue_behind_a_service_selecting_blue(seeded):
    policy, objects = seeded
    for svc in policy.services:
        deploy = objects[("Deployment", "production", f"{svc.name}-blue")]
        assert deploy["spec"]["template"]["metadata"]["labels"] == {"app": svc.name, "version": "blue"}
        assert deploy["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f"/{svc.name}:v1.0.0")
        assert deploy["spec"]["replicas"] == svc.replicas
        assert objects[("Service", "production", svc.name)]["spec"]["selector"] == {"app": svc.name, "version": "blue"}


def test_istio_routing_sends_the_canary_header_to_the_canary(seeded):
    _, objects = seeded
    vs = objects[("VirtualService", "production", "trip-service")]["spec"]["http"]
    assert vs[0]["match"] == [{"headers": {"canary": {"exact": "true"}}}]
    assert vs[0]["route"][0]["destination"]["subset"] == "canary"
    assert [(d["destination"]["subset"], d["weight"]) for d in vs[1]["route"]] == [("stable", 100), ("canary", 0)]
    subsets = objects[("DestinationRule", "production", "trip-service")]["spec"]["subsets"]
    assert subsets == [{"name": "stable"}, {"name": "canary", "labels": {"version": "canary"}}]


def test_staging_rolls_one_deployment_per_service(seeded):
    policy, objects = seeded
    for svc in policy.services:
        deploy = objects[("Deployment", "staging", svc.name)]
        assert deploy["spec"]["selector"] == {"matchLabels": {"app": svc.name}}
        assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"


def test_ingress_paths_come_from_the_policy(seeded):
    policy, objects = seeded
    rules = objects[("Ingress", "production", "tripgen")]["spec"]["rules"]
    assert [r["host"] for r in rules] == ["api.tripgen.com"]
    paths = {p["path"]: p["backend"]["service"]["name"] for p in rules[0]["http"]["paths"]}
    assert paths == {svc.public_path: svc.name for svc in policy.services}
    validation = objects[("Ingress", "production", "tripgen-validation")]["spec"]["rules"]
    assert [r["host"] for r in validation] == ["validation.tripgen.com"]
    assert {p["path"]: p["backend"]["service"]["name"] for p in validation[0]["http"]["paths"]} == {
        path: f"{name}-preview" for path, name in paths.items()}


def test_default_behaviors_by_tag():
    book = BehaviorBook(load_scenario().rules())
    assert not book.for_image("r/trip-service:v1.4.0-broken").becomes_ready
    assert book.for_image("r/trip-service:v1.3.0-faulty", "production").error_rate == pytest.approx(0.05)
    assert book.for_image("r/trip-service:v1.3.0-faulty", "staging").error_rate == pytest.approx(0.0005)
    assert book.for_image("r/trip-service:v1.3.0-slow").latency_p95_ms == 1500
    healthy = book.for_image("r/trip-service:v1.2.0")
    assert healthy.becomes_ready and healthy.error_rate == pytest.approx(0.0005) and healthy.latency_p95_ms == 120


def test_run_time_faults_override_rules_and_follow_digests():
    book = BehaviorBook(load_scenario().rules())
    digest = book.know("trip-service", "v1.2.0")
    book.override("v1.2.0", error_rate=0.2)
    assert book.for_image(f"r/trip-service@{digest}").error_rate == pytest.approx(0.2)
    book.clear_overrides()
    assert book.for_image(f"r/trip-service@{digest}").error_rate == pytest.approx(0.0005)


def test_a_bad_scenario_names_the_problem(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("known_tags: [v1.0.0]\nbehaviors: [{tag: '*', error_rate_percent: 150}]\n")
    with pytest.raises(ValueError, match="behaviors.0.error_rate_percent"):
        load_scenario(path)


def test_faults_can_target_one_repository():
    book = BehaviorBook(load_scenario().rules())
    book.override("ai-service:v1.2.0", becomes_ready=False)
    assert not book.for_image("acr/ai-service:v1.2.0").becomes_ready
    assert book.for_image("acr/trip-service:v1.2.0").becomes_ready
