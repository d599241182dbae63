"""The release flow end to end on the sandbox cluster and a Prefect server."""

from __future__ import annotations

import os

import pytest

from delivery.kube import Deployments, Routing, connect
from delivery.sandbox.images import manifest_digest
from tests.release.conftest import audit_events
from tests.release.driver import start_in_background

SERVICES = ["user-service", "location-service", "trip-service", "ai-service"]


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


def test_happy_path_releases_every_service(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", initiator="demo-dev")
    first = prefect_api.approve(run, "demo-lead", comment="looks good")
    prefect_api.approve(run, "demo-ops", after_key=first)
    state = run.join(240)
    assert state.is_completed(), state.message
    for service in SERVICES:
        color, image = live(cluster, service)
        assert color == "green"
        assert image.endswith(f"/{service}@{manifest_digest(service, 'v1.2.0')}")
        assert cluster[0].get("production", f"{service}-blue") is None  # R-BG-4: the old color is gone
    events = audit_events(tmp_path)
    assert events[0] == "deployment_initiated" and events.count("approval_granted") == 2
    assert events.count("traffic_switched") == 4 and events[-1] == "deployment_completed"
