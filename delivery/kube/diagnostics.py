"""What an SRE looks at when a release goes wrong: pods, their logs, recent events."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from delivery.kube.connection import KubeConnection


class Diagnostics:
    """Read-only views for the emergency procedure (SPEC §8) and the canary log archive."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn

    def pods(self, namespace: str, selector: dict[str, str]) -> list[dict]:
        """Name, phase, readiness, image and restarts of each pod matching `selector`."""
        label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
        pods = self.conn.call(self.conn.core.list_namespaced_pod, namespace, label_selector=label_selector)
        return [
            {
                "name": pod.metadata.name,
                "phase": pod.status.phase,
                "ready": any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []),
                "image": pod.spec.containers[0].image,
                "restarts": sum(s.restart_count for s in pod.status.container_statuses or []),
            }
            for pod in pods.items
        ]

    def logs(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        """The pod's log text ('' when the pod is gone)."""
        try:
            return self.conn.call(self.conn.core.read_namespaced_pod_log, pod, namespace, tail_lines=tail_lines)
        except ApiException as err:
            if err.status == 404:
                return ""
            raise

    def events(self, namespace: str, involving: str | None = None) -> list[dict]:
        """Events of the namespace (or of one object by name), oldest first."""
        selector = f"involvedObject.name={involving}" if involving else None
        events = self.conn.call(self.conn.core.list_namespaced_event, namespace, field_selector=selector)
        rows = [
            {
                "time": (e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
                "type": e.type,
                "reason": e.reason,
                "object": f"{e.involved_object.kind}/{e.involved_object.name}",
                "message": e.message,
            }
            for e in events.items
        ]
        return sorted(rows, key=lambda r: str(r["time"]))
