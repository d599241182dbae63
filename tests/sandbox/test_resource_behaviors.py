"""Versions that fail at run time, as the kubelet reports it: a leaky one is OOM-killed at its memory limit and
restarted, a crash-looping one exits with a stack trace and waits in CrashLoopBackOff; `kubectl logs --previous`
shows the last terminated container's log."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from delivery.sandbox.behavior import BehaviorBook, BehaviorRule, VersionBehavior
from delivery.sandbox.resources import DEFAULT_RESOURCES
from delivery.sandbox.scenario import load_scenario
from tests.sandbox.cluster_fixture import RunningCluster, kubectl_runner, rolled_out, running_cluster, wait_until
from tests.sandbox.test_metrics_api import NS, service_deployment

LEAKY = VersionBehavior(memory_growth_mib_per_second=100.0)  # 384Mi to the 512Mi limit in about 1.3 s
CRASHING = VersionBehavior(becomes_ready=False, exits_after_seconds=0.3)
RESTART_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """Production's user-service at a healthy v1.0.0, trip-service leaking and ai-service crash-looping."""
    behaviors = BehaviorBook((BehaviorRule("*-leaky", LEAKY), BehaviorRule("*-crashloop", CRASHING),
                              BehaviorRule("*", VersionBehavior())))
    with running_cluster(tmp_path_factory.mktemp("restarts"), ready_delay_seconds=0.1, behaviors=behaviors,
                         restart_backoff_seconds=0.2) as running:
        with client.ApiClient(client.Configuration(host=running.base_url)) as api:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            apps = client.AppsV1Api(api)
            for app, tag in (("user-service", "v1.0.0"), ("trip-service", "v1.3.0-leaky"),
                             ("ai-service", "v1.3.0-crashloop")):
                manifest = service_deployment(app, tag, 1)
                manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "512Mi"
                apps.create_namespaced_deployment(NS, manifest)
            wait_until(lambda: rolled_out(apps, NS, "user-service-blue"), what="user-service rolled out")
        yield running


@pytest.fixture(scope="module")
def core(cluster_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(cluster_api)


@pytest.fixture(scope="module")
def run_kubectl(cluster: RunningCluster,
                tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The machine's kubectl, failures included."""
    return kubectl_runner(cluster.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


def pod_of(core: client.CoreV1Api, app: str) -> client.V1Pod:
    [pod] = core.list_namespaced_pod(NS, label_selector=f"app={app}").items
    return pod


def test_a_leaky_version_is_oom_killed_and_restarted_in_its_running_pod(core: client.CoreV1Api) -> None:
    def restarted_and_running() -> client.V1Pod | None:
        pod = pod_of(core, "trip-service")
        status = pod.status.container_statuses[0]
        return pod if status.restart_count >= 1 and status.state.running else None

    pod = wait_until(restarted_and_running, RESTART_TIMEOUT, "the leaky container restarted")
    status = pod.status.container_statuses[0]
    terminated = status.last_state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    assert terminated.started_at <= terminated.finished_at <= status.state.running.started_at
    assert pod.status.phase == "Running"
    wait_until(lambda: pod_of(core, "trip-service").status.container_statuses[0].ready, RESTART_TIMEOUT,
               "the restarted container ready again")


def test_a_leaky_pods_memory_grows_up_to_its_limit(cluster_api: client.ApiClient, core: client.CoreV1Api) -> None:
    metrics = client.CustomObjectsApi(cluster_api)

    def memory() -> float:
        [item] = metrics.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods",
                                                       label_selector="app=trip-service")["items"]
        return float(parse_quantity(item["containers"][0]["usage"]["memory"]))

    wait_until(lambda: memory() > parse_quantity("400Mi"), RESTART_TIMEOUT, "the leak above 400Mi")
    assert all(memory() <= parse_quantity("512Mi") for _ in range(20))


def test_a_crash_looping_version_backs_off_and_keeps_its_stack_trace(core: client.CoreV1Api,
                                                                     run_kubectl: Callable[..., Any]) -> None:
    def backing_off() -> client.V1Pod | None:
        pod = pod_of(core, "ai-service")
        status = pod.status.container_statuses[0]
        waiting = status.state.waiting
        return pod if status.restart_count >= 2 and waiting and waiting.reason == "CrashLoopBackOff" else None

    pod = wait_until(backing_off, RESTART_TIMEOUT, "the crash-looping container in CrashLoopBackOff")
    status = pod.status.container_statuses[0]
    assert (status.last_state.terminated.reason, status.last_state.terminated.exit_code) == ("Error", 1)
    assert status.state.waiting.message.startswith("back-off ") and not status.ready
    name = pod.metadata.name
    previous = run_kubectl("logs", name, "-n", NS, "--previous")
    assert previous.returncode == 0, previous.stderr
    lines = previous.stdout.splitlines()
    assert "Starting AiServiceApplication v1.3.0-crashloop" in lines[0]
    assert "java.lang.IllegalStateException: Failed to execute CommandLineRunner" in lines
    assert lines[-1] == "\t... 6 common frames omitted"
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
    assert any(e.reason == "BackOff" and e.type == "Warning" for e in events)


def test_kubectl_shows_a_waiting_or_terminated_containers_reason_as_the_pods_status() -> None:
    pods = next(t for t in DEFAULT_RESOURCES if t.kind == "Pod")
    status = next(c for c in pods.columns if c.name == "Status")
    waiting = {"status": {"phase": "Running", "containerStatuses": [
        {"name": "app", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert status.cell(waiting) == "CrashLoopBackOff"
    running = {"status": {"phase": "Running", "containerStatuses": [{"name": "app", "state": {"running": {}}}]}}
    assert status.cell(running) == "Running"


def test_previous_logs_of_a_container_that_never_restarted_are_a_bad_request(core: client.CoreV1Api,
                                                                             run_kubectl: Callable[..., Any]) -> None:
    name = pod_of(core, "user-service").metadata.name
    with pytest.raises(ApiException) as refused:
        core.read_namespaced_pod_log(name, NS, previous=True)
    expected = f'previous terminated container "user-service" in pod "{name}" not found'
    assert refused.value.status == 400 and json.loads(refused.value.body)["message"] == expected
    done = run_kubectl("logs", name, "-n", NS, "--previous")
    assert done.returncode != 0 and expected in done.stderr


def test_the_default_scenario_has_leaky_and_crash_looping_tags() -> None:
    scenario = load_scenario()
    book = BehaviorBook(scenario.rules())
    assert {"v1.3.0-leaky", "v1.3.0-crashloop"} <= set(scenario.known_tags)
    leaky = book.for_image("r/trip-service:v1.3.0-leaky")
    assert leaky.memory_growth_mib_per_second > 0 and leaky.memory_mib == 384 and leaky.cpu_millicores == 250
    crashing = book.for_image("r/trip-service:v1.3.0-crashloop")
    assert crashing.exits_after_seconds == 2 and not crashing.becomes_ready
    assert book.for_image("r/trip-service:v1.2.0").memory_growth_mib_per_second == 0
    assert scenario.restart_backoff.total_seconds() == 1
