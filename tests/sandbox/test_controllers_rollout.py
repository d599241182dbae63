"""The Deployment and ReplicaSet controllers, watched through the official client:
ReplicaSets per template with revisions, rolling updates within maxSurge and
maxUnavailable, Recreate, scaling, rollbacks, progress deadlines, cascade delete."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, watch

from tests.sandbox.cluster_fixture import deployment_manifest, rolled_out, wait_until

NS = "production"
REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": NS}})
    return client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def deploy(apps: client.AppsV1Api, name: str, image: str, replicas: int = 3, **spec: object) -> client.V1Deployment:
    apps.create_namespaced_deployment(NS, deployment_manifest(name, image, replicas, **spec))
    return wait_until(lambda: rolled_out(apps, NS, name), what=f"{name} rolled out")


def set_image(apps: client.AppsV1Api, name: str, image: str, **annotations: str) -> None:
    apps.patch_namespaced_deployment(name, NS, {"metadata": {"annotations": annotations},
                                                "spec": {"template": {"spec": {"containers": [
                                                    {"name": "app", "image": image}]}}}})


def replica_sets(apps: client.AppsV1Api, name: str) -> dict[str, client.V1ReplicaSet]:
    """The Deployment's ReplicaSets by revision."""
    return {rs.metadata.annotations[REVISION]: rs
            for rs in apps.list_namespaced_replica_set(NS, label_selector=f"app={name}").items}


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pod_events_since(core: client.CoreV1Api, resource_version: str, selector: str) -> list[dict]:
    stream = watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=resource_version,
                                  label_selector=selector, timeout_seconds=1)
    return list(stream)


