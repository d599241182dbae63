"""A running sandbox cluster for tests: the API app and the controllers served by uvicorn
in a background thread on a free 127.0.0.1 port, with a kubeconfig that points at it;
and the few helpers tests share (a Deployment manifest, polling, the rollout rule)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

import uvicorn
import yaml
from kubernetes.client import AppsV1Api, V1Deployment

from delivery.sandbox.apiserver import ApiFaults, build_api_app
from delivery.sandbox.argocd import ArgoCDController, ArgoCDSettings
from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.controllers import ClusterControllers
from delivery.sandbox.store import ObjectStore
from tests import waiting

T = TypeVar("T")
STARTUP_TIMEOUT_SECONDS = 10.0
KUBECTL_TIMEOUT_SECONDS = 60
ROLLOUT_TIMEOUT_SECONDS = 15.0
TEST_TIMINGS = {"tick_seconds": 0.02, "job_duration_seconds": 0.2, "probe_period_seconds": 0.5}


class RunningCluster(NamedTuple):
    """What a test gets: where the API is, a kubeconfig for it, and its live state."""

    base_url: str
    kubeconfig: Path
    store: ObjectStore  # owned by the server's event loop: inspect, never write
    faults: ApiFaults


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    """A kubeconfig with one context, `sandbox`, for the API server at `server`."""
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sandbox",
              "clusters": [{"name": "sandbox", "cluster": {"server": server}}],
              "users": [{"name": "sandbox", "user": {}}],
              "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox",
                                                           "namespace": namespace}}]}
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_cluster(directory: Path, ready_delay_seconds: float = 0.05, *, history_limit: int = 20000,
                    behaviors: BehaviorBook | None = None, argocd: ArgoCDSettings | None = None,
                    **controller_options: float) -> Iterator[RunningCluster]:
    """Start the API server and controllers (with test-sized timings unless given; the ArgoCD
    controller too with `argocd`); stop them cleanly on exit."""
    store, faults = ObjectStore(history_limit=history_limit), ApiFaults()
    timings = {**TEST_TIMINGS, **controller_options}
    behaviors = behaviors or BehaviorBook()
    controllers = ClusterControllers(store, behaviors, ready_delay_seconds, **timings)
    argocd_controller = ArgoCDController(store, argocd) if argocd else None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_api_app(store, faults, behaviors=behaviors), log_level="warning", access_log=False,
                                           lifespan="off", timeout_graceful_shutdown=1))
    loop_ready = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        loop_ready.set()
        await controllers.start()
        if argocd_controller:
            await argocd_controller.start()
        try:
            await server.serve(sockets=[listener])
        finally:
            await controllers.stop()
            if argocd_controller:
                await argocd_controller.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="sandbox-cluster", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox API server did not start; see the log above")
        time.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    try:
        yield RunningCluster(base_url, write_kubeconfig(directory / "kubeconfig", base_url), store, faults)
    finally:
        loop_ready.wait()
        loops[0].call_soon_threadsafe(store.close_watches)
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_SECONDS)
        listener.close()


def wait_until(condition: Callable[[], T], timeout: float = ROLLOUT_TIMEOUT_SECONDS, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` (tests/waiting.py's wait)."""
    return waiting.wait_until(condition, timeout, what, interval=0.02)


def deployment_manifest(name: str, image: str, replicas: int = 3, labels: dict[str, str] | None = None,
                        **spec: object) -> dict:
    """A Deployment of one container named `app`, selecting pods by `labels` (default app=<name>)."""
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": image,
                                                           "ports": [{"containerPort": 8080}]}]}},
                     **spec}}


def rolled_out(apps: AppsV1Api, namespace: str, name: str) -> V1Deployment | None:
    """The Deployment when it is rolled out by `kubectl rollout status`'s rule, else None."""
    deployment = apps.read_namespaced_deployment(name, namespace)
    status, wanted = deployment.status, deployment.spec.replicas
    done = ((status.observed_generation or 0) >= deployment.metadata.generation
            and (status.updated_replicas or 0) == wanted and (status.replicas or 0) == wanted
            and (status.available_replicas or 0) == wanted)
    return deployment if done else None


def kubectl_runner(kubeconfig: Path, cache: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the machine's kubectl against the cluster of `kubeconfig`; returns the finished process."""
    binary = shutil.which("kubectl")
    if binary is None:
        raise AssertionError("kubectl is not on PATH: install it (Debian package kubernetes-client) to run these tests")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_SECONDS)

    return run
