"""The Deployment controller's surge arithmetic when it runs again before a scaled-down
ReplicaSet's controller has removed its pods (the store's order of events is not fixed)."""

from __future__ import annotations

import time

from delivery.sandbox.controllers import DeploymentController, EventRecorder, ReplicaSetController
from delivery.sandbox.resources import timestamp
from delivery.sandbox.store import ObjectStore
from tests.sandbox.cluster_fixture import deployment_manifest

NS = "production"
ROLLING = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}


def make_ready(store: ObjectStore) -> None:
    """Every pod Ready and available now (the kubelet's part, done by hand)."""
    for pod in store.list_objects("pods", NS):
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": timestamp(time.time() - 60)}
        store.update("pods", {**pod, "status": {"phase": "Running", "conditions": [ready]}}, subresource="status")


def replica_sets(store: ObjectStore) -> list[dict]:
    return sorted(store.list_objects("replicasets", NS), key=lambda rs: rs["metadata"]["creationTimestamp"])


def test_pods_of_a_scaled_down_replica_set_count_until_they_are_gone() -> None:
    store = ObjectStore()
    store.create("namespaces", {"metadata": {"name": NS}})
    events = EventRecorder(store, 3600.0)
    deployments, rs_controller = DeploymentController(store, events), ReplicaSetController(store, events)
    store.create("deployments", {**deployment_manifest("trip", "trip:v1", 4, strategy=ROLLING),
                                 "metadata": {"name": "trip", "namespace": NS, "labels": {"app": "trip"}}})
    deployments.reconcile(NS, "trip")
    (v1,) = replica_sets(store)
    rs_controller.reconcile(NS, v1["metadata"]["name"], time.time())
    make_ready(store)
    rs_controller.reconcile(NS, v1["metadata"]["name"], time.time())
    live = store.get_object("deployments", NS, "trip")
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "trip:v2"
    store.update("deployments", live)

    deployments.reconcile(NS, "trip")  # v2 up to 1, v1 down to 3: v1's fourth pod still runs
    deployments.reconcile(NS, "trip")  # again, before v1's controller ran

    old, new = replica_sets(store)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 1)
    rs_controller.reconcile(NS, old["metadata"]["name"], time.time())
    deployments.reconcile(NS, "trip")
    old, new = replica_sets(store)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 2)
