"""The simulated kubelet and Job controller, through the official client: pod start,
readiness by image behavior, Events, logs, and Jobs that complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from delivery.sandbox.behavior import BehaviorBook
from tests.sandbox.cluster_fixture import running_cluster, wait_until

NS = "production"


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    api = client.CoreV1Api(api_client)
    api.create_namespace({"metadata": {"name": NS}})
    return api


def start_pod(core: client.CoreV1Api, name: str, *images: str) -> None:
    containers = [{"name": f"c{i}" if len(images) > 1 else "app", "image": image,
                   "env": [{"name": "SPRING_PROFILES_ACTIVE", "value": "production"}]}
                  for i, image in enumerate(images)]
    core.create_namespaced_pod(NS, {"metadata": {"name": name, "labels": {"app": "trip-service"}},
                                    "spec": {"containers": containers}})


def pod_events(core: client.CoreV1Api, name: str) -> dict[str, client.CoreV1Event]:
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name},"
                                                           "involvedObject.kind=Pod").items
    return {e.reason: e for e in events}


def ready_condition(core: client.CoreV1Api, name: str) -> str | None:
    conditions = core.read_namespaced_pod(name, NS).status.conditions or []
    return next((c.status for c in conditions if c.type == "Ready"), None)


def test_healthy_pod_starts_then_becomes_ready(core: client.CoreV1Api) -> None:
    start_pod(core, "trip", "acr.io/trip-service:v1.2.0")
    wait_until(lambda: ready_condition(core, "trip") == "True", what="pod ready")
    pod = core.read_namespaced_pod("trip", NS)
    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Running" and pod.spec.node_name.startswith("aks-nodepool1-")
    assert status.ready and status.started and status.state.running.started_at
    assert status.image_id.startswith("acr.io/trip-service@sha256:")
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(pod_events(core, "trip"))


def test_pod_of_a_broken_image_stays_unready_and_fails_probes(core: client.CoreV1Api) -> None:
    start_pod(core, "trip", "acr.io/trip-service:v1.3.0-broken")
    unhealthy = wait_until(lambda: pod_events(core, "trip").get("Unhealthy"), what="a readiness failure")
    pod = core.read_namespaced_pod("trip", NS)
    ready = {c.type: c for c in pod.status.conditions}["Ready"]
    assert pod.status.phase == "Running" and not pod.status.container_statuses[0].ready
    assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
    assert unhealthy.type == "Warning" and unhealthy.message.startswith("Readiness probe failed")
    assert "Readiness group is OUT_OF_SERVICE" in core.read_namespaced_pod_log("trip", NS)


def test_readiness_follows_behavior_changes_at_run_time(tmp_path: Path) -> None:
    behaviors = BehaviorBook()
    with running_cluster(tmp_path, behaviors=behaviors) as cluster, \
            client.ApiClient(client.Configuration(host=cluster.base_url)) as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        start_pod(core, "trip", "acr.io/trip-service:v1.2.0")
        wait_until(lambda: ready_condition(core, "trip") == "True", what="pod ready")
        behaviors.override("v1.2.0", becomes_ready=False)
        wait_until(lambda: ready_condition(core, "trip") == "False", what="pod unready")
        behaviors.clear_overrides()
        wait_until(lambda: ready_condition(core, "trip") == "True", what="pod ready again")


def test_logs_read_like_a_spring_boot_start(core: client.CoreV1Api) -> None:
    start_pod(core, "trip", "acr.io/trip-service:v1.2.0")
    wait_until(lambda: ready_condition(core, "trip") == "True", what="pod ready")
    log = core.read_namespaced_pod_log("trip", NS)
    last = core.read_namespaced_pod_log("trip", NS, tail_lines=1)
    assert "Starting TripServiceApplication v1.2.0 using Java 21" in log
    assert 'The following 1 profile is active: "production"' in log
    assert last.count("\n") == 1 and "Started TripServiceApplication in" in last


def test_logs_of_a_pod_with_two_containers_need_a_container_name(core: client.CoreV1Api) -> None:
    start_pod(core, "trip", "acr.io/trip-service:v1.2.0", "envoy:v1")
    wait_until(lambda: ready_condition(core, "trip") == "True", what="pod ready")
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("trip", NS)
    assert raised.value.status == 400 and "choose one of: [c0 c1]" in raised.value.body
    assert "Tomcat started on port 8080" in core.read_namespaced_pod_log("trip", NS, container="c1")


def test_job_completes(api_client: client.ApiClient, core: client.CoreV1Api) -> None:
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(NS, {"metadata": {"name": "migrate"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "flyway", "image": "flyway:10"}]}}}})
    job = wait_until(lambda: (j := batch.read_namespaced_job("migrate", NS)).status.succeeded and j,
                     what="the job to complete")
    conditions = {c.type: c.status for c in job.status.conditions}
    assert conditions["Complete"] == "True" and job.status.completion_time is not None
