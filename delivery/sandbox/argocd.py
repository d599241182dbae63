"""The sandbox's ArgoCD application controller: Applications (argoproj.io/v1alpha1) rendered from git
with kustomize, synced into the store (automatically or on a requested operation, within the AppProject's
sync windows), and their sync and health status written as ArgoCD writes it. See docs/sandbox-argocd.md."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from delivery.sandbox.argocd_health import app_health, images, resource_entries
from delivery.sandbox.argocd_repo import RepoCache, SourceError
from delivery.sandbox.argocd_sync import (
    IgnoreRule,
    Render,
    ResourceState,
    apply,
    apply_order,
    compare,
    ignored_paths,
    managed_objects,
    prune,
    resource_ref,
    tracked,
)
from delivery.sandbox.argocd_windows import ProjectWindow, blocking
from delivery.sandbox.resources import timestamp
from delivery.sandbox.reconciler import StoreReconciler
from delivery.sandbox.store import ObjectStore, StoreEvent

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RESPECT_IGNORE_DIFFERENCES = "RespectIgnoreDifferences=true"
CREATE_NAMESPACE = "CreateNamespace=true"
DEFAULT_HISTORY_LIMIT = 10


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AdjustableClock:
    """The wall clock moved by an offset, for tests: time flows on from where `jump_to`/`advance` put it."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self._offset

    def jump_to(self, moment: datetime) -> None:
        self._offset = moment - utc_now()

    def advance(self, delta: timedelta) -> None:
        self._offset += delta


@dataclass(frozen=True)
class ArgoCDSettings:
    """Where the controller keeps its git mirrors, how often it refreshes every Application
    (ArgoCD's default is 3 minutes), and its clock (sync windows and status timestamps)."""

    work_dir: Path
    poll_seconds: float = 1.0
    clock: Clock = utc_now


def _stamp(moment: datetime) -> str:
    return timestamp(moment.timestamp())


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _requested_state(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("status", "metadata")}


def _source(spec: dict) -> dict:
    return spec.get("source") or {}


def _sync_options(spec: dict, operation: dict) -> set[str]:
    return {*((spec.get("syncPolicy") or {}).get("syncOptions") or []),
            *((operation.get("sync") or {}).get("syncOptions") or [])}


