"""What an SRE looks at when a release goes wrong: pods, their logs, recent events."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from delivery.kube.connection import KubeConnection


class Diagnostics:
    """Read-only views for the emergency procedure (SPEC §8) and the canary log archive."""

    def __init__(self, conn: KubeConnection) -> None:
        self.conn = conn

    def pods(self, namespace: str, selector: dict[str, str]) -> list[dict]:
        """Name, phase, readiness, image, restarts and each container's state of each pod matching `selector`."""
        label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
        pods = self.conn.call(self.conn.core.list_namespaced_pod, namespace, label_selector=label_selector)
        return [
            {
                "name": pod.metadata.name,
                "phase": pod.status.phase,
                "ready": any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []),
                "image": pod.spec.containers[0].image,
                "restarts": sum(s.restart_count for s in pod.status.container_statuses or []),
                "state": " ".join(_state(s) for s in pod.status.container_statuses or []) or "-",
            }
            for pod in pods.items
        ]

    def logs(self, namespace: str, pod: str, tail_lines: int | None = None, previous: bool = False) -> str:
        """The pod's log text, or its previous container's (`kubectl logs --previous`); '' when the pod is gone or
        (previous) no container of it terminated."""
        try:
            return self.conn.call(self.conn.core.read_namespaced_pod_log, pod, namespace, tail_lines=tail_lines,
                                  previous=previous)
        except ApiException as err:
            if err.status == 404 or (previous and err.status == 400):
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


def _state(status) -> str:
    """A container's state as kubectl shows it: Running, Waiting (CrashLoopBackOff), Terminated (OOMKilled)."""
    state = status.state
    if state and state.waiting:
        return f"Waiting ({state.waiting.reason})"
    if state and state.terminated:
        return f"Terminated ({state.terminated.reason})"
    last = status.last_state.terminated if status.last_state and status.last_state.terminated else None
    return "Running" + (f", last Terminated ({last.reason})" if last else "")
