"""The kubelet's `restartPolicy: Always` for failing containers: an OOM kill at the memory limit (exit 137) or
a crash (exit 1, its stack trace last in the log), then a restart at once the first time and after a doubling
back-off later (CrashLoopBackOff meanwhile), with the status fields and events the real kubelet writes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from delivery.sandbox.applog import app_name, crash_lines, profile_of, startup_lines
from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.resources import timestamp
from delivery.sandbox.store import ObjectStore
from delivery.sandbox.usage import memory_limit, running_seconds, unbounded_memory

BACKOFF_CAP = 30  # the longest back-off, in first back-offs (the kubelet's 10 s .. 5 min)


class Recorder(Protocol):
    def record(self, obj: dict, kind: str, reason: str, message: str, component: str) -> None: ...


@dataclass
class _Failures:
    count: int = 0
    restart_at: float | None = None  # when a container waiting in back-off starts again


def container_id(uid: str, name: str, restarts: int) -> str:
    """The runtime's id of a pod's container, new with each restart."""
    seed = f"{uid}/{name}" if restarts == 0 else f"{uid}/{name}/{restarts}"
    return f"containerd://{hashlib.sha256(seed.encode()).hexdigest()}"


class ContainerRestarts:
    """Kills containers that leak past their memory limit or exit, and restarts them with back-off."""

    def __init__(self, store: ObjectStore, events: Recorder, behaviors: BehaviorBook, backoff_seconds: float) -> None:
        self.store, self.events, self.behaviors, self.backoff = store, events, behaviors, backoff_seconds
        self._failures: dict[tuple[str, str], _Failures] = {}

    def step(self, pod: dict, now: float) -> tuple[list[dict], bool] | None:
        """The pod's new containerStatuses after what happened by `now` (epoch seconds) and whether a container
        started again, or None when nothing changed."""
        specs = {c.get("name"): c for c in pod["spec"].get("containers", [])}
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        changed, restarted = [], False
        for status in statuses:
            spec = specs.get(status.get("name"))
            new = self._container_step(pod, spec, status, now) if spec else status
            restarted = restarted or "running" in new["state"] and new["restartCount"] > status.get("restartCount", 0)
            changed.append(new)
        return (changed, restarted) if changed != statuses else None

    def forget(self, uid: str) -> None:
        """Drop what is known about a deleted pod's containers."""
        self._failures = {k: v for k, v in self._failures.items() if k[0] != uid}

    def _container_step(self, pod: dict, spec: dict, status: dict, now: float) -> dict:
        failures = self._failures.setdefault((pod["metadata"]["uid"], spec["name"]), _Failures())
        state = status.get("state") or {}
        if "waiting" in state:
            return self._start(pod, spec, status) if failures.restart_at and now >= failures.restart_at else status
        seconds = running_seconds(status, now)
        if seconds is None:
            return status
        behavior = self.behaviors.for_image(spec.get("image", ""), pod["metadata"].get("namespace"))
        limit = memory_limit(spec)
        if limit is not None and unbounded_memory(behavior, seconds) >= limit:
            return self._fail(pod, spec, status, failures, "OOMKilled", 137, seconds, now)
        if behavior.exits_after_seconds is not None and seconds >= behavior.exits_after_seconds:
            for line in crash_lines(app_name(pod, spec)):
                self.store.append_log(pod["metadata"]["namespace"], pod["metadata"]["name"], spec["name"], line)
            return self._fail(pod, spec, status, failures, "Error", 1, seconds, now)
        return status

    def _fail(self, pod: dict, spec: dict, status: dict, failures: _Failures, reason: str, code: int,
              ran: float, now: float) -> dict:
        failures.count = 1 if ran > 2 * BACKOFF_CAP * self.backoff else failures.count + 1
        terminated = {"exitCode": code, "reason": reason, "startedAt": status["state"]["running"]["startedAt"],
                      "finishedAt": timestamp(now), "containerID": status.get("containerID")}
        failed = {**status, "ready": False, "started": False, "lastState": {"terminated": terminated}}
        doubled = self.backoff * 2 ** (failures.count - 2)
        delay = 0.0 if failures.count == 1 else min(doubled, BACKOFF_CAP * self.backoff)
        if delay == 0:
            return self._start(pod, spec, failed)
        failures.restart_at = now + delay
        meta = pod["metadata"]
        message = (f"back-off {delay:g}s restarting failed container={spec['name']} "
                   f"pod={meta['name']}_{meta['namespace']}({meta['uid']})")
        self.events.record(pod, "Warning", "BackOff", f"Back-off restarting failed container {spec['name']} in pod "
                                                      f"{meta['name']}_{meta['namespace']}({meta['uid']})", "kubelet")
        return {**failed, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}}}

    def _start(self, pod: dict, spec: dict, status: dict) -> dict:
        meta, name = pod["metadata"], spec["name"]
        self._failures[(meta["uid"], name)].restart_at = None
        restarts = status.get("restartCount", 0) + 1
        self.store.restart_log(meta["namespace"], meta["name"], name)
        image = spec.get("image", "")
        self.events.record(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', "kubelet")
        self.events.record(pod, "Normal", "Created", f"Created container {name}", "kubelet")
        self.events.record(pod, "Normal", "Started", f"Started container {name}", "kubelet")
        for line in startup_lines(app_name(pod, spec), image, profile_of(spec)):
            self.store.append_log(meta["namespace"], meta["name"], name, line)
        return {**status, "ready": False, "started": True, "restartCount": restarts,
                "containerID": container_id(meta["uid"], name, restarts),
                "state": {"running": {"startedAt": timestamp()}}}