def test_new_deployment_gets_a_replica_set_and_ready_pods(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    deployment = deploy(apps, "trip", "acr.io/trip:v1.0.0")
    (revision, rs), = replica_sets(apps, "trip").items()
    pods = core.list_namespaced_pod(NS, label_selector="app=trip").items
    pod_hash = rs.metadata.labels["pod-template-hash"]
    assert revision == "1" and deployment.metadata.annotations[REVISION] == "1"
    assert rs.metadata.name == f"trip-{pod_hash}" and rs.spec.selector.match_labels["pod-template-hash"] == pod_hash
    assert rs.metadata.owner_references[0].uid == deployment.metadata.uid
    assert len(pods) == 3 and all(p.metadata.name.startswith(f"trip-{pod_hash}-") for p in pods)
    pod = pods[0]
    assert pod.spec.node_name.startswith("aks-nodepool1-") and pod.status.phase == "Running"
    assert pod.status.pod_ip.startswith("10.244.")
    assert pod.status.container_statuses[0].image == "acr.io/trip:v1.0.0"
    assert pod.status.container_statuses[0].ready and pod.status.container_statuses[0].restart_count == 0
    conditions = {c.type: c for c in deployment.status.conditions}
    assert conditions["Available"].reason == "MinimumReplicasAvailable"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"


def test_rolling_update_stays_within_surge_and_unavailability(apps: client.AppsV1Api,
                                                              core: client.CoreV1Api) -> None:
    deploy(apps, "trip", "trip:v1", replicas=4,
           strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
    before = core.list_namespaced_pod(NS)
    set_image(apps, "trip", "trip:v2", **{"kubernetes.io/change-cause": "release v2"})
    deployment = wait_until(lambda: rolled_out(apps, NS, "trip"), what="v2 rolled out")
    live = {p.metadata.name: is_ready(p) for p in before.items}
    most_pods, fewest_ready = 4, 4
    for event in pod_events_since(core, before.metadata.resource_version, "app=trip"):
        pod = event["object"]
        if event["type"] == "DELETED":
            live.pop(pod.metadata.name, None)
        else:
            live[pod.metadata.name] = is_ready(pod)
        most_pods, fewest_ready = max(most_pods, len(live)), min(fewest_ready, sum(live.values()))
    revisions = replica_sets(apps, "trip")
    assert most_pods <= 5 and fewest_ready >= 3
    assert deployment.metadata.annotations[REVISION] == "2"
    assert (revisions["1"].spec.replicas, revisions["2"].spec.replicas) == (0, 4)
    assert revisions["2"].metadata.annotations["kubernetes.io/change-cause"] == "release v2"


def test_rolling_back_reuses_the_old_replica_set_with_a_new_revision(apps: client.AppsV1Api) -> None:
    deploy(apps, "trip", "trip:v1")
    set_image(apps, "trip", "trip:v2")
    wait_until(lambda: rolled_out(apps, NS, "trip"), what="v2 rolled out")
    first = replica_sets(apps, "trip")["1"]
    template = client.ApiClient().sanitize_for_serialization(first.spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]
    apps.patch_namespaced_deployment("trip", NS, [{"op": "replace", "path": "/spec/template", "value": template}])
    deployment = wait_until(lambda: rolled_out(apps, NS, "trip"), what="rollback rolled out")
    revisions = replica_sets(apps, "trip")
    assert sorted(revisions) == ["2", "3"]
    assert revisions["3"].metadata.name == first.metadata.name
    assert revisions["3"].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert deployment.metadata.annotations[REVISION] == "3"
    assert deployment.spec.template.spec.containers[0].image == "trip:v1"


def test_image_that_never_gets_ready_exceeds_the_progress_deadline(apps: client.AppsV1Api,
                                                                   core: client.CoreV1Api) -> None:
    deploy(apps, "trip", "trip:v1", progressDeadlineSeconds=1)
    set_image(apps, "trip", "trip:v2-broken")

    def timed_out() -> client.V1Deployment | None:
        deployment = apps.read_namespaced_deployment("trip", NS)
        progressing = {c.type: c for c in deployment.status.conditions}["Progressing"]
        return deployment if progressing.reason == "ProgressDeadlineExceeded" else None

    deployment = wait_until(timed_out, timeout=10, what="the progress deadline")
    progressing = {c.type: c for c in deployment.status.conditions}["Progressing"]
    broken = [p for p in core.list_namespaced_pod(NS).items if p.spec.containers[0].image == "trip:v2-broken"]
    assert progressing.status == "False"
    assert deployment.status.available_replicas == 3 and deployment.status.updated_replicas == 1
    assert len(broken) == 1 and broken[0].status.phase == "Running"
    assert not broken[0].status.container_statuses[0].ready
    assert {c.type: c.status for c in broken[0].status.conditions}["Ready"] == "False"


def test_a_rollout_that_completed_long_ago_does_not_time_out_the_next_one(apps: client.AppsV1Api) -> None:
    """The controller's rule: a Progressing condition that says NewReplicaSetAvailable never times out;
    rolling back onto an old ReplicaSet, after the last rollout ended longer ago than the deadline, must roll out."""
    deploy(apps, "trip", "trip:v1", progressDeadlineSeconds=1)
    set_image(apps, "trip", "trip:v2")
    wait_until(lambda: rolled_out(apps, NS, "trip"), what="v2 rolled out")

    def completed() -> client.V1DeploymentCondition | None:
        deployment = apps.read_namespaced_deployment("trip", NS)
        progressing = {c.type: c for c in deployment.status.conditions or []}.get("Progressing")
        return progressing if progressing and progressing.reason == "NewReplicaSetAvailable" else None

    # let the deadline (1 s, counted from the end of the second the condition was stamped with) pass by a second,
    # counted from the condition itself rather than from when this test saw the rollout end
    stamped = wait_until(completed, what="v2's NewReplicaSetAvailable condition").last_update_time.timestamp()
    wait_until(lambda: time.time() > stamped + 1 + 1 + 1, what="the deadline to lie a second in the past")
    template = client.ApiClient().sanitize_for_serialization(replica_sets(apps, "trip")["1"].spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]
    before = apps.list_namespaced_deployment(NS).metadata.resource_version
    apps.patch_namespaced_deployment("trip", NS, [{"op": "replace", "path": "/spec/template", "value": template}])
    deployment = wait_until(lambda: rolled_out(apps, NS, "trip"), what="rollback rolled out")
    stream = watch.Watch().stream(apps.list_namespaced_deployment, NS, resource_version=before,
                                  field_selector="metadata.name=trip", timeout_seconds=1)
    seen = {c.reason for event in stream for c in event["object"].status.conditions or [] if c.type == "Progressing"}
    assert "ProgressDeadlineExceeded" not in seen
    assert deployment.spec.template.spec.containers[0].image == "trip:v1"


def test_recreate_removes_old_pods_before_starting_new_ones(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    deploy(apps, "trip", "trip:v1", replicas=2, strategy={"type": "Recreate"})
    before = core.list_namespaced_pod(NS)
    set_image(apps, "trip", "trip:v2")
    wait_until(lambda: rolled_out(apps, NS, "trip"), what="v2 rolled out")
    images = {p.metadata.name: p.spec.containers[0].image for p in before.items}
    for event in pod_events_since(core, before.metadata.resource_version, "app=trip"):
        pod = event["object"]
        if event["type"] == "DELETED":
            images.pop(pod.metadata.name, None)
        else:
            images[pod.metadata.name] = pod.spec.containers[0].image
        assert len(set(images.values())) <= 1, f"old and new pods at once: {images}"
    assert sorted(images.values()) == ["trip:v2", "trip:v2"]


def test_scaling_adds_and_removes_pods(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    deploy(apps, "trip", "trip:v1", replicas=2)
    apps.patch_namespaced_deployment_scale("trip", NS, {"spec": {"replicas": 5}})
    wait_until(lambda: rolled_out(apps, NS, "trip"), what="scale up")
    assert len(core.list_namespaced_pod(NS).items) == 5
    apps.patch_namespaced_deployment_scale("trip", NS, {"spec": {"replicas": 1}})
    wait_until(lambda: rolled_out(apps, NS, "trip"), what="scale down")
    assert len(core.list_namespaced_pod(NS).items) == 1
    assert len(replica_sets(apps, "trip")) == 1


def test_deleting_a_deployment_deletes_its_replica_sets_and_pods(apps: client.AppsV1Api,
                                                                 core: client.CoreV1Api) -> None:
    deploy(apps, "trip", "trip:v1", replicas=2)
    apps.delete_namespaced_deployment("trip", NS)
    assert apps.list_namespaced_replica_set(NS).items == []
    assert core.list_namespaced_pod(NS).items == []


def test_scaling_events_are_recorded_on_the_deployment(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    deployment = deploy(apps, "trip", "trip:v1", replicas=2)
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.uid={deployment.metadata.uid},"
                                                           "involvedObject.kind=Deployment").items
    rs_name = next(iter(replica_sets(apps, "trip").values())).metadata.name
    assert [(e.reason, e.message) for e in events] == [
        ("ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to 2")]
    assert events[0].source.component == "deployment-controller"
