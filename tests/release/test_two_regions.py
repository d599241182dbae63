"""Two regions (R-DR-1, issue 15 item 3): two sandbox clusters, Korea Central (primary) and Korea South (DR). A release
reaches the DR region after the primary's watch passed; a failure in the DR region restores both."""

from __future__ import annotations

import json

import pytest
import yaml

from delivery.kube import Deployments, Routing, connect
from delivery.sandbox.process import sandbox_process
from tests.release.conftest import (audit_records, digest_image, fast_policy_data, fast_scenario, release_run, set_fault,
                                    set_load)
from tests.release.test_canary import approve_twice
from tests.waiting import wait_until

SERVICE = "user-service"
BASE = f"acrtrpgenprod.azurecr.io/{SERVICE}:v1.0.0"


@pytest.fixture
def policy_file(tmp_path):
    data = fast_policy_data()
    data["regions"] = [{"name": "korea-central", "role": "primary"}, {"name": "korea-south", "role": "dr"}]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def dr_region(sandbox, tmp_path, policy_file, monkeypatch):
    """The DR region's sandbox; the worker reaches it through TRIPGEN_REGION_ENDPOINTS."""
    work = tmp_path / "korea-south"
    work.mkdir()
    with sandbox_process(work, policy_file, "--scenario", str(fast_scenario(work))) as endpoints:
        kubeconfig = str(work / "sandbox" / "kubeconfig")
        region = {"kubeconfig": kubeconfig, "gateway_url": endpoints.gateway, "prometheus_url": endpoints.prometheus}
        monkeypatch.setenv("TRIPGEN_REGION_ENDPOINTS", json.dumps({"korea-south": region}))
        yield endpoints, connect(kubeconfig)


def live_in(conn) -> tuple[str, str]:
    color = Routing(conn).selected_color("production", SERVICE)
    return color, Deployments(conn).image_of("production", f"{SERVICE}-{color}")


def test_a_release_reaches_the_dr_region_after_the_primary(prefect_api, sandbox, cluster, dr_region, tmp_path):
    _, dr = dr_region
    run = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(240)
    assert state.is_completed(), state.message
    released = ("green", digest_image(SERVICE, "v1.2.0"))
    assert live_in(cluster[0].conn) == released and live_in(dr) == released
    switched = [r for r in audit_records(tmp_path) if r["event"] == "traffic_switched"]
    assert [r["details"].get("region") for r in switched] == [None, "korea-south"]  # the primary first


def test_a_version_faulty_only_in_the_dr_region_is_restored_in_both(prefect_api, sandbox, cluster, dr_region, tmp_path):
    dr_endpoints, dr = dr_region
    set_load(dr_endpoints, 300)
    run = release_run("v1.3.0", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    # the fault comes once Korea South's traffic moved, so its watch finds it (before the switch, validation
    # could: each probe asks up to three times, and at 40% all three fail in 6% of releases)
    wait_until(lambda: live_in(dr)[0] == "green", 180, "Korea South switched to green")
    set_fault(dr_endpoints, versions={f"{SERVICE}:v1.3.0": {"error_rate_percent": 40}})  # only Korea South's pods fail
    state = run.join(240)
    assert state.is_failed() and "rolled back" in state.message and "region korea-south:" in state.message, state.message
    assert live_in(cluster[0].conn) == ("blue", BASE) and live_in(dr) == ("blue", BASE)
    records = audit_records(tmp_path)
    failed = [r for r in records if r["event"] == "watch_failed"]
    assert [r["details"].get("region") for r in failed] == ["korea-south"]
    restored = [r["details"].get("region") for r in records if r["event"] == "rollback_executed"]
    assert restored == ["korea-south", None]  # the last region reached first, then the primary
