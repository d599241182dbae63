"""The cluster adapter through the official client over HTTP against the sandbox emulator."""

from __future__ import annotations

import pytest
from kubernetes import client

from delivery.kube import Deployments, Routing, connect
from delivery.kube.connection import KubeConnection, RetryPolicy
from delivery.kube.manifests import colored_deployment
from delivery.policy.models import Policy
from delivery.sandbox.scenario import load_scenario, topology
from tests.sandbox.cluster_fixture import running_cluster

POLICY = Policy()
NS = "production"


def seed(conn: KubeConnection) -> None:
    """The TripGen topology, created through the API as `kubectl apply` would."""
    for manifest in topology(POLICY, load_scenario()):
        kind, namespace = manifest["kind"], manifest["metadata"].get("namespace")
        if kind == "Namespace":
            conn.core.create_namespace(manifest)
        elif kind == "Deployment":
            conn.apps.create_namespaced_deployment(namespace, manifest)
        elif kind == "Service":
            conn.core.create_namespaced_service(namespace, manifest)
        elif kind == "Ingress":
            client.NetworkingV1Api(conn.api).create_namespaced_ingress(namespace, manifest)
        elif kind == "PodDisruptionBudget":
            client.PolicyV1Api(conn.api).create_namespaced_pod_disruption_budget(namespace, manifest)
        else:
            group, version = manifest["apiVersion"].split("/")
            plural = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules", "Canary": "canaries"}[kind]
            conn.custom.create_namespaced_custom_object(group, version, namespace, plural, manifest)


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path, ready_delay_seconds=0.05) as running:
        # 20 attempts: with half the requests failing, a call still fails with probability 0.5**20 (about 1e-6)
        conn = connect(str(running.kubeconfig), retry=RetryPolicy(attempts=20, base_delay=0.005, max_delay=0.02))
        seed(conn)
        yield running, conn


def image(tag: str, service: str = "trip-service") -> str:
    return f"acrtrpgenprod.azurecr.io/{service}:{tag}"


def test_rollout_and_wait(cluster):
    _, conn = cluster
    deployments = Deployments(conn)
    deployments.apply(colored_deployment(POLICY.service("trip-service"), NS, "green", image("v1.2.0"), 30))
    result = deployments.wait_rolled_out(NS, "trip-service-green", timeout=20, poll=0.1)
    assert result.done and result.message == 'deployment "trip-service-green" successfully rolled out'
    assert deployments.image_of(NS, "trip-service-green") == image("v1.2.0")


def test_a_broken_image_hits_the_progress_deadline_then_undo_restores_it(cluster):
    _, conn = cluster
    deployments = Deployments(conn)
    deployments.apply(colored_deployment(POLICY.service("trip-service"), NS, "green", image("v1.2.0"), 2))
    assert deployments.wait_rolled_out(NS, "trip-service-green", timeout=20, poll=0.1).done
    good = max(deployments.revisions(NS, "trip-service-green"))  # 2: the seeded idle green is revision 1
    deployments.set_image(NS, "trip-service-green", "trip-service", image("v1.4.0-broken"))
    failed = deployments.wait_rolled_out(NS, "trip-service-green", timeout=30, poll=0.2)
    assert failed.failed and "exceeded its progress deadline" in failed.message
    assert deployments.undo(NS, "trip-service-green") == good
    assert deployments.wait_rolled_out(NS, "trip-service-green", timeout=20, poll=0.1).done
    assert deployments.image_of(NS, "trip-service-green") == image("v1.2.0")


def test_wait_times_out_when_the_deadline_is_far(cluster):
    _, conn = cluster
    deployments = Deployments(conn)
    deployments.set_image(NS, "trip-service-blue", "trip-service", image("v1.4.0-broken"))
    result = deployments.wait_rolled_out(NS, "trip-service-blue", timeout=1, poll=0.1)
    assert result.failed and result.message.startswith("timed out after 1s")


def test_selector_switch(cluster):
    _, conn = cluster
    routing = Routing(conn)
    assert routing.selected_color(NS, "trip-service") == "blue"
    routing.switch_selector(NS, "trip-service", "green")
    assert routing.selected_color(NS, "trip-service") == "green"
    assert conn.core.read_namespaced_service("trip-service", NS).spec.selector == {"app": "trip-service", "version": "green"}


def test_virtual_service_weights_are_read_back(cluster):
    _, conn = cluster
    routing = Routing(conn)
    assert routing.route_weights(NS, "trip-service") == {"stable": 100, "canary": 0}
    assert routing.set_route_weights(NS, "trip-service", {"stable": 90, "canary": 10}) == {"stable": 90, "canary": 10}
    raw = conn.custom.get_namespaced_custom_object("networking.istio.io", "v1beta1", NS, "virtualservices", "trip-service")
    assert [d["weight"] for d in raw["spec"]["http"][1]["route"]] == [90, 10]
    with pytest.raises(ValueError, match="add up to 100"):
        routing.set_route_weights(NS, "trip-service", {"stable": 90, "canary": 20})


class ConflictOnce(KubeConnection):
    """Before the first replace, someone else changes the object: the replace then meets a real 409."""

    interfered = 0

    def call(self, fn, *args, **kwargs):
        if fn.__name__.startswith("replace_") and not self.interfered:
            self.interfered += 1
            name, namespace = args[0], args[1]
            other = {"metadata": {"labels": {"touched-by": "someone-else"}}}
            if "custom_object" in fn.__name__:
                self.custom.patch_namespaced_custom_object("networking.istio.io", "v1beta1", args[2], "virtualservices", args[4], other)
            else:
                self.apps.patch_namespaced_deployment(name, namespace, other)
        return super().call(fn, *args, **kwargs)


def test_a_409_conflict_rereads_and_reapplies(cluster):
    _, conn = cluster
    racing = ConflictOnce(conn.api, conn.retry)
    manifest = colored_deployment(POLICY.service("trip-service"), NS, "blue", image("v1.2.0"), 30)
    Deployments(racing).apply(manifest)  # exists: a strategic merge, which carries no resourceVersion to conflict on
    assert Deployments(conn).image_of(NS, "trip-service-blue") == image("v1.2.0")
    racing.interfered = 0
    assert Routing(racing).set_route_weights(NS, "trip-service", {"stable": 75, "canary": 25}) == {"stable": 75, "canary": 25}
    assert racing.interfered == 1


@pytest.mark.parametrize("fault, expected_sleep", [("api_error_rate", None), ("api_throttle_rate", 1.0)])
def test_injected_5xx_and_429_are_retried_to_success(cluster, fault, expected_sleep):
    running, conn = cluster
    slept: list[float] = []
    conn.sleep = slept.append
    setattr(running.faults, fault, 0.5)
    try:
        routing = Routing(conn)
        colors = [routing.selected_color(NS, "trip-service") for _ in range(30)]
    finally:
        setattr(running.faults, fault, 0.0)
    assert colors == ["blue"] * 30
    assert slept, "with half the requests failing, some calls must have been retried"
    if expected_sleep is not None:
        assert set(slept) == {expected_sleep}  # Retry-After: 1 honoured
