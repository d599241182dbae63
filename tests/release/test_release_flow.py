"""The release flow end to end on the sandbox cluster and a Prefect server."""

from __future__ import annotations

from delivery.audit import verify
from delivery.sandbox.images import manifest_digest
from tests.release.conftest import audit_events, live, release_run

SERVICES = ["user-service", "location-service", "trip-service", "ai-service"]


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
    assert_audit_log_detects_one_changed_byte(tmp_path / "audit.jsonl")


def assert_audit_log_detects_one_changed_byte(path):
    assert verify(path).intact
    data = bytearray(path.read_bytes())
    line_three = data.index(b"\n", data.index(b"\n") + 1) + 1
    position = data.index(b'"actor"', line_three) + len(b'"actor": "')
    data[position] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify(path)
    assert not result.intact and result.broken_line == 3
