"""Integration fixtures: a Prefect test server, the sandbox cluster in a subprocess, a fast policy."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

import httpx
import pytest
import yaml

from delivery.kube import Deployments, Routing, connect
from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.images import manifest_digest
from delivery.sandbox.scenario import DEFAULT_SCENARIO
from tests.conftest import REPO
from tests.mail import approval_settings
from tests.release.driver import start_in_background
from delivery.sandbox.process import sandbox_process


def fast_policy_data() -> dict:
    """The demo policy with the waits shortened further, for tests."""
    data = yaml.safe_load((REPO / "policies" / "demo.yaml").read_text())
    data["environments"]["staging"]["watch"] = "2s"
    data["environments"]["production"]["watch"] = "6s"
    data["watch"].update(interval="2s", query_window="10s")
    data["validation"].update(health_retry_interval="200ms", rollout_timeout="8s")
    data["blue_green"].update(ready_timeout="8s", old_color_grace="0s")
    data["approvals"].update(poll_interval="250ms")
    return data


@pytest.fixture
def policy_changes() -> dict:
    """Override per test (section -> fields) to change the fast policy."""
    return {}


@pytest.fixture
def policy_file(tmp_path, policy_changes) -> Path:
    return write_policy(tmp_path / "policy.yaml", fast_policy_data(), policy_changes)


def write_policy(path: Path, data: dict, changes: dict) -> Path:
    """`data` with `changes` (section -> fields; a dict field is merged one level down) written to `path`."""
    for section, fields in changes.items():
        for key, value in fields.items():
            current = data[section].get(key)
            data[section][key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


PASSING_TAGS = ("v1.3.0", "v1.4.0-broken")  # tags whose CI reports pass, like v1.2.0's


def reports_root(tmp_path: Path) -> Path:
    """The shipped sample reports, plus passing reports for the other tags the tests release."""
    root = tmp_path / "reports-root"
    shutil.copytree(REPO / "reports", root / "reports")
    for tag in PASSING_TAGS:
        shutil.copytree(REPO / "reports" / "v1.2.0", root / "reports" / tag)
    return root


@pytest.fixture
def sandbox(tmp_path, policy_file, monkeypatch) -> Endpoints:
    """A sandbox cluster in its own process, and TRIPGEN_* settings pointing the flows at it."""
    with sandbox_process(tmp_path, policy_file, "--scenario", str(fast_scenario(tmp_path))) as endpoints:
        settings = worker_settings(tmp_path, policy_file, endpoints, reports_root(tmp_path),
                                   RELEASE_LOCK=f"production-release-{tmp_path.name}")  # a stranded run never blocks the next test
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        yield endpoints


def fast_scenario(work: Path) -> Path:
    """The shipped scenario with pods ready after 150 ms instead of 500 ms (rollouts take a third of the time)."""
    scenario = yaml.safe_load(resources.files("delivery.sandbox").joinpath(DEFAULT_SCENARIO).read_text())
    scenario["ready_delay"] = "150ms"
    path = work / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def worker_settings(work: Path, policy_file: Path, endpoints: Endpoints, reports: Path, **more: str) -> dict[str, str]:
    """The TRIPGEN_* environment of a worker releasing to the sandbox started in `work`."""
    settings = {
        "POLICY": str(policy_file),
        "KUBECONFIG": str(work / "sandbox" / "kubeconfig"),
        "REGISTRY_URL": endpoints.registry,
        "PROMETHEUS_URL": endpoints.prometheus,
        "GATEWAY_URL": endpoints.gateway,
        "REPORTS": str(reports),
        "AUDIT_LOG": str(work / "audit.jsonl"),
        "RUN_TRIVY": "false",
        **more,
    }
    return {**approval_settings(), **{f"TRIPGEN_{key}": value for key, value in settings.items()}}


def set_fault(endpoints: Endpoints, **body) -> dict:
    return httpx.patch(f"{endpoints.control}/faults", json=body).raise_for_status().json()


def set_load(endpoints: Endpoints, requests_per_second: float) -> None:
    httpx.put(f"{endpoints.control}/load", json={"requests_per_second": requests_per_second}).raise_for_status()


def push_image(endpoints: Endpoints, tag: str, services: list[str]) -> None:
    for service in services:
        httpx.post(f"{endpoints.control}/images", json={"repository": service, "tag": tag}).raise_for_status()


def audit_records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def audit_events(tmp_path: Path) -> list[str]:
    return [record["event"] for record in audit_records(tmp_path)]


@pytest.fixture
def cluster(sandbox):
    conn = connect(os.environ["TRIPGEN_KUBECONFIG"])
    return Deployments(conn), Routing(conn)


def release_run(tag, **parameters):
    from flows.release import release

    return start_in_background(release, f"release-{tag}", tag=tag, **parameters)


def live(cluster, service):
    """(color, image) production traffic reaches for `service`."""
    deployments, routing = cluster
    color = routing.selected_color("production", service)
    return color, deployments.image_of("production", f"{service}-{color}")


def staging_image(cluster, service):
    return cluster[0].image_of("staging", service)


def digest_image(service, tag):
    return f"acrtrpgenprod.azurecr.io/{service}@{manifest_digest(service, tag)}"