class ArgoCDController(StoreReconciler):
    """Reconciles every Application of the store each `poll_seconds` and whenever it (or an AppProject) changes."""

    task_name = "sandbox-argocd"

    def __init__(self, store: ObjectStore, settings: ArgoCDSettings) -> None:
        super().__init__(store)
        self.settings = settings
        self.repos = RepoCache(settings.work_dir / "repos")

    async def _run(self, queue: asyncio.Queue[StoreEvent | None]) -> None:
        loop = asyncio.get_running_loop()
        next_poll, dirty = loop.time(), set()
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), max(next_poll - loop.time(), 0))
                while event is not None:
                    dirty |= self._affected(event)
                    if queue.empty():
                        break
                    event = queue.get_nowait()
                if event is None:
                    return  # the store is shutting down
            except TimeoutError:
                pass
            if loop.time() >= next_poll:
                next_poll = loop.time() + self.settings.poll_seconds
                dirty |= {_key(app) for app in self.store.list_objects("applications")}
            while dirty:
                key = dirty.pop()
                try:
                    await self.reconcile(*key)
                except Exception:
                    log.exception("reconciling Application %s/%s failed", *key)

    def _affected(self, event: StoreEvent) -> set[tuple[str, str]]:
        """The Applications a change concerns: any app for a project change, the app when more than its status moved."""
        if event.resource == "appprojects":
            return {_key(app) for app in self.store.list_objects("applications")}
        if event.resource == "applications" and event.type != "DELETED" and (
                event.previous is None or _requested_state(event.object) != _requested_state(event.previous)):
            return {_key(event.object)}
        return set()

    async def reconcile(self, namespace: str, name: str) -> None:
        """Refresh one Application: render its target revision, then compare, sync if due and write its status."""
        app = self.store.get_object("applications", namespace, name)
        if app is None:
            return
        spec, requested = app.get("spec") or {}, app.get("operation")
        target = await self._fetch(app, _source(spec).get("targetRevision", ""))
        operation_target = target
        revision = ((requested or {}).get("sync") or {}).get("revision")
        if isinstance(target, Render) and revision not in (None, "", target.sha, _source(spec).get("targetRevision")):
            operation_target = await self._fetch(app, revision)
        current = self.store.get_object("applications", namespace, name)
        if current is None or current.get("spec") != spec or current.get("operation") != requested:
            return  # changed while rendering: the change is queued and reconciled next
        self._settle(current, target, operation_target)

    async def _fetch(self, app: dict, revision: str) -> Render | SourceError:
        spec, instance = app.get("spec") or {}, app["metadata"]["name"]
        source, namespace = _source(spec), (spec.get("destination") or {}).get("namespace") or "default"

        def render() -> Render:
            if not source:
                raise SourceError("spec.source is required: the sandbox renders one kustomize source")
            sha = self.repos.resolve(source.get("repoURL", ""), revision)
            documents = self.repos.render(source.get("repoURL", ""), sha, source.get("path", ""))
            return Render(sha, managed_objects(self.store.registry, documents, namespace, instance))

        try:
            return await asyncio.to_thread(render)
        except SourceError as error:
            return error

    def _settle(self, app: dict, target: Render | SourceError, operation_target: Render | SourceError) -> None:
        """Compare, sync when requested or due and allowed, and write the status (nothing awaited: the store holds
        still)."""
        now, spec = self.settings.clock(), app.get("spec") or {}
        status, requested = dict(app.get("status") or {}), app.get("operation")
        project = self._project(app)
        if project is None:
            self._fail(app, "InvalidSpecError", f"Application referencing project {spec.get('project')} which "
                                                "does not exist", now)
            return
        if isinstance(target, SourceError):
            self._fail(app, "ComparisonError", f"Failed to load target state: {target}", now)
            return
        try:
            rules = [IgnoreRule.of(entry) for entry in spec.get("ignoreDifferences") or []]
        except SourceError as error:
            self._fail(app, "ComparisonError", str(error), now)
            return
        states = compare(self.store, target.managed, rules, app["metadata"]["name"])
        operation, conditions = requested, []
        if operation is None:
            operation, failure = self._auto_operation(spec, status, target.sha, states)
            conditions += [failure] if failure else []
        finished = None
        if operation is not None:
            manual = not (operation.get("initiatedBy") or {}).get("automated")
            blocked = self._blocked(app, project, now, manual)
            if blocked and requested is not None:
                running = status.get("operationState") or {}
                started = running.get("startedAt") if running.get("operation") == operation else None
                status["operationState"] = {"operation": operation, "phase": "Running", "message": blocked,
                                            "startedAt": started or _stamp(now)}
            elif blocked:
                conditions.append(("SyncError", blocked))
            else:
                render = operation_target if requested is not None else target
                status["operationState"] = self._sync(app, operation, render, rules, now)
                if status["operationState"]["phase"] == "Succeeded":
                    status["history"] = self._history(spec, status)
                states, finished = compare(self.store, target.managed, rules, app["metadata"]["name"]), operation
        status.update(self._compared(spec, target.sha, states, status, now))
        self._write(app, status, conditions, finished)

    def _project(self, app: dict) -> dict | None:
        """The AppProject named by spec.project, in the Application's namespace; `default` may be absent."""
        name = (app.get("spec") or {}).get("project") or "default"
        found = self.store.get_object("appprojects", app["metadata"].get("namespace"), name)
        return found if found is not None or name != "default" else {"spec": {}}

    def _auto_operation(self, spec: dict, status: dict, sha: str,
                        states: list[ResourceState]) -> tuple[dict | None, tuple[str, str] | None]:
        """ArgoCD's auto-sync decision: the sync operation to run (or None) and a SyncError to report."""
        policy = spec.get("syncPolicy") or {}
        automated = policy.get("automated")
        if automated is None or automated.get("enabled") is False:
            return None, None
        pruning = bool(automated.get("prune"))
        if all(s.synced or (s.desired is None and not pruning) for s in states):
            return None, None  # in sync, or only resources requiring pruning differ
        last = status.get("operationState") or {}
        if (last.get("syncResult") or {}).get("revision") == sha:
            if last.get("phase") != "Succeeded":
                return None, ("SyncError", f"Failed sync attempt to {sha}: {last.get('message', '')}")
            if not automated.get("selfHeal"):
                return None, None
        sync = {"revision": sha, **({"prune": True} if pruning else {}),
                **({"syncOptions": policy["syncOptions"]} if policy.get("syncOptions") else {})}
        return {"sync": sync, "initiatedBy": {"automated": True}}, None

    def _blocked(self, app: dict, project: dict, now: datetime, manual: bool) -> str:
        """Why the project's sync windows hold a sync now ("" when they let it through)."""
        destination = (app.get("spec") or {}).get("destination") or {}
        clusters = [c for c in (destination.get("server"), destination.get("name")) if c]
        try:
            windows = [w for w in map(ProjectWindow.of, (project.get("spec") or {}).get("syncWindows") or [])
                       if w.matches(app["metadata"]["name"], destination.get("namespace", ""), clusters)]
            blockers = blocking(windows, now, manual)
        except ValueError as error:
            return f"Sync operation blocked: {error}"
        return f"Sync operation blocked by sync window: {'; '.join(map(str, blockers))}" if blockers else ""

    def _sync(self, app: dict, operation: dict, render: Render | SourceError, rules: list[IgnoreRule],
              now: datetime) -> dict:
        """Apply the render (and prune what it dropped, if the operation prunes): the operation's final state."""
        spec, started = app.get("spec") or {}, _stamp(now)
        if isinstance(render, SourceError):
            return {"operation": operation, "phase": "Error", "message": f"ComparisonError: {render}",
                    "startedAt": started, "finishedAt": _stamp(self.settings.clock())}
        options = _sync_options(spec, operation)
        namespace = (spec.get("destination") or {}).get("namespace")
        if CREATE_NAMESPACE in options and namespace and self.store.get_object("namespaces", None, namespace) is None:
            self.store.create("namespaces", {"metadata": {"name": namespace}})
        results = []
        for managed in render.managed:
            keep = (ignored_paths(rules, managed.rtype, managed.namespace, managed.name)
                    if RESPECT_IGNORE_DIFFERENCES in options else [])
            outcome, message = apply(self.store, managed, keep)
            results.append({**resource_ref(managed.rtype, managed.namespace, managed.name), "status": outcome,
                            "message": message, "syncPhase": "Sync"})
        results += self._prune(app, render, bool((operation.get("sync") or {}).get("prune")))
        failures = [r["message"] for r in results if r["status"] == "SyncFailed"]
        return {"operation": operation, "phase": "Failed" if failures else "Succeeded",
                "message": f"one or more objects failed to apply, reason: {', '.join(failures)}" if failures
                else "successfully synced (all tasks run)",
                "startedAt": started, "finishedAt": _stamp(self.settings.clock()),
                "syncResult": {"revision": render.sha, "source": _source(spec), "resources": results}}

    def _prune(self, app: dict, render: Render, pruning: bool) -> list[dict]:
        """Delete (or, not pruning, skip) the tracked objects the render dropped, in reverse kind order."""
        wanted = {(m.rtype.plural, m.namespace, m.name) for m in render.managed}
        extras = [(t, o["metadata"].get("namespace", ""), o["metadata"]["name"])
                  for t, o in tracked(self.store, app["metadata"]["name"])]
        results = []
        for rtype, namespace, name in sorted(extras, key=lambda e: -apply_order(e[0])):
            if (rtype.plural, namespace, name) not in wanted:
                outcome, message = (prune(self.store, rtype, namespace, name) if pruning
                                    else ("PruneSkipped", "ignored (requires pruning)"))
                results.append({**resource_ref(rtype, namespace, name), "status": outcome, "message": message,
                                "syncPhase": "Sync"})
        return results

    @staticmethod
    def _history(spec: dict, status: dict) -> list[dict]:
        """status.history with the operation just succeeded appended, the oldest past revisionHistoryLimit dropped."""
        history, state = list(status.get("history") or []), status["operationState"]
        initiated = state["operation"].get("initiatedBy")
        history.append({"id": history[-1]["id"] + 1 if history else 0, "revision": state["syncResult"]["revision"],
                        "deployStartedAt": state["startedAt"], "deployedAt": state["finishedAt"],
                        "source": _source(spec), **({"initiatedBy": initiated} if initiated else {})})
        return history[-max(int(spec.get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT)), 1):]

    def _compared(self, spec: dict, sha: str, states: list[ResourceState], status: dict, now: datetime) -> dict:
        """The status fields of a comparison: sync, health, resources, summary, sourceType."""
        compared_to = {"source": _source(spec), "destination": spec.get("destination") or {},
                       **({"ignoreDifferences": spec["ignoreDifferences"]} if spec.get("ignoreDifferences") else {})}
        in_images = images(states)
        return {"sync": {"status": "Synced" if all(s.synced for s in states) else "OutOfSync", "revision": sha,
                         "comparedTo": compared_to},
                "health": self._health(status, app_health(states), now), "resources": resource_entries(states),
                "summary": {"images": in_images} if in_images else {}, "sourceType": "Kustomize"}

    def _fail(self, app: dict, kind: str, message: str, now: datetime) -> None:
        """Write an unknown comparison: the condition, sync Unknown, the health of what is tracked live, and a
        requested operation ended in Error."""
        spec, status, requested = app.get("spec") or {}, dict(app.get("status") or {}), app.get("operation")
        live = compare(self.store, (), (), app["metadata"]["name"])
        status["sync"] = {"status": "Unknown",
                          "comparedTo": {"source": _source(spec), "destination": spec.get("destination") or {}}}
        status["health"] = self._health(status, app_health(live), now)
        if requested is not None:
            status["operationState"] = {"operation": requested, "phase": "Error", "message": f"{kind}: {message}",
                                        "startedAt": _stamp(now), "finishedAt": _stamp(now)}
        self._write(app, status, [(kind, message)], requested)

    @staticmethod
    def _health(status: dict, health: str, now: datetime) -> dict:
        previous = status.get("health") or {}
        since = previous.get("lastTransitionTime") if previous.get("status") == health else None
        return {"status": health, "lastTransitionTime": since or _stamp(now)}

    def _write(self, app: dict, status: dict, conditions: list[tuple[str, str]], finished: dict | None) -> None:
        """Store the status, with the conditions (transition times kept) and reconciledAt; drop a finished operation."""
        before = {(c.get("type"), c.get("message")): c.get("lastTransitionTime")
                  for c in (app.get("status") or {}).get("conditions") or []}
        stamp = _stamp(self.settings.clock())
        status = {k: v for k, v in status.items() if k != "conditions" and v != {}}
        if conditions:
            status["conditions"] = [{"type": t, "message": m, "lastTransitionTime": before.get((t, m)) or stamp}
                                    for t, m in conditions]
        updated = {**app, "status": {**status, "reconciledAt": stamp}}
        if finished is not None:
            updated.pop("operation", None)
        self.store.update("applications", updated)
