"""GitOps mode: each production change is a commit to the manifests repository, then ArgoCD's report of it.

`GitOpsDeployments` and `GitOpsRouting` are the direct-mode `Deployments` and `Routing` with their
writes to the production namespace turned into commits (reads, and every other namespace, stay on
the cluster API): the release engine above them does not know which mode runs (Flagger's router shape).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from delivery.gitops.argocd import ApplicationWaiter
from delivery.gitops.overlay import ReleaseOverlay
from delivery.gitops.repository import Commit, ManifestsRepository
from delivery.kube.connection import KubeConnection
from delivery.kube.deployments import Deployments
from delivery.kube.routing import ISTIO, Routing


@dataclass(frozen=True)
class ChangeNote:
    """What commits made now are for: the release tag, the flow run's URL, whether they restore, where to log."""

    tag: str
    run_url: str
    restoring: bool = False
    log: Callable[[str], None] = print


CHANGE_NOTE: ContextVar[ChangeNote | None] = ContextVar("tripgen_change_note", default=None)


@contextmanager
def noted(note: ChangeNote) -> Iterator[None]:
    """Commits made inside name `note`'s tag and run (restoring commits do not wait for Healthy)."""
    token = CHANGE_NOTE.set(note)
    try:
        yield
    finally:
        CHANGE_NOTE.reset(token)


class GitOpsWriter:
    """Commits one change at a time to the overlay, pushes it, and waits for the Application to report it."""

    def __init__(self, repo: ManifestsRepository, overlay_path: str, waiter: ApplicationWaiter) -> None:
        self.repo, self.overlay_path, self.waiter = repo, overlay_path, waiter
        self._lock = threading.Lock()
        self._last = threading.local()

    def last_commit(self) -> str | None:
        """The SHA of the commit this thread's last write made, None when it changed nothing (for the audit record)."""
        return getattr(self._last, "sha", None)

    def write(self, manifest: dict, step: str) -> Commit | None:
        """Merge `manifest` into the overlay as one commit named by `step`; None when it changed nothing."""
        note = CHANGE_NOTE.get() or ChangeNote("no release", "no flow run")
        subject = f"{note.tag}: revert: {step}" if note.restoring else f"{note.tag}: {step}"
        with self._lock:  # the batch's tasks write from parallel threads: one commit at a time
            self.repo.sync()
            overlay = ReleaseOverlay(self.repo.workdir, self.overlay_path)
            overlay.change(manifest)
            commit = self.repo.commit(f"{subject}\n\nFlow run: {note.run_url}\n", overlay.files())
        self._last.sha = commit.sha if commit else None
        if commit is None:
            return None
        note.log(f"committed {commit.sha[:12]} ({subject}); waiting for {self.waiter.namespace}/{self.waiter.name} to sync it")
        if note.restoring:  # a restore acts at once: a manual sync, which ArgoCD's closed window lets through (manualSync)
            self.waiter.request_sync(commit.sha)
        self.waiter.wait(commit.sha, self.repo.is_at_or_after, lambda why: note.log(f"waiting: {why}"), healthy=not note.restoring)
        return commit


class GitOpsDeployments(Deployments):
    """Deployments whose production writes are commits."""

    def __init__(self, conn: KubeConnection, writer: GitOpsWriter, namespace: str) -> None:
        super().__init__(conn)
        self.writer, self.namespace = writer, namespace

    def apply(self, manifest: dict):
        if manifest["metadata"]["namespace"] != self.namespace:
            return super().apply(manifest)
        image = manifest["spec"]["template"]["spec"]["containers"][0]["image"]
        self.writer.write(manifest, f"deploy {manifest['metadata']['name']} with {image}")
        return self.get(self.namespace, manifest["metadata"]["name"])

    def set_image(self, namespace: str, name: str, container: str, image: str) -> None:
        if namespace != self.namespace:
            return super().set_image(namespace, name, container, image)
        self.writer.write(_deployment(name, {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}),
                          f"set {name} to {image}")

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        if namespace != self.namespace:
            return super().scale(namespace, name, replicas)
        self.writer.write(_deployment(name, {"replicas": replicas}), f"scale {name} to {replicas}")

    def delete(self, namespace: str, name: str) -> bool:
        """In git the colors stay declared: retiring one scales it to zero (its pods go, its spec is kept)."""
        if namespace != self.namespace:
            return super().delete(namespace, name)
        self.scale(namespace, name, 0)
        return True


class GitOpsRouting(Routing):
    """Routing whose production writes are commits."""

    def __init__(self, conn: KubeConnection, writer: GitOpsWriter, namespace: str) -> None:
        super().__init__(conn)
        self.writer, self.namespace = writer, namespace

    def switch_selector(self, namespace: str, service: str, color: str) -> None:
        if namespace != self.namespace:
            return super().switch_selector(namespace, service, color)
        self.writer.write(_service(service, {"selector": {"version": color}}), f"switch {service} to {color}")
        if (now := self.selected_color(namespace, service)) != color:
            raise RuntimeError(f"service {namespace}/{service} selects version '{now}' after the sync of its switch to '{color}'")

    def select_every_version(self, namespace: str, service: str) -> None:
        if namespace != self.namespace:
            return super().select_every_version(namespace, service)
        self.writer.write(_service(service, {"selector": {"version": None}}), f"{service} selects every version")

    def set_subsets(self, namespace: str, name: str, subsets: dict[str, dict[str, str]]) -> None:
        if namespace != self.namespace:
            return super().set_subsets(namespace, name, subsets)
        listed = [{"name": subset, **({"labels": labels} if labels else {})} for subset, labels in subsets.items()]
        self.writer.write(_istio("DestinationRule", name, {"subsets": listed}), f"{name} subsets {sorted(subsets)}")

    def set_route_weights(self, namespace: str, name: str, weights: dict[str, int]) -> dict[str, int]:
        if namespace != self.namespace:
            return super().set_route_weights(namespace, name, weights)
        if sum(weights.values()) != 100:
            raise ValueError(f"route weights must add up to 100, got {weights}")
        http = self.virtual_service(namespace, name)["spec"]["http"]
        weighted = next((r for r in http if not r.get("match")), http[-1])
        for destination in weighted["route"]:
            destination["weight"] = weights.get(destination["destination"].get("subset"), 0)
        shown = ", ".join(f"{subset} {weight}" for subset, weight in weights.items())
        self.writer.write(_istio("VirtualService", name, {"http": http}), f"{name} weights {shown}")
        read_back = self.route_weights(namespace, name)
        if {k: read_back.get(k, 0) for k in weights} != weights:
            raise RuntimeError(f"virtualservice {namespace}/{name} reads {read_back} after the sync of {weights}")
        return read_back


def _deployment(name: str, spec: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def _service(name: str, spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def _istio(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "/".join(ISTIO), "kind": kind, "metadata": {"name": name}, "spec": spec}
