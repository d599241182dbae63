"""Deployment operations, each idempotent: set image, wait rolled out, undo, apply, scale, delete."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import watch
from kubernetes.client import V1Deployment
from kubernetes.client.exceptions import ApiException

from delivery.kube.connection import TRANSIENT_ERRORS, KubeConnection
from delivery.timing import timed

REVISION = "deployment.kubernetes.io/revision"
WATCH_SLACK = 5  # seconds the client waits beyond a watch's own timeout before giving up on the connection
_UNDO_SKIPPED_ANNOTATIONS = {REVISION, "deployment.kubernetes.io/desired-replicas",
                             "deployment.kubernetes.io/max-replicas", "kubectl.kubernetes.io/last-applied-configuration"}


@dataclass(frozen=True)
class RolloutResult:
    """Where a rollout stands: `done`, `failed` (deadline exceeded or timed out) and kubectl's words."""

    done: bool
    failed: bool
    message: str


class Deployments:
    """Deployments in a cluster, through one connection."""

    def __init__(self, conn: KubeConnection, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self._clock = clock

    def get(self, namespace: str, name: str) -> V1Deployment | None:
        """The Deployment, or None when it does not exist."""
        try:
            return self.conn.call(self.conn.apps.read_namespaced_deployment, name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def image_of(self, namespace: str, name: str, container: str | None = None) -> str | None:
        """The image the Deployment's template runs (first container unless named)."""
        deployment = self.get(namespace, name)
        if deployment is None:
            return None
        containers = deployment.spec.template.spec.containers
        chosen = next((c for c in containers if container in (None, c.name)), None)
        return chosen.image if chosen else None

    def set_image(self, namespace: str, name: str, container: str, image: str) -> None:
        """Point one container at `image` (a strategic merge patch, like `kubectl set image`)."""
        patch = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        self.conn.call(self.conn.apps.patch_namespaced_deployment, name, namespace, patch)

    def apply(self, manifest: dict) -> V1Deployment:
        """Create the Deployment, or strategic-merge `manifest` into it: fields it does not name (a security
        context, volumes, annotations the manifests repository adds) stay as they are, so ArgoCD sees no drift."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return self.conn.call(self.conn.apps.create_namespaced_deployment, namespace, manifest)
        except ApiException as err:
            if err.status != 409:
                raise
        return self.conn.call(self.conn.apps.patch_namespaced_deployment, name, namespace, manifest)

    def rollout_status(self, namespace: str, name: str) -> RolloutResult:
        """One look at the rollout, by `kubectl rollout status`'s rule."""
        return found_rollout_state(self.get(namespace, name), namespace, name)

    def wait_rolled_out(self, namespace: str, name: str, timeout: float, poll: float = 0.5) -> RolloutResult:
        """Wait until rolled out, the progress deadline is exceeded, or `timeout` seconds pass: a look at each change
        the Deployment's watch reports (a look every `poll` seconds while watching fails)."""
        deadline = self._clock() + timeout
        with timed("pod readiness"):
            deployment = self.get(namespace, name)
            while True:
                state = found_rollout_state(deployment, namespace, name)
                if state.done or state.failed:
                    return state
                if (left := deadline - self._clock()) <= 0:
                    return RolloutResult(False, True, f"timed out after {timeout:g}s: {state.message}")
                deployment = self._next_change(deployment, left, poll)

    def _next_change(self, deployment: V1Deployment, seconds: float, poll: float) -> V1Deployment | None:
        """The Deployment after its next change, or as it is after `seconds` without one (`poll` after a failed watch)."""
        meta = deployment.metadata
        stream = watch.Watch().stream(self.conn.apps.list_namespaced_deployment, meta.namespace,
                                      field_selector=f"metadata.name={meta.name}", resource_version=meta.resource_version,
                                      timeout_seconds=max(1, math.ceil(seconds)), _request_timeout=seconds + WATCH_SLACK)
        try:
            for event in stream:
                if event["type"] == "ERROR":  # e.g. the version read is too old to watch from: look again
                    break
                return None if event["type"] == "DELETED" else event["object"]
        except (ApiException, *TRANSIENT_ERRORS):
            self.conn.sleep(poll)
        finally:
            stream.close()
        return self.get(meta.namespace, meta.name)

    def selector_of(self, namespace: str, name: str) -> dict[str, str]:
        """The labels of the Deployment's pods (its spec.selector.matchLabels)."""
        deployment = self.conn.call(self.conn.apps.read_namespaced_deployment, name, namespace)
        return dict(deployment.spec.selector.match_labels or {})

    def revisions(self, namespace: str, name: str) -> dict[int, dict]:
        """Revision number -> pod template of each ReplicaSet the Deployment owns."""
        deployment = self.conn.call(self.conn.apps.read_namespaced_deployment, name, namespace)
        selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
        sets = self.conn.call(self.conn.apps.list_namespaced_replica_set, namespace, label_selector=selector)
        out = {}
        for rs in sets.items:
            owners = rs.metadata.owner_references or []
            if any(o.uid == deployment.metadata.uid and o.controller for o in owners):
                revision = int((rs.metadata.annotations or {}).get(REVISION, "0"))
                out[revision] = self.conn.api.sanitize_for_serialization(rs.spec.template)
        return out

    def undo(self, namespace: str, name: str, to_revision: int | None = None) -> int:
        """Put back the template of the previous revision (or `to_revision`); returns the revision used."""
        revisions = self.revisions(namespace, name)
        ordered = sorted(revisions)
        if to_revision is None:
            if len(ordered) < 2:
                raise LookupError(f"deployment {namespace}/{name} has no previous revision to undo to")
            to_revision = ordered[-2]
        if to_revision not in revisions:
            raise LookupError(f"deployment {namespace}/{name} has no revision {to_revision} (has {ordered})")
        template = revisions[to_revision]
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        patch = [{"op": "replace", "path": "/spec/template", "value": template}]
        self.conn.call(self.conn.apps.patch_namespaced_deployment, name, namespace, patch)
        return to_revision

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        """Set the replica count through the /scale subresource."""
        self.conn.call(self.conn.apps.patch_namespaced_deployment_scale, name, namespace, {"spec": {"replicas": replicas}})

    def delete(self, namespace: str, name: str) -> bool:
        """Delete the Deployment and what it owns; False when it was already gone."""
        try:
            self.conn.call(self.conn.apps.delete_namespaced_deployment, name, namespace, propagation_policy="Background")
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True


def found_rollout_state(deployment: V1Deployment | None, namespace: str, name: str) -> RolloutResult:
    """`rollout_state`, or failed when the Deployment does not exist."""
    if deployment is None:
        return RolloutResult(False, True, f'deployment "{name}" not found in {namespace}')
    return rollout_state(deployment)


def rollout_state(deployment: V1Deployment) -> RolloutResult:
    """kubectl's DeploymentStatusViewer, as a pure function of one Deployment."""
    name, status, spec = deployment.metadata.name, deployment.status, deployment.spec
    if (status.observed_generation or 0) < (deployment.metadata.generation or 0):
        return RolloutResult(False, False, "Waiting for deployment spec update to be observed...")
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return RolloutResult(False, True, f'deployment "{name}" exceeded its progress deadline')
    wanted, updated = spec.replicas if spec.replicas is not None else 1, status.updated_replicas or 0
    if updated < wanted:
        return RolloutResult(False, False, f"Waiting for deployment \"{name}\" rollout to finish: {updated} out of {wanted} new replicas have been updated...")
    if (status.replicas or 0) > updated:
        return RolloutResult(False, False, f"Waiting for deployment \"{name}\" rollout to finish: {status.replicas - updated} old replicas are pending termination...")
    if (status.available_replicas or 0) < updated:
        return RolloutResult(False, False, f"Waiting for deployment \"{name}\" rollout to finish: {status.available_replicas or 0} of {updated} updated replicas are available...")
    return RolloutResult(True, False, f'deployment "{name}" successfully rolled out')
